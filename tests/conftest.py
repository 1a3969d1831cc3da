"""Shared fixtures live in tests/fixtures/; this file only registers them.

Starlette's TestClient sends `Host: testserver`, which the API trusts only when told to
(`BNLAB_TRUSTED_HOSTS`); tests of the trusted-hosts check set the setting themselves.
"""

import os

os.environ.setdefault("BNLAB_TRUSTED_HOSTS", "testserver,localhost,127.0.0.1,[::1]")

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.stores",
    "tests.fixtures.worker",
    "tests.fixtures.service",
]
