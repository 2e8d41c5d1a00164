"""A pipeline's stored positions, for ``offsets list`` and ``GET /pipelines/{name}/offsets``.

The same entries ``omconnect offsets list`` prints, one JSON object each: source positions
from the pipeline's offset store, that of its ``state:`` or, with ``offsets: broker``, the one
in its broker (``{"kind": "source", "partition": {...}, "offset": {...}}``), and the
committed offsets of the sink's consumer group on the broker
(``{"kind": "sink", "partition": {"topic": T, "partition": P}, "offset": {"offset": N}}``;
with ``broker: none``, where the sink's commits left each topic's numbering, from the offset
store).
Values JSON cannot hold are tagged (``{"$datetime": "..."}``, see
``omconnect.schemas.position_codec``); ``offsets set`` reads them back the same way. Sink
entries cover every topic the sink reads (``<topic>.<stream>`` too). Reading them while the
pipeline runs is safe: nothing is written and the consumer group is not joined. Nothing is
created either: a pipeline that never ran (no offset store, no embedded broker log) has no
entries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from omconnect.runtime.brokers import BrokerNotFoundError, open_broker
from omconnect.runtime.brokers.direct import sink_namespace
from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.state.backends import open_existing_pipeline_offset_store
from omconnect.runtime.worker.runner import open_sink_consumer
from omconnect.schemas.position_codec import position_to_json


async def pipeline_offsets(loaded: LoadedPipeline) -> list[dict[str, Any]]:
    """Every stored position of ``loaded``: source positions first, then sink offsets.

    Raises:
        Exception: whatever the offset store or the broker raise when they cannot be reached
            (callers answer with a redacted error).
    """
    entries = await asyncio.to_thread(_source_entries, loaded)
    if loaded.sink is not None:
        committed = await sink_offsets(loaded)
        for (topic, partition), offset in sorted(committed.items()):
            entries.append(
                {
                    "kind": "sink",
                    "partition": {"topic": topic, "partition": partition},
                    "offset": {"offset": offset},
                }
            )
    return entries


def _source_entries(loaded: LoadedPipeline) -> list[dict[str, Any]]:
    cfg = loaded.config
    store = open_existing_pipeline_offset_store(cfg.state, cfg.offsets, cfg.broker)
    if store is None:
        return []
    try:
        return [
            {
                "kind": "source",
                "partition": position_to_json(p.partition),
                "offset": position_to_json(p.offset),
            }
            for p in store.all(cfg.name)
        ]
    finally:
        store.close()


async def sink_offsets(loaded: LoadedPipeline) -> dict[tuple[str, int], int]:
    """The committed offsets of the sink's consumer group, read without consuming (none
    when the broker has no storage yet: nothing was ever committed, or when it is a queue,
    whose consumers acknowledge messages instead)."""
    cfg = loaded.config
    if cfg.without_broker:
        return await asyncio.to_thread(_direct_sink_offsets, loaded)
    try:
        broker = open_broker(cfg.broker, create=False)
    except BrokerNotFoundError:
        return {}
    if not broker.capabilities.log:
        await broker.close()
        return {}
    try:
        consumer = await open_sink_consumer(broker, loaded)
        try:
            return await consumer.committed()
        finally:
            await consumer.close()
    finally:
        await broker.close()


def _direct_sink_offsets(loaded: LoadedPipeline) -> dict[tuple[str, int], int]:
    """Without a broker: where the sink's commits left each topic's numbering, kept in the
    offset store (``brokers/direct.py``)."""
    cfg = loaded.config
    store = open_existing_pipeline_offset_store(cfg.state, cfg.offsets, cfg.broker)
    if store is None:
        return {}
    try:
        return {
            (str(p.partition["topic"]), int(p.partition["partition"])): int(p.offset["offset"])
            for p in store.all(sink_namespace(cfg.name))
        }
    finally:
        store.close()
