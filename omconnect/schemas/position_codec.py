"""Positions as text, losslessly: tagged JSON for the values plain JSON cannot carry.

Source positions (``Position.partition`` and ``Position.offset``) are dicts that the runtime
stores and hands back. Sources put more than JSON values in them: a CDC source's commit
timestamp, a table's last ``numeric`` id, a binary log position. This module writes them as
canonical JSON (sorted keys, no spaces) where every value plain JSON holds is written exactly
as ``json.dumps`` writes it, and every other value is one object with one tagged key:

=====================  =======================================================================
``{"$datetime": s}``   ``datetime``; ISO 8601 with microseconds when set; aware ones with their
                       UTC offset, plus ``[zone]`` when the zone is an IANA zone (ZoneInfo)
``{"$date": s}``       ``date`` (ISO 8601)
``{"$time": s}``       ``time`` (ISO 8601, with its offset when it has one, and ``[zone]``)
``{"$decimal": s}``    ``Decimal``, as ``str()`` writes it (exponent, NaN, -0 kept)
``{"$bytes": s}``      ``bytes``, ``bytearray``, ``memoryview``: standard base64
``{"$uuid": s}``       ``UUID`` (canonical hex text)
``{"$int": s}``        integers too long for Python's int <-> text limit: hexadecimal
``{"$object": {..}}``  a dict that would otherwise read as a tag (one key, a tag name)
=====================  =======================================================================

Tuples are written as lists. Dict keys must be strings. A dict with one key that is not a tag
name (``{"$ref": 1}``) is plain JSON and written as it is.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "decode_position_value",
    "encode_position_value",
    "position_from_json",
    "position_to_json",
]

_OBJECT = "$object"
_TAGS = frozenset({"$datetime", "$date", "$time", "$decimal", "$bytes", "$uuid", "$int", _OBJECT})
# Python refuses to turn ints of more than 4300 decimal digits into text (and back); such
# ints are written in hexadecimal, which has no limit. 14000 bits is about 4214 digits.
_LONGEST_PLAIN_INT_BITS = 14_000
_ZONE_SUFFIX = re.compile(r"^(?P<stamp>.*)\[(?P<zone>[^\]]+)\]$")


def encode_position_value(mapping: Mapping[str, Any]) -> str:
    """``mapping`` as canonical tagged JSON text (sorted keys, no spaces).

    Plain JSON values come out exactly as ``json.dumps(mapping, sort_keys=True,
    separators=(",", ":"))`` writes them, so ids and stored rows written before tags existed
    still match.

    Raises:
        TypeError: a value of a type the codec has no tag for (naming where it is), or a
            dict key that is not a string.
    """
    return json.dumps(position_to_json(mapping), sort_keys=True, separators=(",", ":"))


def decode_position_value(text: str) -> dict[str, Any]:
    """The dict ``encode_position_value`` wrote (or plain JSON text of an object).

    Raises:
        ValueError: the text is not JSON, not an object, or holds a malformed tag.
    """
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a position must be a JSON object, not {type(value).__name__}")
    return position_from_json(value)


def position_to_json(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` with every value made JSON-able by tagging (what export files hold).

    Raises:
        TypeError: as ``encode_position_value``.
    """
    return _dict_to_json(mapping, "position")


def position_from_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """A tagged JSON object (as ``position_to_json`` made it) with its tags read back.

    Values that are not JSON (already a ``datetime``, say) are kept as they are.

    Raises:
        ValueError: a malformed tag.
    """
    return {key: _from_json(item) for key, item in value.items()}


def _to_json(value: Any, where: str) -> Any:
    # bool before int: True is an int to Python, and JSON's true to us.
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        if value.bit_length() > _LONGEST_PLAIN_INT_BITS:
            return {"$int": hex(value)}
        return int(value)
    if isinstance(value, Mapping):
        converted = _dict_to_json(value, where)
        return (
            {_OBJECT: converted}
            if len(converted) == 1 and next(iter(converted)) in _TAGS
            else converted
        )
    if isinstance(value, (list, tuple)):
        return [_to_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dt.datetime):  # before date: a datetime is a date to Python
        return {"$datetime": _datetime_text(value)}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat() + _zone_suffix(value.tzinfo)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    raise TypeError(
        f"{where}: a position cannot hold {type(value).__name__} values; use JSON values, "
        "datetime, date, time, Decimal, bytes or UUID"
    )


def _dict_to_json(mapping: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: position keys must be strings, not {key!r}")
        out[key] = _to_json(item, f"{where}.{key}")
    return out


def _datetime_text(value: dt.datetime) -> str:
    return value.isoformat() + _zone_suffix(value.tzinfo)


def _zone_suffix(zone: dt.tzinfo | None) -> str:
    """``[Europe/Paris]`` for an IANA zone, which an offset alone does not name."""
    return f"[{zone.key}]" if isinstance(zone, ZoneInfo) else ""


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {key: _from_json(item) for key, item in value.items()}
    ((tag, body),) = value.items()
    if tag not in _TAGS:
        return {tag: _from_json(body)}
    if tag == _OBJECT:
        if not isinstance(body, dict):
            raise ValueError(f"{{{tag!r}: ...}} must hold an object")
        return {key: _from_json(item) for key, item in body.items()}
    if not isinstance(body, str):
        raise ValueError(f"{{{tag!r}: ...}} must hold a string, not {body!r}")
    try:
        return _read_tag(tag, body)
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise ValueError(f"malformed position value {{{tag!r}: {body!r}}}: {error}") from None


def _read_tag(tag: str, body: str) -> Any:
    if tag == "$datetime":
        return _read_datetime(body)
    if tag == "$date":
        return dt.date.fromisoformat(body)
    if tag == "$time":
        return _read_time(body)
    if tag == "$decimal":
        return Decimal(body)
    if tag == "$bytes":
        return base64.b64decode(body, validate=True)
    if tag == "$uuid":
        return uuid.UUID(body)
    return int(body, 16)


def _read_time(text: str) -> dt.time:
    match = _ZONE_SUFFIX.match(text)
    if match is None:
        return dt.time.fromisoformat(text)
    return dt.time.fromisoformat(match["stamp"]).replace(tzinfo=ZoneInfo(match["zone"]))


def _read_datetime(text: str) -> dt.datetime:
    match = _ZONE_SUFFIX.match(text)
    if match is None:
        return dt.datetime.fromisoformat(text)
    stamp = dt.datetime.fromisoformat(match["stamp"])
    zone = ZoneInfo(match["zone"])
    wall = stamp.replace(tzinfo=None)
    # The offset tells which of an ambiguous (or skipped) wall time it was: its fold.
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=zone, fold=fold)
        if candidate.utcoffset() == stamp.utcoffset():
            return candidate
    return stamp.astimezone(zone)
