"""``NatsKvOffsetStore``: source positions in a JetStream key-value bucket (``offsets: broker``
on a ``nats://`` broker), where NATS users look for them (``nats kv ls omconnect-offsets``).

The bucket is ``omconnect-offsets`` (``omconnect-offsets-<namespace>`` when the broker URL has
``?namespace=``), made when missing with history 1 and the URL's ``storage`` and ``replicas``.
A position is one key, ``<namespace>.<digest of the partition id>``: the namespace (the
pipeline name) with every character outside ``[A-Za-z0-9-]`` written ``_XX`` per UTF-8 byte
(``orders.v2`` -> ``orders_2Ev2``; an empty one is ``_``), then the first 32 hex digits of the
SHA-256 of ``partition_id`` (partitions can be longer than keys may be and hold characters
keys may not). The value is ``{"offset": ..., "partition": ...}`` as canonical tagged JSON
(``schemas.position_codec``), so the partition is known without its key; ``delete`` writes
the key's delete marker. Reads go to the server every time: another process's writes are seen
at once.

nats-py is asyncio-only: the store runs its own event loop in a daemon thread
(``omconnect-nats-offsets``) that holds the connection, and every call of this synchronous
facade runs a coroutine there and waits for it (bounded by the URL's ``ack_timeout``). So it
may be called from any thread, an event loop's included (it blocks that thread for the round
trip, as the SQLite store blocks it for a file write). Calls are serialised by a lock, so two
``put`` of one partition from two threads land in the order they were made.

Guarantees of ``put``:

* Durable as the server's JetStream storage is: ``put`` returns once the server acknowledged
  every key (``OffsetStoreError`` otherwise). A file bucket survives a restart of the server
  process; a power loss may lose what the server wrote since its last sync (``sync_interval``,
  2 minutes by default) unless it runs with ``sync_always``; ``?replicas=3`` survives the loss
  of a machine of a cluster.
* Not atomic across keys: JetStream key-value has no multi-key transaction, so the keys of
  one call are written concurrently and a crash mid-put (of this process or the server) may
  store some positions of the call and not the others. Each key holds a whole position (one
  message), never a torn one, and every stored position is one the source reached, so a
  restart resumes the partitions that were not stored from their previous positions and
  re-delivers, never skips (at-least-once holds). Use ``offsets: state`` (SQLite or Postgres)
  for a source whose partitions must move together.

Errors are ``OffsetStoreError`` naming the bucket and the servers (never the URL's password).
nats-py (the ``omconnect[nats]`` extra) is imported by this module only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from omconnect.runtime.brokers import parse_broker_url
from omconnect.runtime.brokers.nats._options import parse_options
from omconnect.runtime.state.offsets.base import OffsetStore, OffsetStoreError
from omconnect.schemas.position_codec import encode_position_value, position_from_json
from omconnect.schemas.record import Position, partition_id

__all__ = ["DEFAULT_BUCKET", "NatsKvOffsetStore", "bucket_name", "namespace_token"]

DEFAULT_BUCKET = "omconnect-offsets"
_API_TIMEOUT = 5.0  # a bound on each JetStream API call (get, watch, bucket info)
_CONCURRENT_PUTS = 256
_KEPT = re.compile(r"[A-Za-z0-9-]")
_DIGITS = 32

log = logging.getLogger("omconnect.offsets.nats")

T = TypeVar("T")


def bucket_name(namespace: str = "") -> str:
    """The bucket of a broker URL's ``?namespace=`` (``""``: none)."""
    return f"{DEFAULT_BUCKET}-{namespace}" if namespace else DEFAULT_BUCKET


def namespace_token(namespace: str) -> str:
    """``namespace`` as one key token: ``[A-Za-z0-9-]`` kept, any other character ``_XX`` per
    UTF-8 byte (reversible, and never holding the ``.`` that separates tokens)."""
    if not namespace:
        return "_"
    return "".join(
        char if _KEPT.fullmatch(char) else "".join(f"_{byte:02X}" for byte in char.encode())
        for char in namespace
    )


