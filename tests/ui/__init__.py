"""Browser tests of the screening page (a package, so its conftest does not shadow tests/conftest.py)."""
