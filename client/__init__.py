"""The `bnlab` command-line client: talks to a running bnlab service over HTTP only (no core imports).

It is built on the `bnlab` Python client (clients/python): `client.http` adds a job's event stream to its
transport; `client.cli` is the `bnlab` console script.
"""
