"""Whether a pipeline has new data to move, cheaply, for a sensor to decide on a run.

``new_data_marker`` returns a text that changes when new data arrives (and no text when
there is nothing to do), so that a sensor requests one run per change:

- a source with a local ``path`` (files, a directory or a glob): a digest of the names,
  sizes and modification times of the files it matches: a new or grown file is new data;
- a pipeline that only sinks topics: the topics' end offsets when the sink's consumer group
  is behind them (its committed offsets are lower), none when it is caught up;
- any other source (databases, change data capture, devices, object stores): ``CONTINUOUS``,
  as only a run can tell; a sensor then requests a run whenever none is in progress.

Nothing here imports Dagster.
"""

from __future__ import annotations

import glob
import hashlib
import json
from pathlib import Path

from omconnect.runtime.brokers import BrokerNotFoundError, open_broker
from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.worker.runner import open_sink_consumer

CONTINUOUS = "continuous"
"""The marker of a source whose new data only a run can find."""


async def new_data_marker(loaded: LoadedPipeline) -> str | None:
    """A text that changes when new data arrives, None when there is nothing new to move, or
    ``CONTINUOUS`` (relative paths are resolved against the working directory)."""
    source = loaded.source
    if source is None:
        return await _topic_lag_marker(loaded)
    path = getattr(source.spec, "path", None)
    if isinstance(path, str) and "://" not in path:
        return _files_marker(path)
    return CONTINUOUS


def _files_marker(path: str) -> str | None:
    """A digest of what ``path`` (a file, a directory or a glob) matches; None for nothing."""
    if any(char in path for char in "*?["):
        files = [Path(name) for name in glob.glob(path, recursive=True)]
    elif Path(path).is_dir():
        files = list(Path(path).rglob("*"))
    else:
        files = [Path(path)]
    entries = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:  # gone meanwhile, or never there
            continue
        if file.is_file():
            entries.append((str(file), stat.st_size, stat.st_mtime_ns))
    if not entries:
        return None
    return _digest(sorted(entries))


async def _topic_lag_marker(loaded: LoadedPipeline) -> str | None:
    """The end offsets of the sink's topics when its consumer group is behind them."""
    try:
        broker = open_broker(loaded.config.broker, create=False)
    except BrokerNotFoundError:  # nothing was ever published
        return None
    try:
        if not (broker.capabilities.log and broker.capabilities.end_offsets):
            return CONTINUOUS  # a queue: messages are there to take, or not
        consumer = await open_sink_consumer(broker, loaded)
        try:
            ends = await consumer.end_offsets()
            committed = await consumer.committed()
        finally:
            await consumer.close()
    finally:
        await broker.close()
    if all(end <= committed.get(tp, 0) for tp, end in ends.items()):
        return None
    return _digest(sorted((topic, partition, end) for (topic, partition), end in ends.items()))


def _digest(entries: list[tuple[str, int, int]]) -> str:
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:32]
