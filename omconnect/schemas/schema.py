"""``Schema``: the named, versioned shape of the records on one stream."""

from __future__ import annotations

from dataclasses import dataclass, replace

from omconnect.schemas.types import DataType, Field


@dataclass(frozen=True)
class Schema:
    """An ordered list of fields with a name, a version and optional key fields.

    ``key_fields`` name the fields that identify a record (a table's primary key); sinks that
    upsert use them, and the runtime uses them to build the message key when a source emits
    no separate key.
    """

    name: str
    fields: tuple[Field, ...]
    version: int = 1
    key_fields: tuple[str, ...] = ()
    doc: str | None = None

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"schema {self.name!r}: duplicate field names {duplicated}")
        missing = [k for k in self.key_fields if k not in names]
        if missing:
            raise ValueError(f"schema {self.name!r}: key fields {missing} are not fields")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"schema {self.name!r} has no field {name!r}")

    def type_of(self, name: str) -> DataType:
        return self.field(name).type

    def with_fields(self, fields: tuple[Field, ...] | list[Field]) -> Schema:
        """A copy with other fields; key fields that no longer exist are dropped."""
        kept = tuple(k for k in self.key_fields if any(f.name == k for f in fields))
        return replace(self, fields=tuple(fields), key_fields=kept)

    def key_schema(self) -> Schema | None:
        """The schema of the key fields alone, or None when the schema has no key."""
        if not self.key_fields:
            return None
        key = tuple(self.field(k) for k in self.key_fields)
        return Schema(name=f"{self.name}_key", fields=key, version=self.version)
