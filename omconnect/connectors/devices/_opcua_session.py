"""A session with an OPC-UA server: connecting (security, identity), finding the configured
nodes and subscribing to their data changes, each failure said in words a person can act on.

asyncua is imported here only; the connector module imports this one when a task starts or
the config is validated, so that omconnect without the ``opcua`` extra still loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from asyncua import Client, Node, ua
from asyncua.common.subscription import (
    DataChangeEvent,
    OverflowPolicy,
    StatusChangeEvent,
    Subscription,
)
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError
from omconnect.connectors.devices._opcua_readings import Reading, WatchedNode
from omconnect.connectors.devices._opcua_spec import OpcuaSourceSpec, is_node_id

log = logging.getLogger("omconnect.opcua")

QUEUED_NOTIFICATIONS = 10_000
"""Notifications asyncua holds between its publish loop and this session's reader."""

SESSION_TIMEOUT_MS = 600_000
"""How long the server keeps a session whose client lost its connection, in milliseconds."""

_IDENTITY_REFUSED = frozenset(
    {
        "BadUserAccessDenied",
        "BadIdentityTokenInvalid",
        "BadIdentityTokenRejected",
        "BadUserSignatureInvalid",
    }
)
_NAMESPACE_URI = re.compile(r"^nsu=(?P<uri>[^;]+);(?P<rest>.+)$")


