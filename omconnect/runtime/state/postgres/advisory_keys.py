"""The keys of the advisory locks a Postgres state takes.

PostgreSQL's advisory locks are named by one 64-bit integer per database. A key here is a
hash of what it guards (``tables``, ``registry``, ``pipeline``), the state's schema (two
states in one database lock apart) and a name (the pipeline's), so omconnect's locks neither
collide with each other nor, in practice, with an application's own. ``pg_locks`` shows a
key as two 32-bit halves (``classid``, ``objid``): ``key_halves`` finds it there.
"""

from __future__ import annotations

import hashlib

TABLES = "tables"
"""Creating and migrating the state's tables (a transaction-level lock)."""
REGISTRY = "registry"
"""Registering or deleting schema versions (a transaction-level lock)."""
PIPELINE = "pipeline"
"""One pipeline's run lock (a session-level lock, held for the run)."""


def advisory_key(purpose: str, schema: str, name: str = "") -> int:
    """The signed 64-bit key of the ``purpose`` lock of ``name`` in state ``schema``."""
    text = "\0".join(("omconnect", purpose, schema, name)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


def key_halves(key: int) -> tuple[int, int]:
    """``(classid, objid)``: how ``pg_locks`` shows the advisory lock ``key``."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF
