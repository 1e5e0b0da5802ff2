# The two commands of the README. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST_PORT := http://127.0.0.1:8080/

.PHONY: run test test-fast lint screenshot bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A stamp per install flavour, so editing pyproject.toml re-installs.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The bench extra too: mypy checks bench/ as part of make test.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

instance/secret_key:
	mkdir -p instance
	$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))' > $@
	chmod 600 $@

# Local development: a generated secret kept in instance/, and plain-http cookies
# because the browser talks to 127.0.0.1 without TLS.
run: $(VENV)/.installed instance/secret_key
	QUART_SECRET_KEY="$$(cat instance/secret_key)" $(BIN)/quart --app quart_app init-db
	@echo "Serving on $(HOST_PORT)"
	QUART_SECRET_KEY="$$(cat instance/secret_key)" \
		QUART_AUTH_COOKIE_SECURE=false QUART_SESSION_COOKIE_SECURE=false \
		$(BIN)/python -m quart_app.serve -c hypercorn.toml

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The browser tests' jQuery and axios, from the npm registry as tests/js/package-lock.json
# locks them; reinstalled only when the lockfile changes.
JS_DEPS := tests/js/node_modules/.installed
$(JS_DEPS): tests/js/package-lock.json
	cd tests/js && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# More workers than cores: much of the suite waits on live servers, sockets and timeouts.
# Each worker has its own PostgreSQL and Redis database (tests/helpers/services.py);
# --dist loadscope keeps a module's tests on one worker, so a module-scoped server
# starts once.
TEST_WORKERS ?= 4

test: lint $(JS_DEPS)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope

# The inner loop, under a minute: no live server, no browser, no mypy.
test-fast: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/pytest -n 3 -m "not live and not browser"

# Redraws the README's picture, docs/ajax.png, from the browser test; make test never does.
screenshot: $(VENV)/.installed-test
	AJAX_SCREENSHOT=$(CURDIR)/docs/ajax.png REQUIRE_BROWSER=1 \
		$(BIN)/pytest tests/test_browser.py -k "every_ajax_call and sqlite"

# Loads real servers on 127.0.0.1 with wrk (several minutes); writes docs/benchmarks.md.
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/js/node_modules
