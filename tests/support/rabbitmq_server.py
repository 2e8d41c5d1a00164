"""The RabbitMQ server the tests share.

The broker tests run against the RabbitMQ server on ``127.0.0.1:5672`` (or
``OMCONNECT_TEST_RABBITMQ``, a ``host:port``) as ``guest``/``guest`` on the default vhost. Each
URL a test gets has a ``prefix`` of its own, so its exchanges, queues and catalog are its own,
and ``delete_test_declarations`` (called by an autouse fixture after every broker test) deletes
what the driver declared under them (it reads the prefix's catalog), so the shared server
does not fill up with quorum queues. When nothing answers there, the tests fail saying how to
start a server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from omconnect.runtime.brokers.url import parse_broker_url
from tests.support.local_servers import SharedServer

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel

    from omconnect.runtime.brokers.amqp import AmqpOptions

__all__ = ["amqp_test_url", "delete_test_declarations", "raw_channel", "url_options"]

SHARED = SharedServer(
    "RabbitMQ",
    "OMCONNECT_TEST_RABBITMQ",
    "127.0.0.1:5672",
    "RABBITMQ_NODE_IP_ADDRESS={host} RABBITMQ_NODE_PORT={port} rabbitmq-server",
)


def amqp_test_url(tmp_path: Path | None = None, **options: object) -> str:
    """An ``amqp://`` URL of the shared server with a prefix of its own (what is declared
    under it is deleted after the test by ``delete_test_declarations``); ``options`` add URL
    options."""
    del tmp_path
    return SHARED.test_url("amqp://guest:guest@{address}/", **options)


def url_options(url: str) -> AmqpOptions:
    """The parsed options of an ``amqp://`` URL."""
    from omconnect.runtime.brokers.amqp._options import parse_options

    return parse_options(parse_broker_url(url))


@contextlib.asynccontextmanager
async def raw_channel(url: str) -> AsyncIterator[AbstractChannel]:
    """A plain aio-pika channel on the server of ``url``: another AMQP client, to look at
    what the driver did or to publish as someone else."""
    import aio_pika

    o = url_options(url)
    connection = await aio_pika.connect(
        host=o.host, port=o.port, login=o.username, password=o.password, virtualhost=o.vhost
    )
    try:
        yield await connection.channel()
    finally:
        await connection.close()


def delete_test_declarations() -> None:
    """Delete the queues, exchanges and catalog declared under the prefixes
    ``amqp_test_url`` gave out."""
    prefixes = SHARED.take_prefixes()
    if not prefixes:
        return
    asyncio.run(_delete_prefixes(prefixes))


async def _delete_prefixes(prefixes: list[str]) -> None:
    from omconnect.runtime.brokers.amqp._catalog import GROUP, TOPIC, Catalog
    from omconnect.runtime.brokers.amqp._connection import CLIENT_ERRORS, AmqpConnection
    from omconnect.runtime.brokers.base import BrokerError

    for prefix in prefixes:
        url = f"amqp://guest:guest@{SHARED.address}/?prefix={prefix}"
        connection = AmqpConnection(url_options(url))
        try:
            declared = await Catalog(connection, create=False).read()
            names = connection.names
            queues = [names.queue(group) for group in declared[GROUP]] + [names.catalog]
            exchanges = [names.exchange(topic) for topic in declared[TOPIC]] + [names.all_topics]
            channel = await connection.channel()
            raw = await channel.get_underlay_channel()
            for queue in queues:
                await raw.queue_delete(queue)
            for exchange in exchanges:
                await raw.exchange_delete(exchange)
        except (BrokerError, *CLIENT_ERRORS):
            pass  # the server is gone (the test said so), or refused: nothing more to clean
        finally:
            with contextlib.suppress(BrokerError):
                await connection.close()
