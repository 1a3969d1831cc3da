"""bnlab's Python client: submit batch-normalization experiments to a bnlab service and read the results
as pandas DataFrames.

    import bnlab
    client = bnlab.Client(url="http://127.0.0.1:8000", api_key=None)
    job = client.submit({...}).wait(progress=True)
    job.metrics()

Only httpx is required; DataFrames need pandas (`pip install 'bnlab[pandas]'`).
"""

from bnlab.client import Client, Job, Sweep
from bnlab.errors import (
    BnlabError,
    Conflict,
    ConnectionFailed,
    FieldError,
    Forbidden,
    NotFound,
    ServerError,
    Unauthorized,
    Unavailable,
    ValidationError,
)

__all__ = [
    "BnlabError",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "FieldError",
    "Forbidden",
    "Job",
    "NotFound",
    "ServerError",
    "Sweep",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
]
