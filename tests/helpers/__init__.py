"""What the tests import: plain helpers, kept out of conftest.py (pytest advises against
importing from it); conftest.py holds the fixtures and imports from here."""
