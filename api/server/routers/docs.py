"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with their scripts and styles served by the
node itself (from the ``fastapi-offline`` package), so the documentation works without
internet access. The pages have no inline script, so a strict Content-Security-Policy
(``script-src 'self'``) does not break them. ReDoc's footer always asks a CDN for its logo:
the served copy points it at the node's own icon instead, so nothing leaves the node."""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from ..errors import NotFound
from .console import page_headers

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_VENDOR = Path(fastapi_offline.__file__).parent / "static"
_OWN = Path(__file__).parent.parent / "ui" / "docs"
_ASSETS = {
    "swagger-ui-bundle.js": _VENDOR / "swagger-ui-bundle.js",
    "swagger-ui.css": _VENDOR / "swagger-ui.css",
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
    return HTMLResponse(_SWAGGER, headers=page_headers())


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC, headers=page_headers(inline_styles=True))


@functools.cache
def _redoc_script() -> bytes:
    script = (_VENDOR / "redoc.standalone.js").read_bytes()
    return script.replace(b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/docs-assets/favicon.png")


@router.get("/docs-assets/{name}", response_model=None)
async def asset(name: str) -> Response | FileResponse:
    if name == "redoc.standalone.js":
        return Response(
            _redoc_script(),
            media_type="text/javascript",
            headers={"cache-control": "public, max-age=86400"},
        )
    path = _ASSETS.get(name)
    if path is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(path, headers={"cache-control": "public, max-age=86400"})
