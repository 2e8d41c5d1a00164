"""Issue item 4, the cause: when one loop of a run fails, the others are cancelled, and the
run must end. Two things kept it from ending:

* ``asyncio.wait_for`` on Python 3.11 drops a cancel that arrives as the awaited thing
  completes, so a loop of a torn-down run ran on (seen under ``serve``: a pipeline RUNNING with
  no progress after its source failed, every thread idle);
* cleanup that waited for a sibling that was gone: the sink's decode stage put its end marker
  into a full queue nobody would read again, so the cancel never finished and SIGTERM could
  not stop the worker.

In-process, with real threads, a real embedded broker and a source that really fails; the
sink is slow so that its queue is full when the failure tears the run down.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.worker.runner import PipelineRunner
from omconnect.runtime.worker.waiting import wait_for_event
from tests.support import toy_connectors  # noqa: F401  (registers the toy connectors)

ENDS_WITHIN = 15.0


def test_a_cancel_is_never_lost_when_the_event_is_set_at_the_same_moment() -> None:
    async def scenario() -> bool:
        event = asyncio.Event()
        waiting = asyncio.create_task(wait_for_event(event, 5))
        await asyncio.sleep(0.01)  # the waiter is inside its wait
        event.set()
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(scenario()), "the cancel was dropped and the waiter ran on"


def _run_in_thread(path: Path, once: bool) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(PipelineRunner(load_pipeline(path), once=once).run())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread, errors


def test_a_run_whose_source_fails_ends_while_its_slow_sink_has_a_full_queue(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: teardown\n"
        f"broker: embedded://{tmp_path / 'state'}\n"
        f"state: {tmp_path / 'state'}\n"
        "source: {connector: toy-streams, rows: 100000, batch_rows: 10, fail_at_row: 5000}\n"
        "topic: rows\n"
        "batching: {max_rows: 10, linger: 0}\n"
        "sink: {connector: toy-collect, name: teardown, put_delay: 0.2}\n"
    )
    for once in (False, True):
        thread, errors = _run_in_thread(path, once)
        thread.join(ENDS_WITHIN)
        assert not thread.is_alive(), f"the run (once={once}) never ended after its source failed"
        assert errors and "the source broke at row 5000" in str(errors[0]), errors
