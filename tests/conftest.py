"""Suite-wide hooks: under CI a skipped real-peer test fails, and every run ends with the
real-peer count (see realpeers/required.py)."""

from realpeers.required import pytest_configure, pytest_runtest_makereport, pytest_unconfigure  # noqa: F401

pytest_plugins = ("pytester",)  # tests of those hooks run pytest on small test files
