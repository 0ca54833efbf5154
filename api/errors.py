"""Errors of the ``api`` package that are not about one HTTP request.

ConfigError     settings that cannot be used (file, line, field path, expectation)
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """Settings that cannot be used. The message names the file, field path and expectation."""
