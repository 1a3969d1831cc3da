"""The interactive API documentation: Swagger UI at /docs and ReDoc at /redoc, open like the dashboard.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so offline they are blank. These load the same
pages' scripts and styles from the files the fastapi-offline package installs (its version is pinned in
pyproject.toml, so the assets are too), mounted at /docs-assets: the documentation works with no network.
The pages' Content-Security-Policy allows nothing from another origin, so not even ReDoc's attribution
logo (an image on its CDN) is fetched.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
# Swagger UI would show a badge fetched from its online validator for a service not on localhost.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # the page's inline script starts Swagger UI
        "style-src 'self' 'unsafe-inline'",  # both set styles from script
        "img-src 'self' data: blob:",
        "worker-src 'self' blob:",  # ReDoc's search runs in a worker made from a blob
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


def same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to `app` (made with docs_url=None and redoc_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        swagger_ui = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        return same_origin_only(swagger_ui)

    @app.get("/redoc", include_in_schema=False)
    def redoc_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        redoc = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return same_origin_only(redoc)
