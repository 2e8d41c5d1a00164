"""How a failed command reaches the user: one redacted line on stderr and a non-zero exit.

Every command runs under ``report_failure`` (see ``main``). A known problem prints its own
message: a bad pipeline file or argument (exit 2), a broker or offset store that is not
available, missing or unusable, a full disk, a pipeline running elsewhere (exit 1). Anything
else prints ``omconnect: unexpected error: TYPE: MESSAGE``, with the hint that
``--log-level DEBUG`` shows the traceback (which it then prints). Secrets are masked: the
values of secret-looking environment variables, and every secret of the pipelines the command
loaded (``note_secrets``).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import traceback

from omconnect.runtime.brokers import BrokerNotFoundError, UnsupportedBrokerError
from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.config.redaction import Redactor
from omconnect.runtime.state import (
    OffsetStoreError,
    PipelineLockLostError,
    PipelineRunningError,
    StateUnavailableError,
)

USAGE_EXIT = 2
FAILURE_EXIT = 1

_KNOWN: dict[type[BaseException], int] = {
    PipelineConfigError: USAGE_EXIT,
    UnsupportedBrokerError: USAGE_EXIT,
    StateUnavailableError: USAGE_EXIT,
    BrokerNotFoundError: FAILURE_EXIT,
    OffsetStoreError: FAILURE_EXIT,
    PipelineRunningError: FAILURE_EXIT,
    PipelineLockLostError: FAILURE_EXIT,
    BrokerError: FAILURE_EXIT,  # the drivers' one-line errors (unreachable, refused)
}

_noted: list[Redactor] = []


class CommandError(Exception):
    """A problem the user can act on; its message is the whole report.

    Args:
        message: one line saying what is wrong and, if possible, what to do.
        exit_code: 2 for a bad argument or file, 1 (default) for anything else.
    """

    def __init__(self, message: str, exit_code: int = FAILURE_EXIT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def note_secrets(redactor: Redactor) -> None:
    """Mask ``redactor``'s secrets (a loaded pipeline's) in whatever failure is reported."""
    _noted.append(redactor)


def report_failure(error: Exception, command: str, debug: bool) -> int:
    """Print ``error`` for a person on stderr; returns the exit status.

    Args:
        error: what the command raised.
        command: the command's words (``offsets list``), for unexpected errors.
        debug: print the (redacted) traceback too.
    """
    message, exit_code = describe_failure(error)
    if message is None:
        hint = "" if debug else " (run with --log-level DEBUG to see the traceback)"
        message = f"omconnect {command}: unexpected error: {type(error).__name__}: {error}{hint}"
    if debug:
        print(_redact("".join(traceback.format_exception(error))), file=sys.stderr, end="")
    print(_redact(message), file=sys.stderr)
    return exit_code


def describe_failure(error: BaseException) -> tuple[str | None, int]:
    """The message and exit status of a known problem; ``(None, 1)`` for any other error."""
    if isinstance(error, CommandError):
        return str(error), error.exit_code
    for kind, exit_code in _KNOWN.items():
        if isinstance(error, kind):
            return str(error), exit_code
    if isinstance(error, OSError):
        return _describe_os_error(error), FAILURE_EXIT
    if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorname", "") == "SQLITE_FULL":
        return f"the disk is full (SQLite: {error})", FAILURE_EXIT
    return None, FAILURE_EXIT


def _describe_os_error(error: OSError) -> str:
    where = os.fsdecode(error.filename) if error.filename is not None else None
    if error.errno == errno.ENOSPC:
        return f"the disk holding {where} is full" if where else "the disk is full"
    reason = error.strerror or str(error)
    return f"{where}: {reason}" if where else reason


def _redact(text: str) -> str:
    redactor = Redactor()
    redactor.add_environment(os.environ)
    for noted in (redactor, *_noted):
        text = noted.redact(text)
    return text
