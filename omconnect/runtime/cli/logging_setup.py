"""Logging for the CLI on stderr, secrets redacted: plain lines for a person at a terminal,
one JSON object per line for a log collector.

``--log-format`` (``LOG_FORMATS``) chooses; ``auto``, the default, is ``text`` when stderr is
a terminal and ``json`` otherwise. A JSON line has ``ts`` (UTC, ISO 8601, milliseconds),
``level``, ``logger`` and ``message``, then ``pipeline`` and ``task`` when the line was logged
for one (``worker.log_context``), and ``exception`` with the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from omconnect.runtime.config.redaction import RedactingFilter, Redactor
from omconnect.runtime.worker.log_context import current_log_context

LOG_FORMATS = ("auto", "json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_chosen_format = "auto"


def choose_log_format(log_format: str) -> None:
    """The format ``setup_logging`` uses from now on: one of ``LOG_FORMATS``."""
    global _chosen_format
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    _chosen_format = log_format


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **current_log_context(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes each record to ``sys.stderr`` as it is when the record is emitted, not as it was
    at setup: a process that replaces stderr later (a host embedding the CLI, a test
    capturing output) gets the lines, and none go to a stream closed since."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        raise AttributeError("this handler always writes to sys.stderr")


def setup_logging(
    level: str, redactor: Redactor | None = None, log_format: str | None = None
) -> None:
    """Log records of ``level`` and above to stderr, redacted by ``redactor``, in
    ``log_format`` (default: the one chosen by ``--log-format``)."""
    chosen = log_format or _chosen_format
    if chosen == "auto":
        chosen = "text" if sys.stderr.isatty() else "json"
    handler = StderrHandler()
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    if redactor is not None:
        handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
