"""Shared fixtures live in tests/fixtures/; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.stores",
    "tests.fixtures.worker",
    "tests.fixtures.service",
]
