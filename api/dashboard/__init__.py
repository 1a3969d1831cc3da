"""The web dashboard: static pages (vanilla JavaScript modules, bnlab's own SVG charts) served at `/`.

The pages talk to the `/v1` API from the browser; this package only serves the files, with no auth
(the API key applies to `/v1`, and the pages ask for one when the API answers 401).
"""

from api.dashboard.router import router

__all__ = ["router"]
