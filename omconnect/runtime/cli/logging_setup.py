"""Logging for the CLI: plain lines on stderr, secrets redacted."""

from __future__ import annotations

import logging
import sys

from omconnect.runtime.config.redaction import RedactingFilter, Redactor


def setup_logging(level: str, redactor: Redactor | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    if redactor is not None:
        handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
