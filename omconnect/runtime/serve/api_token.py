"""Where ``serve``'s API token comes from: a file, the environment, or generated on first start.

In order: ``--token-file PATH`` (default ``$OMCONNECT_API_TOKEN_FILE``, the convention for
Docker and Kubernetes secrets), then ``$OMCONNECT_API_TOKEN``, then the file ``api-token``
under the state directory. That file is generated on the first start without a token
(32 random bytes, URL-safe) with owner-only permissions (0600) and reused on later starts, so
a worker is never open: anyone who can read the state directory can use the API, and no one
else. The token itself never goes to a log: the log names the file, and only an interactive
terminal sees the token, once, when it is generated.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_VARIABLE = "OMCONNECT_API_TOKEN"
TOKEN_FILE_VARIABLE = "OMCONNECT_API_TOKEN_FILE"
GENERATED_TOKEN_FILE = "api-token"
MAX_TOKEN_BYTES = 4096


class ApiTokenError(Exception):
    """No usable token: the message names the file or variable and what is wrong with it."""


@dataclass(frozen=True)
class ApiToken:
    """The token and where it came from (for the log; never the token itself)."""

    value: str = field(repr=False)
    source: str
    """``the file PATH`` or ``$OMCONNECT_API_TOKEN``."""
    path: Path | None = None
    """The file the token is in, if any."""
    generated: bool = False
    """Created by this start (the only time a terminal is shown the token)."""


def resolve_api_token(
    token_file: str | None, state_directory: Path | None, environ: Mapping[str, str]
) -> ApiToken:
    """The token ``serve`` requires, from the first source that gives one.

    Args:
        token_file: ``--token-file``, or None to fall back to ``$OMCONNECT_API_TOKEN_FILE``.
        state_directory: where a token is generated and kept when no other source gives one;
            None when the state is not a directory (a ``postgresql://`` URL).
        environ: the environment to read the variables from.

    Raises:
        ApiTokenError: a named file cannot be read or is empty, or no source gives a token
            and there is no state directory to keep one in.
    """
    token_file = token_file or environ.get(TOKEN_FILE_VARIABLE) or None
    if token_file is not None:
        path = Path(token_file)
        return ApiToken(read_token_file(path), f"the file {path}", path)
    from_environment = environ.get(TOKEN_VARIABLE, "").strip()
    if from_environment:
        return ApiToken(from_environment, f"${TOKEN_VARIABLE}")
    if state_directory is None:
        raise ApiTokenError(
            f"no API token: give --token-file PATH or ${TOKEN_VARIABLE} (a token is generated "
            "only when the state is a directory)"
        )
    return kept_token(state_directory / GENERATED_TOKEN_FILE)


def read_token_file(path: Path) -> str:
    """The token in ``path``, surrounding whitespace (a final newline) removed.

    Raises:
        ApiTokenError: the file cannot be read, is empty or is too large to be a token.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise ApiTokenError(f"cannot read the API token file {path}: {exc.strerror}") from None
    if len(data) > MAX_TOKEN_BYTES:
        raise ApiTokenError(f"the API token file {path} is larger than {MAX_TOKEN_BYTES} bytes")
    try:
        token = data.decode().strip()
    except UnicodeDecodeError:
        raise ApiTokenError(f"the API token file {path} is not UTF-8 text") from None
    if not token:
        raise ApiTokenError(f"the API token file {path} is empty")
    return token


def kept_token(path: Path) -> ApiToken:
    """The token kept in ``path``, generated (mode 0600) when the file does not exist yet.

    Raises:
        ApiTokenError: the file or its directory cannot be created or read.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: of two workers starting on one state directory, one writes, both read.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _owner_only(path)
        return ApiToken(read_token_file(path), f"the file {path}", path)
    except OSError as exc:
        raise ApiTokenError(f"cannot create the API token file {path}: {exc.strerror}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return ApiToken(token, f"the file {path}", path, generated=True)


def _owner_only(path: Path) -> None:
    """Take group and other permissions off a kept token file (a copied or restored one)."""
    with contextlib.suppress(OSError):  # not ours to change: reading it says what is wrong
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
