"""bnlab's HTTP API: FastAPI app, routes, response schemas, the republisher thread and the embedded launcher.

One package per resource holds its router and its schemas side by side, with the logic behind its routes
where it has any: `jobs`, `sweeps` (+ `service`), `compare` (+ `loading`), `events` (+ `hub`, the one
poller per process), `plots`, `health`, `dashboard`. `routes` includes their routers; `main` builds the
app. Shared: `schemas` (the base response model, `FiniteFloat`, `Series`, `ErrorOut`), `dependencies`,
`errors`, `limits`, `auth`; `publishing` hands stored jobs to the broker, `republisher` publishes again
what the broker lost.

Imports `core` only (never torch, never `worker`): the API image carries no training code.
"""
