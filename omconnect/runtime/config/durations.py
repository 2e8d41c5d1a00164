"""Durations and byte sizes as people write them in pipeline files.

A duration is a number of seconds (``5``, ``0.2``) or a string of one or more number-unit pairs
(``"200ms"``, ``"5s"``, ``"2m"``, ``"1h30m"``, ``"1d"``); it parses into float seconds. A size
is a number of bytes (``1048576``) or a number with a unit (``"16MiB"``, ``"16MB"``,
``"512KiB"``, ``"1GB"``); it parses into int bytes. ``Duration`` and ``ByteSize`` are the
annotated types pydantic models use; their JSON Schema accepts both spellings.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*([Mm][Ss]|[SsMmHhDd])\s*)+$"
_DURATION_HINT = 'expected seconds as a number or a string like "200ms", "5s", "2m", "1h"'

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([KkMmGgTt][Ii]?[Bb]|[Bb])?\s*$"
_SIZE_HINT = 'expected bytes as an integer or a string like "512KiB", "16MiB", "16MB", "1GB"'


def parse_duration(value: Any) -> float:
    """Seconds from a number or a duration string.

    Raises:
        ValueError: ``value`` is negative, not finite, a bool, or not a duration string.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {_show(value)}: {_DURATION_HINT}")
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(_DURATION_PATTERN, value, re.IGNORECASE):
        seconds = sum(
            float(number) * _DURATION_UNITS[unit.lower()]
            for number, unit in _DURATION_PART.findall(value)
        )
    else:
        raise ValueError(f"invalid duration {_show(value)}: {_DURATION_HINT}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {_show(value)}: must be a finite, non-negative time")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from an integer or a size string (decimal ``KB``/``MB``, binary ``KiB``/``MiB``).

    Raises:
        ValueError: ``value`` is negative, fractional bytes, a bool, or not a size string.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid size {_show(value)}: {_SIZE_HINT}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE_RE.match(value)):
        number, unit = match.group(1), match.group(2).lower() or "b"
        if unit not in _SIZE_UNITS:
            raise ValueError(f'invalid size {_show(value)}: unknown unit "{match.group(2)}"')
        size = round(float(number) * _SIZE_UNITS[unit])
    else:
        raise ValueError(f"invalid size {_show(value)}: {_SIZE_HINT}")
    if size < 0:
        raise ValueError(f"invalid size {_show(value)}: must not be negative")
    return size


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _show(value: Any) -> str:
    """The value as it would appear in the YAML file, quoted when it is a string."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) or value is None:
        return str(value)
    return f"of type {type(value).__name__}"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION_PATTERN},
            ],
            "description": "Seconds, or a duration such as 200ms, 5s, 2m, 1h.",
        }
    ),
]
"""Float seconds, written as a number or a duration string."""

ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _SIZE_PATTERN},
            ],
            "description": "Bytes, or a size such as 512KiB, 16MiB, 16MB, 1GB.",
        }
    ),
]
"""Int bytes, written as an integer or a size string."""
