"""Serves the dashboard: the page at `/` and its modules, styles and icon under `/dashboard/`.

Files come from `static/` beside this module, each with its content type declared here (browsers refuse
JavaScript modules served as anything but JavaScript, and the system's MIME table varies). The page's
Content-Security-Policy allows nothing but this origin, so the dashboard provably runs offline: a script,
style or font from anywhere else would be blocked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from fastapi import Path as PathParameter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(html|js|css|svg)$")
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' blob: data:",  # heatmaps arrive through fetch() as blob URLs
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
HEADERS = {
    # Revalidate on every load (FileResponse sends an ETag), so an upgraded service never runs old modules.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _file_response(path: Path) -> FileResponse:
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
def dashboard_page() -> FileResponse:
    """The single page; everything else is routed in the browser (`#/jobs`, `#/compare`, …)."""
    return _file_response(STATIC_DIR / "index.html")


@router.get("/dashboard/{file_name}")
def dashboard_asset(file_name: Annotated[str, PathParameter(max_length=64)]) -> FileResponse:
    # Only plain names of files in static/ (a name cannot hold "/" and may not start with "."), so no
    # request can reach outside it.
    path = STATIC_DIR / file_name
    if not ASSET_NAME.fullmatch(file_name) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dashboard file {file_name}")
    return _file_response(path)
