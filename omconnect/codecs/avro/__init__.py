"""The vectorised Avro codec: Arrow record batches <-> Avro binary bodies (schemaless datums),
and Avro object container files read block by block.

- ``encode``: ``encode_batch`` / ``encode_batch_lenient``, one body per row;
- ``decode``: ``decode_batch`` / ``decode_batch_lenient``, one row per body;
- ``types``: the shape of Avro schema nodes and Arrow values in Avro's units;
- ``varints``, ``decimals``, ``bodies``, ``cursor``, ``per_row``: the pieces they share.

Bodies and Avro schemas only: the Confluent wire header and the schema registry belong to the
runtime's ``avro`` converter, the omconnect <-> Avro schema mapping to ``omconnect.schemas``.
"""

from omconnect.codecs.avro.bodies import binary_with_nulls
from omconnect.codecs.avro.decode import decode_batch, decode_batch_lenient
from omconnect.codecs.avro.encode import encode_batch, encode_batch_lenient
from omconnect.codecs.avro.errors import CorruptBodiesError, InvalidAvroValue, UnencodableRowsError
from omconnect.codecs.avro.types import AvroType

__all__ = [
    "AvroType",
    "CorruptBodiesError",
    "InvalidAvroValue",
    "UnencodableRowsError",
    "binary_with_nulls",
    "decode_batch",
    "decode_batch_lenient",
    "encode_batch",
    "encode_batch_lenient",
]
