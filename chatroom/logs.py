"""The server's log: text for a terminal, or one JSON object a line for a collector.

Lines that matter to whoever runs the server carry an ``event`` (``refused``,
``dropped``, ``reload``...) and its fields as ``extra``, which the JSON format writes as
keys. No line carries message text; names are passed through ``inert()`` and cut short
by the code that logs them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "configure_logging"]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# What a LogRecord carries of its own; anything else came in through ``extra``.
_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_KEYS and not key.startswith("_"):
                line[key] = (
                    value if isinstance(value, str | int | float | bool | list) else str(value)
                )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


_handler: logging.Handler | None = None


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    """Send the log to stderr in ``log_format`` at ``level``; called again, it changes
    both in place (a reload)."""
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = logging.StreamHandler()
        root.addHandler(_handler)
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT, "%H:%M:%S")
    )
    _handler.setFormatter(formatter)
    root.setLevel(level.upper())
    # A line per WebSocket opened and per HTTP response is debugging, not operations.
    logging.getLogger("chatroom.websocket").setLevel(
        logging.DEBUG if level == "debug" else logging.WARNING
    )
