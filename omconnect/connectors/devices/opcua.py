"""The ``opcua`` source: data changes of OPC-UA variables, from a subscription, as records.

One record per data-change notification, in the wide schema ``opcua_reading`` (node id,
name, built-in type, the value in the one ``value_*`` column of its type, source and server
timestamps, status code and name; see ``_opcua_readings``), keyed by node id so that a
node's changes stay in order on one partition. The record's time is the source timestamp.

A device source without resumable positions (``resumable = False``): OPC-UA keeps no history
a client could resume from. Each batch is marked only with when its last change arrived, and
a task starts from the present whatever was committed. What changed while omconnect was not
running is lost, except each node's value at the time it starts again, which a new
subscription delivers first.
While it runs, the connection is kept up by asyncua's reconnect supervisor: after the server
went away and came back, the subscription is transferred (the server kept it, with the
changes it queued) or made again (a restarted server: the current values come first), and
changes arrive again. ``run --once`` delivers each node's current value, then ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path
from typing import ClassVar

from omconnect.connectors.api import (
    ConfigError,
    ConnectorSpec,
    RetriableError,
    SourceConnector,
    register,
)
from omconnect.connectors.devices._opcua_spec import OpcuaNode, OpcuaSourceSpec
from omconnect.connectors.devices._opcua_task import OpcuaSourceTask

log = logging.getLogger("omconnect.opcua")


class OpcuaSource(SourceConnector):
    """Subscribes to OPC-UA variables and emits one record per data change."""

    name = "opcua"
    spec: ClassVar[type[ConnectorSpec]] = OpcuaSourceSpec
    task_class = OpcuaSourceTask
    resumable = False
    description = (
        "Subscribe to OPC-UA variables; one record per data change. Values have no position "
        "to resume from: changes made while the pipeline is stopped are lost, except each "
        "node's current value, which a new subscription delivers first."
    )

    def validate(self) -> None:
        """Refuse files that do not exist, then connect and find every node. A server that
        cannot be reached now is not a mistake in the config: it is logged, and the task's
        start, which the runtime retries, finds the nodes."""
        config = self.config
        assert isinstance(config, OpcuaSourceSpec)
        for key in ("certificate", "private_key", "server_certificate"):
            path = getattr(config, key)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{path!r} is not a file", key=key)
        # validate() is called on the worker's event loop, or with none: connect on a thread.
        with concurrent.futures.ThreadPoolExecutor(1, "opcua-validate") as pool:
            try:
                pool.submit(asyncio.run, _check_nodes(config)).result()
            except RetriableError as error:
                log.warning("%s (the nodes are checked when the task starts)", error)


async def _check_nodes(config: OpcuaSourceSpec) -> None:
    from omconnect.connectors.devices._opcua_session import OpcuaSession

    session = await OpcuaSession.open(config)
    await session.close()


__all__ = ["OpcuaNode", "OpcuaSource", "OpcuaSourceSpec", "OpcuaSourceTask"]

register(OpcuaSource)
