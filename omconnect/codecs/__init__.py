"""Pure columnar codecs shared by the connectors and the runtime.

This layer sits below ``omconnect.connectors.api`` and imports only ``omconnect.schemas``
(and third-party libraries), so a connector and the runtime use one implementation of each:

- ``avro``: the vectorised Avro codec (Arrow batches <-> Avro bodies, container-file blocks);
- ``json_text``: Arrow columns and record batches as JSON text (objects, JSON Lines);
- ``json_scan``: finding the values in JSON bodies without a Python object per row
  (``pyarrow.json`` parses, a numpy structural scan for maps, JSON documents and keys);
- ``json_values``: JSON text back to typed Arrow columns, with the writer's schema;
- ``uuid_text``: UUID columns to and from their ``8-4-4-4-12`` text;
- ``type_names``: the type names users write in pipeline files (``decimal(12,2)``,
  ``varchar``, ``array<int64>`` ...), parsed into omconnect types and back.
"""

from omconnect.codecs.json_text import json_lines, json_objects, json_texts
from omconnect.codecs.type_names import format_type, parse_type
from omconnect.codecs.uuid_text import uuid_from_text, uuid_to_text

__all__ = [
    "format_type",
    "json_lines",
    "json_objects",
    "json_texts",
    "parse_type",
    "uuid_from_text",
    "uuid_to_text",
]
