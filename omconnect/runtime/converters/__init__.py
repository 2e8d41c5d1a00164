"""Converters between record batches and message bodies, chosen by a pipeline's ``format``."""

from __future__ import annotations

from typing import Any

from omconnect.runtime.converters.base import Converter, Decoded, DecodedGroup, Encoded

FORMATS = ("avro", "json", "cloudevents", "raw")


class UnsupportedFormatError(ValueError):
    """A format name that has no converter (yet)."""


def make_converter(
    format_name: str,
    registry: Any,
    *,
    pipeline: str = "omconnect",
    broker_scheme: str | None = None,
    cloudevents_mode: str = "binary",
    cloudevents_type: str | None = None,
) -> Converter:
    """The converter for ``format_name``; ``registry`` is the pipeline's schema registry
    (``avro``, ``json`` and ``cloudevents`` register the schemas they write in it and read
    with them). ``cloudevents`` also takes the pipeline's name (its events' ``source``), the
    broker's URL scheme (which protocol binding names the attribute headers), its mode and
    the events' ``type``; the other formats ignore them."""
    if format_name == "avro":
        from omconnect.runtime.converters.avro import AvroConverter

        return AvroConverter(registry)
    if format_name == "json":
        from omconnect.runtime.converters.json import JsonConverter

        return JsonConverter(registry)
    if format_name == "cloudevents":
        from omconnect.runtime.converters.cloudevents import DEFAULT_TYPE, CloudEventsConverter

        return CloudEventsConverter(
            registry,
            pipeline=pipeline,
            binding=broker_scheme,
            mode=cloudevents_mode,
            event_type=cloudevents_type or DEFAULT_TYPE,
        )
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
