"""Avro bodies: the vectorised codec, the Confluent wire header and the ``avro`` converter."""

from omconnect.runtime.converters.avro.converter import AvroConverter
from omconnect.runtime.converters.avro.decoder import decode_batch, decode_batch_lenient
from omconnect.runtime.converters.avro.encoder import encode_batch, encode_batch_lenient
from omconnect.runtime.converters.avro.errors import (
    CorruptBodiesError,
    InvalidAvroValue,
    UnencodableRowsError,
)
from omconnect.runtime.converters.avro.wire_header import HEADER_SIZE, header, read_headers

__all__ = [
    "HEADER_SIZE",
    "AvroConverter",
    "CorruptBodiesError",
    "InvalidAvroValue",
    "UnencodableRowsError",
    "decode_batch",
    "decode_batch_lenient",
    "encode_batch",
    "encode_batch_lenient",
    "header",
    "read_headers",
]
