"""Liveness and readiness: the process answers; the database and the broker are reachable."""
