"""The test suite; pytest imports this package before conftest.py and the helpers."""

import pytest

# Asserts in the helpers explain a failure the way the tests' own do; pytest rewrites
# test modules and conftest.py by itself, other modules only when told before import.
pytest.register_assert_rewrite("tests.helpers")
