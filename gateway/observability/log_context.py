"""Structured logs: one JSON object per line, each with the correlation id of the work it is about.

`configure(level)` is called once, by `referral-gateway serve`; every logger (the gateway's, uvicorn's,
aiokafka's) propagates to the one handler it installs. `correlation` is a context variable: the HTTP
middleware, the MLLP handler and the intake set it, and every line logged in that context carries it.

Patient data must never reach a log. The code logs ids only; as a second line of defence the
formatter masks anything written like an NHS number (a URL's query string, an error quoted from a
receiver). Must not: decide what is logged, or log anything itself.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TextIO

from gateway.observability.masking import scrub_text

correlation: ContextVar[str | None] = ContextVar("correlation_id", default=None)

#: LogRecord attributes that are the record's own, not extra fields a caller passed.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def bind_correlation(value: str | None) -> Token[str | None]:
    """Make `value` the correlation id of what runs next in this context; reset with the token."""
    return correlation.set(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_text(record.getMessage()),
        }
        cid = getattr(record, "correlation_id", None) or correlation.get()
        if cid:
            entry["correlation_id"] = cid
        entry.update(_extra(record))
        if record.exc_info:
            entry["exception"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def _extra(record: logging.LogRecord) -> dict[str, object]:
    """Fields passed with `extra=...` (ids, counts), masked like the message."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "correlation_id"}
    return {k: scrub_text(v) if isinstance(v, str) else v for k, v in fields.items()}


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every log record to one JSON-lines handler (replacing any handler installed before)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
