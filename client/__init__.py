"""The `bnlab` command-line client: talks to a running bnlab service over HTTP only (no core imports).

`client.http` wraps httpx (URL, API key, one clear line per error, the job event stream);
`client.cli` is the `bnlab` console script built on it.
"""
