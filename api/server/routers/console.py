"""The web console: static files under ``/ui`` (``api/server/ui/``), shipped in the package
and built on the public HTTP API only. ``/`` leads there.

The console shows stored values, which anyone with write access chose: its pages (and the API
docs') are served with a Content-Security-Policy that runs only the node's own scripts, so a
value that slipped into the page as markup could run nothing, and may not be framed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

__all__ = ["UI_DIR", "mount_console", "page_headers"]

UI_DIR = Path(__file__).parent.parent / "ui" / "console"

router = APIRouter(include_in_schema=False)

_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'{styles}; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def page_headers(*, inline_styles: bool = False) -> dict[str, str]:
    """Security headers of the console's and the docs' pages. ``inline_styles`` for a page
    whose script injects its styles at runtime (ReDoc)."""
    policy = _PAGE_POLICY.format(styles=" 'unsafe-inline'" if inline_styles else "")
    return {
        "content-security-policy": policy,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
    }


class _ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(page_headers())
        return response


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


def mount_console(api: FastAPI) -> None:
    api.include_router(router)
    api.mount("/ui", _ConsoleFiles(directory=UI_DIR, html=True), name="console")
