"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with their scripts and styles served by the
node itself (from the ``fastapi-offline`` package), so the documentation works without
internet access. The pages have no inline script, so a strict Content-Security-Policy
(``script-src 'self'``) does not break them."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from ..errors import NotFound

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_VENDOR = Path(fastapi_offline.__file__).parent / "static"
_OWN = Path(__file__).parent.parent / "ui" / "docs"
_ASSETS = {
    "swagger-ui-bundle.js": _VENDOR / "swagger-ui-bundle.js",
    "swagger-ui.css": _VENDOR / "swagger-ui.css",
    "redoc.standalone.js": _VENDOR / "redoc.standalone.js",
    "favicon.png": _VENDOR / "favicon.png",
    "swagger-init.js": _OWN / "swagger-init.js",
}

_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kvdb API - Swagger UI</title>
<link rel="icon" href="/docs-assets/favicon.png">
<link rel="stylesheet" href="/docs-assets/swagger-ui.css">
</head><body>
<div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/docs-assets/swagger-init.js"></script>
</body></html>
"""

_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kvdb API - ReDoc</title>
<link rel="icon" href="/docs-assets/favicon.png">
</head><body>
<redoc spec-url="/openapi.json" hide-download-button="false"></redoc>
<script src="/docs-assets/redoc.standalone.js"></script>
</body></html>
"""


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_SWAGGER)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC)


@router.get("/docs-assets/{name}")
async def asset(name: str) -> FileResponse:
    path = _ASSETS.get(name)
    if path is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(path, headers={"cache-control": "public, max-age=86400"})
