"""Headless Chromium for the console tests, driven by Playwright for Python.

Playwright cannot download its own browsers here: it drives the system's Chromium (Debian's
``chromium`` package, which ``.ci/run`` installs), or the one ``KVDB_CHROMIUM`` names. The
tests skip, saying why, only when no Chromium can be found.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    candidates = [os.environ.get("KVDB_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextmanager
def chromium_context(profile: Path) -> Iterator[Any]:
    """A Playwright browser context on a fresh profile (``profile``)."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found: apt-get install chromium (or set KVDB_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