def _namespace_of(token: str) -> str | None:
    """The inverse of ``namespace_token``; None for a token it does not write."""
    if token == "_":
        return ""
    raw = bytearray()
    at = 0
    while at < len(token):
        if token[at] == "_":
            digits = token[at + 1 : at + 3]
            if len(digits) != 2 or not re.fullmatch(r"[0-9A-F]{2}", digits):
                return None
            raw.append(int(digits, 16))
            at += 3
        elif _KEPT.fullmatch(token[at]):
            raw += token[at].encode()
            at += 1
        else:
            return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _key(namespace: str, pid: str) -> str:
    digest = hashlib.sha256(pid.encode()).hexdigest()[:_DIGITS]
    return f"{namespace_token(namespace)}.{digest}"


def _value(pid: str, offset: str) -> bytes:
    """``{"offset": ..., "partition": ...}``, canonical: both parts are codec text already."""
    return f'{{"offset":{offset},"partition":{pid}}}'.encode()


def _decoded(value: bytes) -> tuple[str, Position]:
    """The partition id and position of a stored value.

    Raises:
        ValueError: not a value this store writes.
    """
    document = json.loads(value)
    if not isinstance(document, dict) or set(document) != {"offset", "partition"}:
        raise ValueError("not {'offset': ..., 'partition': ...}")
    partition, offset = document["partition"], document["offset"]
    if not isinstance(partition, dict) or not isinstance(offset, dict):
        raise ValueError("partition and offset must be objects")
    pid = json.dumps(partition, sort_keys=True, separators=(",", ":"))
    return pid, Position(position_from_json(partition), position_from_json(offset))


