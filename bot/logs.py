"""Structured logs (structlog); personal data is redacted and control characters are escaped
before anything is written, so no value a client sent can forge a log line."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from bot.core.redact import escape_controls, structlog_redactor


class SafeFormatter(logging.Formatter):
    """Escapes control characters in the message (a request path with CR LF, say); a traceback,
    added after the message, keeps its line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


def configure_logging(
    level: str = "INFO", fmt: str = "console", stream: TextIO | None = None
) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(SafeFormatter("%(message)s"))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h.formatter, SafeFormatter)]
    root.addHandler(handler)
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog_redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
