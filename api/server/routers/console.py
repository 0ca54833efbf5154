"""The web console: static files under ``/ui`` (``api/server/ui/``), shipped in the package
and built on the public HTTP API only. ``/`` leads there."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["UI_DIR", "mount_console"]

UI_DIR = Path(__file__).parent.parent / "ui" / "console"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


def mount_console(api: FastAPI) -> None:
    api.include_router(router)
    api.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="console")
