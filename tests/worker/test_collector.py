"""The cycle collector of a run inside a host process: rare while runs go, as before after."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from omconnect.runtime.worker.collector import YOUNG_ALLOCATIONS, batch_collections


@pytest.fixture(autouse=True)
def host_collector() -> Iterator[tuple[int, int, int]]:
    """The host's own settings (restored whatever a failing test left)."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)
    gc.unfreeze()


def test_a_run_collects_rarely_and_the_host_gets_its_collector_back(
    host_collector: tuple[int, int, int],
) -> None:
    with batch_collections():
        assert gc.get_threshold() == (YOUNG_ALLOCATIONS, 10, 10)
        assert gc.get_freeze_count() > 0, "the host's objects are left out of collections"
    assert gc.get_threshold() == host_collector
    assert gc.get_freeze_count() == 0


def test_overlapping_runs_in_threads_restore_the_host_only_when_the_last_ends(
    host_collector: tuple[int, int, int],
) -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def first() -> None:
        with batch_collections():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with batch_collections():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.get_threshold())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [(YOUNG_ALLOCATIONS, 10, 10)], "the first run's end left the second's alone"
    assert gc.get_threshold() == host_collector


def test_a_failing_run_restores_the_host_collector(host_collector: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), batch_collections():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == host_collector and gc.get_freeze_count() == 0
