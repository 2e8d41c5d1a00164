"""Changing a pipeline's stored positions while it is stopped: ``omconnect offsets set | reset |
import`` and the API's ``PATCH`` / ``DELETE /pipelines/{name}/offsets`` share this.

Positions are shown with the pipeline's secrets masked; a masked secret in a position sent
back is put back when exactly one of the pipeline's secrets fits. The source connector
(``SourceConnector.validate_offset``) is asked whether it can resume from each position
before anything is stored, and every change holds the pipeline's run lock, so none happens
while any process runs the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omconnect.connectors.api import ConfigError, SourceConnector
from omconnect.runtime.brokers import open_broker
from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.state import OffsetStore, pipeline_stopped
from omconnect.runtime.state.backends import open_pipeline_offset_store
from omconnect.runtime.worker.runner import open_sink_consumer
from omconnect.schemas.record import Position

SINK_WITHOUT_TOPIC = (
    "broker: none: the sink reads no topic it could read again; resetting the source's "
    "positions is what delivers the rows again"
)


def sink_rewind_refusal(loaded: LoadedPipeline) -> str | None:
    """Why the sink of ``loaded`` cannot be rewound (None when it can): asked before any
    position is removed, so a refused reset changes nothing."""
    return SINK_WITHOUT_TOPIC if loaded.config.without_broker else None


def unmasked(loaded: LoadedPipeline, value: Any) -> Any:
    """``value`` (a decoded partition or offset) with masked secrets put back.

    Raises:
        ValueError: a masked text could stand for several secrets.
    """
    if isinstance(value, str):
        return loaded.redactor.unredact(value)
    if isinstance(value, dict):
        return {key: unmasked(loaded, item) for key, item in value.items()}
    if isinstance(value, list):
        return [unmasked(loaded, item) for item in value]
    return value


def usable_position(loaded: LoadedPipeline, position: Position) -> Position:
    """``position`` with masked secrets put back, once the source connector accepted it.

    Raises:
        ValueError: the connector cannot resume from it, the pipeline has no source, or a
            mask is ambiguous.
    """
    position = Position(
        unmasked(loaded, dict(position.partition)), unmasked(loaded, dict(position.offset))
    )
    if loaded.source is None:
        raise ValueError(f"pipeline {loaded.config.name!r} has no source: it keeps no positions")
    connector = loaded.source.registration.cls(loaded.source.spec)
    assert isinstance(connector, SourceConnector)
    try:
        connector.validate_offset(position.partition, position.offset)
    except ConfigError as error:
        where = f"{error.key}: " if error.key else ""
        name = loaded.source.registration.name
        raise ValueError(f"{where}{error} (the {name} source cannot resume from it)") from None
    return position


@contextmanager
def offset_store(loaded: LoadedPipeline) -> Iterator[OffsetStore]:
    """The pipeline's offset store (created when missing), closed afterwards."""
    cfg = loaded.config
    store = open_pipeline_offset_store(cfg.state, cfg.offsets, cfg.broker)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def changed_offset_store(loaded: LoadedPipeline, command: str) -> Iterator[OffsetStore]:
    """The offset store, with the pipeline's lock held by ``command``: no run starts meanwhile.

    Raises:
        PipelineRunningError: the pipeline runs now.
    """
    cfg = loaded.config
    with pipeline_stopped(cfg.state, cfg.name, command), offset_store(loaded) as store:
        yield store


async def rewind_sink(loaded: LoadedPipeline) -> None:
    """Commit offset 0 for every partition the sink's consumer group reads (see
    ``sink_rewind_refusal`` first)."""
    cfg = loaded.config
    broker = open_broker(cfg.broker)
    try:
        consumer = await open_sink_consumer(broker, loaded)
        try:
            ends = await consumer.end_offsets()
            await consumer.commit({tp: 0 for tp in ends})
        finally:
            await consumer.close()
    finally:
        await broker.close()
