"""Where a Postgres state lives: the ``state:`` URL, read once and described without secrets.

``state: postgresql://user:password@host:5432/db?schema=omconnect`` names the server, the
database and the schema that holds the state's tables (``omconnect`` unless ``schema=``
says otherwise, so that several states can share one database). ``postgres://`` and
SQLAlchemy's ``postgresql+psycopg://`` mean the same; every other query option is a libpq
connection option (``sslmode=require``, ``connect_timeout=5``, ...).

The password stays inside ``StateLocation.conninfo``, which is never printed: every message
names the server with ``where`` (``PostgreSQL at db:5432, database state``). libpq's own
messages about a malformed URL can quote it, so they are never passed on either.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from omconnect.runtime.state.backends import StateUnavailableError

DEFAULT_SCHEMA = "omconnect"
SCHEMA_OPTION = "schema"
_SCHEMES = ("postgresql", "postgres")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
_DEFAULT_OPTIONS = {"connect_timeout": "10", "application_name": "omconnect"}


@dataclass(frozen=True)
class StateLocation:
    """A Postgres state: how to connect (``conninfo``, secret) and what to call it."""

    conninfo: str = field(repr=False)
    """libpq connection string, password included: for ``psycopg.connect`` only."""
    schema: str
    """The schema holding the state's tables."""
    host: str
    port: str
    database: str
    user: str

    @classmethod
    def from_url(cls, url: str) -> StateLocation:
        """Read a ``postgresql://`` state URL; nothing is connected.

        Raises:
            StateUnavailableError: the URL is malformed or names an unusable schema (the
                message never quotes the password).
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower().split("+", 1)[0]
        if scheme not in _SCHEMES:
            raise StateUnavailableError(f"state: {parts.scheme}:// is not a postgresql:// URL")
        options = parse_qsl(parts.query, keep_blank_values=True)
        schemas = [value for key, value in options if key == SCHEMA_OPTION]
        if len(schemas) > 1:
            raise StateUnavailableError("state: the postgresql:// URL sets schema= twice")
        schema = schemas[0] if schemas else DEFAULT_SCHEMA
        _check_schema_name(schema)
        query = urlencode([(key, value) for key, value in options if key != SCHEMA_OPTION])
        libpq_url = urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))
        try:
            params = conninfo_to_dict(libpq_url)
        except ProgrammingError:
            raise StateUnavailableError(
                "state: the postgresql:// URL is malformed (check its host, port, database "
                "and options, and percent-encode special characters in the user and password)"
            ) from None
        for key, value in _DEFAULT_OPTIONS.items():
            params.setdefault(key, value)
        user = str(params.get("user") or os.environ.get("PGUSER") or getpass.getuser())
        return cls(
            conninfo=make_conninfo("", **params),
            schema=schema,
            host=str(params.get("host") or os.environ.get("PGHOST") or "the local socket"),
            port=str(params.get("port") or os.environ.get("PGPORT") or "5432"),
            database=str(params.get("dbname") or os.environ.get("PGDATABASE") or user),
            user=user,
        )

    @property
    def where(self) -> str:
        """``PostgreSQL at host:port, database db`` (no user, no password)."""
        return f"PostgreSQL at {self.host}:{self.port}, database {self.database}"


def _check_schema_name(schema: str) -> None:
    if not schema:
        raise StateUnavailableError("state: schema= in the postgresql:// URL is empty")
    if len(schema.encode()) > _MAX_IDENTIFIER_BYTES:
        raise StateUnavailableError(
            f"state: schema {schema!r} is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES} bytes"
        )
    if schema.lower().startswith("pg_"):
        raise StateUnavailableError(
            f"state: schema {schema!r} starts with pg_, which PostgreSQL reserves"
        )