class OpcuaSession:
    """A connected client and the nodes it watches (see ``open``)."""

    def __init__(self, client: Client, config: OpcuaSourceSpec, nodes: list[Node]) -> None:
        self.client = client
        self.config = config
        self.nodes = nodes
        self.watched: list[WatchedNode] = []
        self._subscription: Subscription | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lost = False

    @classmethod
    async def open(cls, config: OpcuaSourceSpec) -> OpcuaSession:
        """Connect and find every node of ``config.nodes``.

        Raises:
            RetriableError: the server cannot be reached (or answers with a transient error).
            ConfigError: the server refused the identity or the security settings, or a node
                does not exist or is not a variable; ``key`` names the option.
        """
        client = await _connect(config)
        session = cls(client, config, [])
        try:
            for index in range(len(config.nodes)):
                node, watched = await _find(client, config, index)
                session.nodes.append(node)
                session.watched.append(watched)
            _refuse_repeats(session.watched)
        except BaseException:
            await session.close()
            raise
        client.connection_lost_callback = session._note_lost
        return session

    async def subscribe(self, deliver: Callable[[Reading], None]) -> None:
        """Subscribe to every node; each data change is passed to ``deliver`` as it comes,
        the current value of every node first."""
        config = self.config
        subscription = await self.client.create_subscription(
            config.publishing_interval,
            queue_maxsize=QUEUED_NOTIFICATIONS,
            overflow=OverflowPolicy.DROP_OLDEST,
        )
        self._subscription = subscription
        index_of = {node.nodeid.to_string(): i for i, node in enumerate(self.nodes)}
        self._reader = asyncio.create_task(self._read(subscription, index_of, deliver))
        handles = await subscription.subscribe_data_change(
            self.nodes,
            queuesize=config.queue_size,
            sampling_interval=ua.Double(config.sampling_interval),
        )
        for index, handle in enumerate(handles):
            if isinstance(handle, ua.StatusCode):
                raise ConfigError(
                    f'cannot subscribe to node "{config.nodes[index].node}": {handle.name} '
                    f"({handle.doc})",
                    key=f"nodes[{index}].node",
                )

    async def close(self) -> None:
        """End the subscription and the session; the server may be gone already."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.config.timeout):
                if self._subscription is not None:
                    await self._subscription.delete()
                await self.client.disconnect()
        self.client.disconnect_socket()

    async def _read(
        self,
        subscription: Subscription,
        index_of: dict[str, int],
        deliver: Callable[[Reading], None],
    ) -> None:
        async for event in subscription:
            if isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                log.warning("OPC-UA subscription on %s: %s", self.config.url, status.name)
                continue
            if not isinstance(event, DataChangeEvent):
                continue
            index = index_of.get(event.node.nodeid.to_string())
            if index is None:
                continue
            if self._lost:
                self._lost = False
                log.info("receiving data changes from %s again", self.config.url)
            deliver(_reading(index, event.data.monitored_item.Value))

    async def _note_lost(self, error: Exception) -> None:
        self._lost = True
        log.warning(
            "lost the connection to the OPC-UA server at %s (%s); reconnecting, waiting up to "
            "%gs between attempts",
            self.config.url,
            _reason(error, self.config.timeout),
            self.config.reconnect_max_delay,
        )


def _reading(index: int, value: ua.DataValue | None) -> Reading:
    data = value if value is not None else ua.DataValue()
    variant = data.Value if data.Value is not None else ua.Variant()
    status = data.StatusCode if data.StatusCode is not None else ua.StatusCode()
    return Reading(
        node=index,
        data_type=variant.VariantType.name,
        is_array=bool(variant.is_array),
        value=variant.Value,
        status_code=int(status.value),
        status=status.name,
        source_timestamp=data.SourceTimestamp,
        server_timestamp=data.ServerTimestamp,
        received=time.time(),
    )


async def _connect(config: OpcuaSourceSpec) -> Client:
    client = Client(
        config.url,
        timeout=config.timeout,
        auto_reconnect=True,
        reconnect_max_delay=config.reconnect_max_delay,
    )
    # How long the server keeps the session, and the changes its subscription queues, for a
    # client that lost its connection (asyncua asks for an hour; servers cap it).
    client.session_timeout = SESSION_TIMEOUT_MS
    if config.username is not None:
        client.set_user(config.username)
    if config.password is not None:
        client.set_password(config.password.get_secret_value())
    try:
        async with asyncio.timeout(config.timeout):
            if config.security_policy != "None":
                await _secure(client, config)
            await client.connect()
    except BaseException as error:
        client.disconnect_socket()
        raise _connect_error(error, config) from None
    return client


async def _secure(client: Client, config: OpcuaSourceSpec) -> None:
    assert config.certificate is not None and config.private_key is not None
    certificate = await uacrypto.load_certificate(config.certificate)
    uris = _certificate_uris(certificate)
    if uris:  # servers check that the application URI is the certificate's
        client.application_uri = uris[0]
    password = config.private_key_password
    await client.set_security(
        getattr(security_policies, f"SecurityPolicy{config.security_policy}"),
        config.certificate,
        config.private_key,
        password.get_secret_value() if password is not None else None,
        config.server_certificate,
        getattr(ua.MessageSecurityMode, config.security_mode),
    )


def _certificate_uris(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(names.value.get_values_for_type(x509.UniformResourceIdentifier))


def _connect_error(error: BaseException, config: OpcuaSourceSpec) -> BaseException:
    """What a failed connect means, as the error to raise."""
    url = config.url
    if isinstance(error, ua.UaStatusCodeError):
        name = ua.StatusCode(error.code).name
        if name in _IDENTITY_REFUSED:
            who = f"the user {config.username!r}" if config.username else "anonymous access"
            return ConfigError(
                f"the OPC-UA server at {url} refused {who} ({name}): check `username` and "
                "`password`, and that the server allows that identity",
                key="username" if config.username else "url",
            )
        if name.startswith(("BadSecurity", "BadCertificate", "BadNonce")):
            return ConfigError(
                f"the OPC-UA server at {url} refused the secure channel ({name}): check "
                "`security_policy`, `security_mode`, and that the server trusts `certificate`",
                key="security_policy",
            )
        return RetriableError(f"the OPC-UA server at {url} refused the session: {name}")
    if isinstance(error, ua.UaError) and "No matching endpoints" in str(error):
        return ConfigError(
            f"the OPC-UA server at {url} offers no endpoint with security_policy "
            f"{config.security_policy} and security_mode {config.security_mode}",
            key="security_policy",
        )
    if isinstance(error, OSError | TimeoutError | EOFError):
        parts = urlsplit(url)
        return RetriableError(
            f"could not connect to the OPC-UA server at {url} ({_reason(error, config.timeout)}):"
            f" check that the server runs and listens on {parts.hostname}:{parts.port or 4840},"
            " that no firewall blocks the port, and that `url` is its endpoint"
        )
    if isinstance(error, ValueError | ua.UaError):
        return ConfigError(f"cannot connect to {url}: {error}", key="url")
    return error


def _reason(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(error, socket.gaierror):
        return "the host name is not known"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return str(error) or type(error).__name__


async def _find(client: Client, config: OpcuaSourceSpec, index: int) -> tuple[Node, WatchedNode]:
    """The node of ``config.nodes[index]``, checked to be a variable, and how rows name it."""
    item = config.nodes[index]
    key = f"nodes[{index}].node"
    if is_node_id(item.node):
        node = client.get_node(await _with_namespace_index(client, item.node, key))
    else:
        node = await _browse(client, item.node, key)
    try:
        node_class, browse_name = await node.read_attributes(
            [ua.AttributeIds.NodeClass, ua.AttributeIds.BrowseName]
        )
    except ua.UaStatusCodeError as error:
        raise _node_error(item.node, ua.StatusCode(error.code), config.url, key) from None
    status = node_class.StatusCode or ua.StatusCode()
    if not status.is_good():
        raise _node_error(item.node, status, config.url, key)
    kind = ua.NodeClass(_value(node_class))
    if kind != ua.NodeClass.Variable:
        raise ConfigError(
            f'node "{item.node}" is {kind.name.lower()}, not a variable: only variables have '
            "values to subscribe to",
            key=key,
        )
    name = item.name or _value(browse_name).Name
    return node, WatchedNode(node.nodeid.to_string(), name)


def _value(data: ua.DataValue) -> Any:
    return data.Value.Value if data.Value is not None else None


def _node_error(text: str, status: ua.StatusCode, url: str, key: str) -> ConnectorError:
    if status.name in ("BadNodeIdUnknown", "BadNodeIdInvalid"):
        return ConfigError(f'node "{text}" does not exist on the OPC-UA server at {url}', key=key)
    return ConfigError(f'cannot read node "{text}": {status.name} ({status.doc})', key=key)


async def _with_namespace_index(client: Client, text: str, key: str) -> str:
    """``text`` with a namespace URI (``nsu=urn:plant;s=Temp``) given as its index."""
    match = _NAMESPACE_URI.match(text)
    if match is None:
        return text
    try:
        found = await client.get_namespace_index(match["uri"])
    except ValueError:
        raise ConfigError(
            f'node "{text}": the server has no namespace {match["uri"]!r}', key=key
        ) from None
    return f"ns={found};{match['rest']}"


async def _browse(client: Client, path: str, key: str) -> Node:
    """The node at ``path`` (``0:Objects/2:Plant/2:Temp``) from the root; the error names
    the first step that is not there."""
    steps = [step for step in path.strip("/").split("/") if step]
    try:
        return await client.nodes.root.get_child(steps)
    except ua.UaStatusCodeError:
        pass
    walked = client.nodes.root
    for depth, step in enumerate(steps):
        try:
            walked = await walked.get_child([step])
        except ua.UaStatusCodeError:
            where = "/".join(steps[:depth]) or "the root"
            raise ConfigError(
                f'browse path "{path}" does not exist on the OPC-UA server: no "{step}" under '
                f'"{where}" (each step is `namespace index:browse name`)',
                key=key,
            ) from None
    return walked


def _refuse_repeats(watched: list[WatchedNode]) -> None:
    first: dict[str, int] = {}
    for index, node in enumerate(watched):
        earlier = first.setdefault(node.node_id, index)
        if earlier != index:
            raise ConfigError(
                f"node {node.node_id} is listed twice (nodes[{earlier}] and nodes[{index}])",
                key=f"nodes[{index}].node",
            )