class NatsKvOffsetStore(OffsetStore):
    """Offsets in a key-value bucket of the ``nats://`` broker ``url``.

    Opening starts the store's event loop thread, connects (within the URL's
    ``connect_timeout``) and opens the bucket, making it when ``create`` (else
    ``LookupError`` when it does not exist).

    Args:
        url: the pipeline's broker URL (``nats://[user:password@]host:4222?...``); its
            options set the timeouts, the namespace, and the storage and replicas of a bucket
            made here.
        bucket: the bucket (default: ``bucket_name`` of the URL's namespace).
        create: make the bucket when it does not exist.

    Raises:
        ValueError: the URL is malformed (the broker driver's message).
        LookupError: ``create`` is false and the bucket does not exist.
        OffsetStoreError: no server answered, JetStream is off, or the bucket cannot be made.
    """

    def __init__(self, url: str, bucket: str | None = None, *, create: bool = True) -> None:
        try:
            self._options = parse_options(parse_broker_url(url))
        except ValueError as error:
            raise ValueError(f"nats:// broker URL: {error}") from None
        self.bucket = bucket or bucket_name(self._options.namespace)
        self._display = self._options.display
        self._timeout = max(_API_TIMEOUT, self._options.ack_timeout)
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="omconnect-nats-offsets", daemon=True
        )
        self._thread.start()
        try:
            self._call(lambda: self._open(create), self._options.connect_timeout + _API_TIMEOUT)
        except BaseException:
            self._shut_down()
            raise

    # -- the contract ------------------------------------------------------------------------

    def get(self, namespace: str, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The stored offset of ``partition`` in ``namespace``, or None."""
        pid = partition_id(partition)
        key = _key(namespace, pid)

        async def get() -> bytes | None:
            try:
                entry = await self._bucket().get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
            return entry.value

        value = self._call(get)
        if value is None:
            return None
        stored_pid, position = self._position(key, value)
        if stored_pid != pid:
            raise OffsetStoreError(
                f"bucket {self.bucket!r} at {self._display}: key {key} holds the position of "
                f"another partition ({stored_pid}, not {pid})"
            )
        return position.offset

    def all(self, namespace: str) -> list[Position]:
        """Every position of ``namespace``, ordered by partition."""
        entries = self._call(lambda: self._entries(f"{namespace_token(namespace)}.*"))
        found = sorted(self._position(key, value) for key, value in entries.items())
        return [position for _, position in found]

    def put(self, namespace: str, positions: Iterable[Position]) -> None:
        """Store ``positions``, one key each (not atomic across keys: see the module
        docstring); the last one wins for a repeated partition.

        Raises:
            TypeError: a partition or offset holds a value positions cannot hold (see
                ``position_codec``); nothing is stored.
            OffsetStoreError: the server did not acknowledge every key.
        """
        values: dict[str, bytes] = {}
        for position in positions:
            pid = partition_id(position.partition)
            values[_key(namespace, pid)] = _value(pid, encode_position_value(position.offset))
        if not values:
            return

        async def put() -> None:
            bucket = self._bucket()
            await _bounded([partial(bucket.put, key, value) for key, value in values.items()])

        self._call(put, what=f"storing {len(values)} position(s) of {namespace!r}")

    def delete(self, namespace: str, partition: Mapping[str, Any] | None = None) -> int:
        """Forget one partition, or every partition of ``namespace``; returns how many were
        stored."""

        async def delete() -> int:
            bucket = self._bucket()
            if partition is None:
                keys = list(await self._entries(f"{namespace_token(namespace)}.*", True))
            else:
                key = _key(namespace, partition_id(partition))
                try:
                    await bucket.get(key)
                    keys = [key]
                except nats.js.errors.KeyNotFoundError:
                    keys = []
            await _bounded([partial(bucket.delete, key) for key in keys])
            return len(keys)

        return self._call(delete, what=f"deleting positions of {namespace!r}")

    def namespaces(self) -> list[str]:
        """Every namespace with at least one stored position, sorted."""
        keys = self._call(lambda: self._entries(">", True))
        found = {_namespace_of(key.partition(".")[0]) for key in keys}
        return sorted(name for name in found if name is not None)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._shut_down()

    # -- on the store's loop -----------------------------------------------------------------

    def _call(
        self,
        coroutine: Callable[[], Coroutine[Any, Any, T]],
        limit: float | None = None,
        what: str = "reading positions",
    ) -> T:
        """Run ``coroutine()`` on the store's loop and wait for it, one call at a time.

        Raises:
            OffsetStoreError: it failed with a NATS error, or did not finish within ``limit``
                seconds (default: the URL's ``ack_timeout``, at least 5).
        """
        limit = self._timeout if limit is None else limit
        with self._lock:
            if self._closed:
                raise OffsetStoreError(f"the offset store on bucket {self.bucket!r} is closed")
            future = asyncio.run_coroutine_threadsafe(
                self._bounded_call(coroutine, limit), self._loop
            )
            try:
                return future.result(limit + 1)
            except concurrent.futures.TimeoutError:
                future.cancel()
                error: BaseException = TimeoutError()
            except (nats.errors.Error, TimeoutError) as failure:
                error = failure
        raise OffsetStoreError(
            f"{what} in bucket {self.bucket!r} at {self._display} failed: {_describe(error)}; "
            "check that nats-server is running there with JetStream"
        ) from None

    async def _bounded_call(
        self, coroutine: Callable[[], Coroutine[Any, Any, T]], limit: float
    ) -> T:
        async with asyncio.timeout(limit):
            return await coroutine()

    async def _open(self, create: bool) -> None:
        client = Client()
        errors: list[Exception] = []

        async def note(error: Exception) -> None:
            if self._client is None:
                errors.append(error)
            else:
                log.warning("NATS %s: %s", self._display, _describe(error))

        timeout = self._options.connect_timeout
        try:
            # Once connected the client reconnects without end (a server restart must not end
            # a pipeline), which it also does for a first connection: bound that one.
            async with asyncio.timeout(timeout):
                await client.connect(
                    servers=list(self._options.servers),
                    name="omconnect-offsets",
                    connect_timeout=max(1, min(2, int(timeout))),
                    reconnect_time_wait=self._options.reconnect_wait,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    error_cb=note,
                )
        except (TimeoutError, OSError, nats.errors.Error) as error:
            with contextlib.suppress(Exception):
                await client.close()
            raise OffsetStoreError(
                f"cannot connect to the NATS server at {self._display} within {timeout:g} s "
                f"({_describe(errors[-1] if errors else error)}) to open the offsets bucket "
                f"{self.bucket!r}: check that nats-server is running there with JetStream "
                "and that the broker URL is right"
            ) from None
        self._client = client
        js = self._js = client.jetstream(timeout=_API_TIMEOUT)
        try:
            self._kv = await js.key_value(self.bucket)
            return
        except nats.js.errors.BucketNotFoundError:
            if not create:
                raise LookupError(self.bucket) from None
        except (nats.errors.Error, TimeoutError) as error:
            raise OffsetStoreError(
                f"cannot open the offsets bucket {self.bucket!r} at {self._display}: "
                f"{_describe(error)} (is JetStream enabled: nats-server -js?)"
            ) from None
        config = KeyValueConfig(
            bucket=self.bucket,
            description="omconnect source positions: <pipeline>.<partition digest>",
            history=1,
            storage=StorageType.MEMORY if self._options.storage == "memory" else StorageType.FILE,
            replicas=self._options.replicas,
            direct=True,
        )
        try:
            self._kv = await js.create_key_value(config)
        except nats.js.errors.BadRequestError:
            self._kv = await js.key_value(self.bucket)  # made by another process meanwhile
        except (nats.errors.Error, TimeoutError) as error:
            raise OffsetStoreError(
                f"cannot make the offsets bucket {self.bucket!r} at {self._display}: "
                f"{_describe(error)}"
            ) from None

    def _bucket(self) -> KeyValue:
        assert self._kv is not None, "opened in __init__"
        return self._kv

    def _jetstream(self) -> JetStreamContext:
        assert self._js is not None, "opened in __init__"
        return self._js

    async def _entries(self, keys: str, names_only: bool = False) -> dict[str, bytes]:
        """The current value of every key matching ``keys`` (a subject filter), without the
        deleted ones; empty values when ``names_only``.

        Read by an ephemeral pull consumer of the newest message of each key: its pending
        count is fixed when it is made (a pull consumer delivers nothing before a fetch) and
        every message tells how many are left, so the end is known exactly. (nats-py's
        ``watch`` guesses it from consumer info taken while messages may already be
        arriving, and sometimes ends before the first.)
        """
        js = self._jetstream()
        stream = f"KV_{self.bucket}"
        prefix = f"$KV.{self.bucket}."
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.NONE,
            headers_only=names_only or None,
            inactive_threshold=_API_TIMEOUT * 6,
            mem_storage=True,
            num_replicas=1,
        )
        subscription = await js.pull_subscribe(prefix + keys, stream=stream, config=config)
        found: dict[str, bytes] = {}
        name = None
        try:
            info = await subscription.consumer_info()
            name, left = info.name, info.num_pending or 0
            while left > 0:
                for message in await subscription.fetch(min(left, 256), _API_TIMEOUT):
                    left = message.metadata.num_pending
                    key = message.subject[len(prefix) :]
                    if (message.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE):
                        found.pop(key, None)
                    else:
                        found[key] = message.data or b""
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            if name is not None:
                with contextlib.suppress(Exception):
                    await js.delete_consumer(stream, name)
        return found

    async def _disconnect(self) -> None:
        """Close the connection, then end what the client left running on the loop."""
        client, self._client = self._client, None
        self._js = self._kv = None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):
                await client.close()
        current = asyncio.current_task()
        left = [task for task in asyncio.all_tasks() if task is not current]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def _shut_down(self) -> None:
        """Disconnect, stop the loop and its thread."""
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _position(self, key: str, value: bytes) -> tuple[str, Position]:
        try:
            return _decoded(value)
        except ValueError as error:
            raise OffsetStoreError(
                f"bucket {self.bucket!r} at {self._display}: key {key} does not hold a "
                f"position ({error})"
            ) from None


async def _bounded(calls: list[Callable[[], Awaitable[Any]]]) -> None:
    """Run ``calls`` concurrently, at most ``_CONCURRENT_PUTS`` at a time, all of them to the
    end; then raise the first failure."""
    failures: list[BaseException] = []
    for start in range(0, len(calls), _CONCURRENT_PUTS):
        results = await asyncio.gather(
            *(call() for call in calls[start : start + _CONCURRENT_PUTS]), return_exceptions=True
        )
        failures += [result for result in results if isinstance(result, BaseException)]
    if failures:
        raise failures[0]


def _describe(error: BaseException) -> str:
    """A short text for a nats-py error (their ``str`` is sometimes empty)."""
    if isinstance(error, (TimeoutError, nats.errors.TimeoutError)):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, nats.js.errors.APIError) and error.description:
        return str(error.description)
    text = str(error).removeprefix("nats: ").strip()
    return text or type(error).__name__
