"""Tests of the servers in examples/ (a package so its conftest does not shadow tests/conftest.py)."""
