"""An idle sink waits for appends instead of polling for them: woken at once by an append of
this process, it sees another process's within about a second, and while nothing comes it
makes a bounded number of broker round trips (counted on the real embedded broker)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.runtime.brokers.embedded._sqlite_thread import SqliteThread
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.worker.runner import PipelineRunner
from omconnect.runtime.worker.sink_loop import CONTINUOUS_POLL_TIMEOUT
from omconnect.schemas.message_batch import MessageBatch
from tests.support.toy_connectors import COLLECTED

QUIET_SECONDS = 3.0


class CountingThread(SqliteThread):
    """The broker's own connection thread, counting what it is asked to run."""

    def __init__(self, calls: Counter[str], *args: Any) -> None:
        super().__init__(*args)
        self.calls = calls

    async def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls[getattr(function, "__name__", repr(function))] += 1
        return await super().run(function, *args, **kwargs)


class CountingBroker(EmbeddedBroker):
    """The embedded broker, counting its round trips to the file (every connection's)."""

    def __init__(self, directory: Path) -> None:
        self.calls: Counter[str] = Counter()
        super().__init__(directory)

    def _connection(self) -> SqliteThread:
        return CountingThread(self.calls, self.log_path, "FULL", 30.0)


def _sink_only(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nbroker: embedded://{tmp_path / 'b'}\nstate: {tmp_path / 's'}\n"
        f"topics: [t]\nformat: raw\ncommit_interval: 0.1\n"
        f"sink: {{connector: toy-collect, name: {name}}}\n"
    )
    return path


async def _rows(name: str, count: int, since: float) -> float:
    """Seconds from ``since`` (``time.time()``) until the sink flushed ``count`` rows."""
    while len(COLLECTED.get(name, _NONE).rows) < count:
        assert time.time() - since < 10, "the sink never got the rows"
        await asyncio.sleep(0.005)
    return time.time() - since


class _Nothing:
    rows: list[Any] = []


_NONE: Any = _Nothing()

CHILD = """
import asyncio, sys, time
from omconnect.runtime.brokers.embedded import EmbeddedBroker
from omconnect.schemas.message_batch import MessageBatch

async def main():
    broker = EmbeddedBroker(sys.argv[1])
    producer = await broker.producer()
    await producer.send("t", MessageBatch.build([b"7", b"8", b"9"]))
    print(time.time(), flush=True)
    await producer.close()
    await broker.close()

asyncio.run(main())
"""


def test_an_idle_sink_is_woken_by_appends_and_makes_few_round_trips(tmp_path: Path) -> None:
    name = "idle-sink"
    COLLECTED.pop(name, None)

    async def body() -> tuple[Counter[str], float, float]:
        other = EmbeddedBroker(tmp_path / "b")  # another pipeline of this process
        await other.create_topic("t")
        broker = CountingBroker(tmp_path / "b")
        stop = asyncio.Event()
        run = asyncio.create_task(
            PipelineRunner(load_pipeline(_sink_only(tmp_path, name)), broker=broker).run(stop)
        )
        try:
            await asyncio.sleep(2.5)  # joined, and its polls settled into idling
            broker.calls.clear()
            await asyncio.sleep(QUIET_SECONDS)
            quiet = Counter(broker.calls)

            producer = await other.producer()
            sent = time.time()
            await producer.send("t", MessageBatch.build([b"1", b"2"]))
            in_process = await _rows(name, 2, sent)
            await producer.close()
            await other.close()

            await asyncio.sleep(1.5)  # idle again: its polls wait the whole timeout
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, str(tmp_path / "b"), stdout=asyncio.subprocess.PIPE
            )
            assert child.stdout is not None
            appended = float((await child.stdout.readline()).decode())
            other_process = await _rows(name, 5, appended)
            await child.wait()
        finally:
            stop.set()
            await run
        return quiet, in_process, other_process

    quiet, in_process, other_process = asyncio.run(body())
    # One look a second (a poll waits a second; the embedded consumer looks at the file
    # once a second when idle), where it looked twice every 0.2 s; one more for a poll
    # that ended as the window began. The consumer lag needs no end offsets while idle.
    assert quiet["_read_on_thread"] <= QUIET_SECONDS / CONTINUOUS_POLL_TIMEOUT + 1, quiet
    assert quiet["_end_offsets_on_thread"] == 0, quiet
    assert quiet["heartbeat"] <= 1, quiet
    assert sum(quiet.values()) <= 6, quiet
    # Woken by the append, not found by the next look a second later.
    assert in_process < 0.5
    assert other_process < 1.6
    assert sorted(COLLECTED[name].ids()) == [1, 2, 7, 8, 9]
