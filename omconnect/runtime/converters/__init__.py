"""Converters between record batches and message bodies, chosen by a pipeline's ``format``."""

from __future__ import annotations

from typing import Any

from omconnect.runtime.converters.base import Converter, Decoded, DecodedGroup, Encoded

FORMATS = ("avro", "json", "raw")


class UnsupportedFormatError(ValueError):
    """A format name that has no converter (yet)."""


def make_converter(format_name: str, registry: Any) -> Converter:
    """The converter for ``format_name``; ``registry`` is the pipeline's schema registry
    (``avro`` and ``json`` register the schemas they write in it and read with them)."""
    if format_name == "avro":
        from omconnect.runtime.converters.avro import AvroConverter

        return AvroConverter(registry)
    if format_name == "json":
        from omconnect.runtime.converters.json import JsonConverter

        return JsonConverter(registry)
    if format_name == "raw":
        from omconnect.runtime.converters.raw import RawConverter

        return RawConverter()
    raise UnsupportedFormatError(f"unknown format {format_name!r}; expected one of {FORMATS}")


__all__ = [
    "FORMATS",
    "Converter",
    "Decoded",
    "DecodedGroup",
    "Encoded",
    "UnsupportedFormatError",
    "make_converter",
]
