"""Checking the column names a transform's options refer to."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from omconnect.connectors.api.errors import ConfigError


def require_columns(wanted: Iterable[str], columns: Sequence[str], key: str) -> None:
    """Raise ``ConfigError`` for the first name of ``wanted`` that is not in ``columns``.

    The message suggests the closest existing column and lists them all.
    """
    for name in wanted:
        if name in columns:
            continue
        close = difflib.get_close_matches(name, list(columns), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise ConfigError(f'no column "{name}"{hint}; columns: {", ".join(columns)}', key)
