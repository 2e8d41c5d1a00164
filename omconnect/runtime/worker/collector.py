"""Python's cycle collector tuned for batch work: the same for ``omconnect run`` and for a run
inside Airflow or Dagster.

A run's batches are Arrow buffers, not object graphs, yet its many short-lived Python objects
(futures, small lists, dataclasses per batch) drive the collector at its default of one young
collection every 700 net allocations, and each older collection walks every object the process
holds. On B1 (1M rows, PostgreSQL -> Parquet) the collector cost about 5% of the process's
CPU; inside an orchestrator, whose process holds several times as many objects (Airflow's or
Dagster's modules and models), each full collection costs that much more. So a run collects
every ``YOUNG_ALLOCATIONS`` allocations and skips the objects that existed before it
(``gc.freeze``).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_ALLOCATIONS = 100_000
"""Allocations (net of frees) between two collections of the youngest generation."""


def tune_for_batch_work() -> None:
    """Collect rarely from now on (a process that runs omconnect alone: the CLI)."""
    gc.set_threshold(YOUNG_ALLOCATIONS, *gc.get_threshold()[1:])


_lock = threading.Lock()
_blocks = 0  # batch_collections blocks running now (runs in several threads of one host)
_host_thresholds = gc.get_threshold()


@contextmanager
def batch_collections() -> Iterator[None]:
    """Collect rarely for the block, skipping the objects that existed before it, then as
    before once the last such block ends (a run inside a host process: an Airflow task, a
    Dagster materialisation, several at once in threads)."""
    global _blocks, _host_thresholds
    with _lock:
        if _blocks == 0:
            _host_thresholds = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNG_ALLOCATIONS, *_host_thresholds[1:])
        _blocks += 1
    try:
        yield
    finally:
        with _lock:
            _blocks -= 1
            if _blocks == 0:
                gc.set_threshold(*_host_thresholds)
                gc.unfreeze()
