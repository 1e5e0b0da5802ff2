"""Serving: hypercorn's workers under a supervisor, and their access log."""
