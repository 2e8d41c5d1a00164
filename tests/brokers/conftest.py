"""Fixtures for the broker tests: one contract, every backend.

``broker_url`` is parametrised over the backends that can run here. Only the embedded broker
exists today; a server-backed driver adds a param that builds its URL from an environment
variable (e.g. ``OMCONNECT_TEST_KAFKA``) and skips when it is unset, so the contract test body
stays the same for every driver.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from omconnect.schemas.message_batch import MessageBatch

T = TypeVar("T")

BROKER_BACKENDS = ["embedded"]


def _embedded_url(tmp_path: Path) -> str:
    return f"embedded://{tmp_path / 'broker'}"


_URL_BUILDERS: dict[str, Callable[[Path], str]] = {"embedded": _embedded_url}


@pytest.fixture(params=BROKER_BACKENDS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty broker (or of a shared server, with fresh topic names)."""
    return _URL_BUILDERS[request.param](tmp_path)


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses, so server-backed brokers need no cleanup."""
    return f"t-{uuid.uuid4().hex[:12]}"


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a test's async body on a fresh event loop, failing instead of hanging."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


def numbered_messages(start: int, count: int, key_space: int | None = None) -> MessageBatch:
    """Messages whose values are ``b"m<number>"``; keys ``b"k<number % key_space>"``."""
    numbers = range(start, start + count)
    keys = None if key_space is None else [f"k{n % key_space}".encode() for n in numbers]
    return MessageBatch.build(
        [f"m{n}".encode() for n in numbers], keys=keys, timestamps=1_700_000_000_000 + start
    )
