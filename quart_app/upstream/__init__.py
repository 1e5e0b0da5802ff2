"""The registry of every reach into a library's internals: one module per library.

Code that relies on what a library does not promise (a private name, a copy of its
code, a cache over one of its methods, a patch of its code) lives here and nowhere
else; the rest of the app imports it from here. Each module's docstring names the
internal, why it is relied on, and the upstream report if there is one.
``docs/architecture.md`` ("Reaching into libraries") has a row for each, with the test
that fails once upstream changes or fixes the thing relied on (most are in
``tests/test_upstream.py``), and ``pyproject.toml`` keeps each of these libraries below
its next minor release.

- ``quart``: ``App.ensure_async`` and the request's ``blueprints``, each worked out once.
- ``quart_auth``: a copy of quart-auth's token check; where quart-auth keeps the user.
- ``rate_limiter``: quart-rate-limiter's private hooks and its Redis store's client.
- ``aiosqlite``: a connection's worker thread, joined after a failed connect.
- ``hypercorn``: fixes to hypercorn's HTTP/2 streams and to h11's header parsing.
- ``quart_schema``: quart-schema's ``TypeAdapter`` and its ``make_response`` wrapper.

One more workaround stays with the code it belongs to: the supervisor in
``quart_app.serve.supervisor`` replaces hypercorn's (worker deaths, SIGTERM while
draining); its docstring names the bugs, and the table in ``docs/architecture.md``
registers it too.
"""
