"""Unit tests, laid out like the package: tests/unit/formats/ tests vigil/formats/, and so on.

Packages (each folder has an __init__.py) so that a module may share its basename
with one elsewhere under tests/ (unit/actions/test_health.py, e2e/test_health.py)."""
