"""bnlab's HTTP API: FastAPI app, routes, response schemas, the republisher thread and the embedded launcher.

Imports `core` only (never torch, never `worker`): the API image carries no training code.
"""
