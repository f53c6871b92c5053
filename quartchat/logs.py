"""Logging for the ``quartchat`` command: the access log on stdout, every other log on
stderr, as text or as one JSON object per line (``server.log_format``)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

ACCESS_LOGGER = "hypercorn.access"
ERROR_LOGGER = "hypercorn.error"
TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, pid, and
    for Hypercorn's access log the request's method, path, status, client and duration."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.name == ACCESS_LOGGER and isinstance(record.args, Mapping):
            entry.update(_access_fields(record.args))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """Picked by name from Hypercorn's access log atoms, which also hold every request
    header and environment variable: those must not reach the log.  Like the text access
    log, the path leaves out the query string."""
    status = str(atoms["s"])
    return {
        "method": atoms["m"],
        "path": atoms["U"],
        "protocol": atoms["H"],
        "status": int(status) if status.isdigit() else None,
        "client": atoms["h"],
        "duration_seconds": float(atoms["L"]),
    }


def configure_logging(log_format: LogFormat) -> None:
    """Send the root logger (the app's and Hypercorn's error log) to stderr and the access
    log to stdout only; pass the loggers to Hypercorn by name (see ``hypercorn_config``)."""
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [errors]
    root.setLevel(logging.INFO)

    access = logging.StreamHandler(sys.stdout)
    access.setFormatter(formatter)
    access_logger = logging.getLogger(ACCESS_LOGGER)
    access_logger.handlers = [access]
    access_logger.propagate = False
