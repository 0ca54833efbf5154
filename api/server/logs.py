"""Logging of the HTTP server: tokens never reach a log.

WebSocket and SSE clients may carry their token in the URL (``access_token``, where a browser
cannot send a header), and uvicorn logs request URLs: its access log, and the ``uvicorn.error``
logger for WebSocket handshakes. ``redact_tokens`` filters both loggers.
"""

from __future__ import annotations

import logging
import re

__all__ = ["TokenRedactor", "redact", "redact_tokens"]

_TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s\"']*", re.IGNORECASE)
_SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    return _TOKEN_IN_URL.sub(r"\1[redacted]", text)


class TokenRedactor(logging.Filter):
    """Replaces the value of every ``access_token=`` in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "access_token" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(arg) if isinstance(arg, str) and "access_token" in arg else arg
                for arg in record.args
            )
        return True


def redact_tokens() -> None:
    """Install the redactor on the server's loggers (once; after uvicorn set logging up)."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactor) for f in logger.filters):
            logger.addFilter(TokenRedactor())
