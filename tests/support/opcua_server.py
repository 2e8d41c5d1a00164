"""A real OPC-UA server for the tests: asyncua's ``Server`` in a process of its own, on a free
loopback port, so that a test can kill it and start it again on the same port.

Its address space: ``Objects/Plant/Line1`` (namespace ``urn:omconnect:test``, index 2) holds
``Temp`` (Double, ``ns=2;s=Line1.Temp``), ``Count`` (Int32, ``ns=2;i=3``), ``Running``
(Boolean, ``ns=2;s=Line1.Running``) and ``Name`` (String, ``ns=2;s=Line1.Name``);
``Objects/Plant/Types`` holds one writable variable per built-in type the source maps
(``ns=2;s=Types.<VariantType>``) and a few it cannot (a LocalizedText, a Guid, an array).
Every variable is writable: tests change values with ``write_values``, over OPC-UA like any
client. With ``secure=True`` the server offers only Basic256Sha256 SignAndEncrypt, with a
self-signed certificate made under its directory; ``users`` makes it refuse anonymous
sessions and accept those names and passwords.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asyncua import Client, Server, ua
from asyncua.crypto import cert_gen
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.local_servers import ServerProcess

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "urn:omconnect:test"
SERVER_URI = "urn:omconnect:test-server"
CLIENT_URI = "urn:omconnect:test-client"

LINE1 = {
    "Temp": ("Line1.Temp", 20.5, ua.VariantType.Double),
    "Count": (3, 0, ua.VariantType.Int32),
    "Running": ("Line1.Running", False, ua.VariantType.Boolean),
    "Name": ("Line1.Name", "line one", ua.VariantType.String),
}
"""Variables of ``Plant/Line1``: browse name -> (identifier in namespace 2, first value, type)."""

TYPES: dict[str, tuple[Any, ua.VariantType]] = {
    "Boolean": (True, ua.VariantType.Boolean),
    "SByte": (-8, ua.VariantType.SByte),
    "Byte": (200, ua.VariantType.Byte),
    "Int16": (-1600, ua.VariantType.Int16),
    "UInt16": (65_000, ua.VariantType.UInt16),
    "Int32": (-2_000_000_000, ua.VariantType.Int32),
    "UInt32": (4_000_000_000, ua.VariantType.UInt32),
    "Int64": (-(2**62), ua.VariantType.Int64),
    "UInt64": (2**63 - 1, ua.VariantType.UInt64),
    "Float": (1.5, ua.VariantType.Float),
    "Double": (2.25, ua.VariantType.Double),
    "String": ("héllo", ua.VariantType.String),
    "DateTime": (dt.datetime(2024, 5, 6, 7, 8, 9, 123456), ua.VariantType.DateTime),
    "ByteString": (b"\x00\xff", ua.VariantType.ByteString),
    "LocalizedText": (ua.LocalizedText("warm", "en"), ua.VariantType.LocalizedText),
    "Guid": (uuid.UUID("12345678-1234-5678-1234-567812345678"), ua.VariantType.Guid),
    "DoubleArray": ([1.0, 2.5], ua.VariantType.Double),
}
"""Variables of ``Plant/Types``: name (``ns=2;s=Types.<name>``) -> (first value, type)."""


def node_id(name: str) -> str:
    """The node id text of a ``Line1`` variable (``Temp`` -> ``ns=2;s=Line1.Temp``)."""
    identifier = LINE1[name][0]
    return f"ns=2;i={identifier}" if isinstance(identifier, int) else f"ns=2;s={identifier}"


class OpcuaServerProcess(ServerProcess):
    """The test server in a process of its own (see the module docstring)."""

    binary = sys.executable

    def __init__(
        self, directory: Path, secure: bool = False, users: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(directory)
        self.secure = secure
        self.users = dict(users or {})

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.address}/omconnect/"

    def arguments(self) -> list[str]:
        # Run as a module of this repository whatever the working directory is.
        bootstrap = (
            f"import sys, runpy; sys.path.insert(0, {str(REPO)!r}); "
            "runpy.run_module('tests.support.opcua_server', run_name='__main__')"
        )
        options = ["--port", str(self.port), "--directory", str(self.directory)]
        if self.secure:
            options.append("--secure")
        for name, password in self.users.items():
            options += ["--user", f"{name}:{password}"]
        return ["-c", bootstrap, *options]

    def write_values(
        self,
        values: Mapping[str, Any],
        source_timestamp: dt.datetime | None = None,
        status: str = "Good",
    ) -> None:
        """Write ``{node id text: value}`` over OPC-UA, each as its node's type, stamped
        ``source_timestamp`` as a device would stamp it (None: no source timestamp), with the
        StatusCode named ``status``."""
        asyncio.run(write_values(self.url, values, source_timestamp, status))


async def write_values(
    url: str, values: Mapping[str, Any], source_timestamp: dt.datetime | None, status: str
) -> None:
    """Write ``{node id text: value}`` to the server at ``url`` (anonymous, no security)."""
    client = Client(url)
    await client.connect()
    try:
        for text, value in values.items():
            node = client.get_node(text)
            variant_type = await node.read_data_type_as_variant_type()
            written = ua.DataValue(
                ua.Variant(value, variant_type),
                StatusCode=ua.StatusCode(getattr(ua.StatusCodes, status)),
                SourceTimestamp=source_timestamp,
            )
            await node.write_value(written)
    finally:
        await client.disconnect()


def client_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed client certificate (DER) and key (PEM) for ``CLIENT_URI``, made once
    under ``directory``."""
    stem = directory / "client"
    return asyncio.run(_certificate(stem, CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH))


async def _certificate(stem: Path, uri: str, usage: Any) -> tuple[Path, Path]:
    """A certificate and key at ``stem`` (.der, .pem), kept when they exist and are valid."""
    certificate, key = stem.with_suffix(".der"), stem.with_suffix(".pem")
    await cert_gen.setup_self_signed_certificate(key, certificate, uri, "localhost", [usage], {})
    return certificate, key


class _Users(UserManager):
    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> Any:  # fmt: skip
        from asyncua.crypto.permission_rules import User, UserRole

        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


async def _serve(port: int, directory: Path, secure: bool, users: Mapping[str, str]) -> None:
    server = Server(user_manager=_Users(users) if users else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/omconnect/")
    server.set_server_name("omconnect test server")
    if users:
        server.set_security_IDs(["Username"])
    if secure:
        await server.set_application_uri(SERVER_URI)
        # Kept under the directory: a restarted server has the same one, as a real one does.
        certificate, key = await _certificate(
            directory / "server", SERVER_URI, ExtendedKeyUsageOID.SERVER_AUTH
        )
        await server.load_certificate(str(certificate))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    index = await server.register_namespace(NAMESPACE)
    plant = await server.nodes.objects.add_folder(ua.NodeId("Plant", index), f"{index}:Plant")
    line1 = await plant.add_folder(ua.NodeId("Line1", index), f"{index}:Line1")
    for name, (identifier, value, variant_type) in LINE1.items():
        variable = await line1.add_variable(
            ua.NodeId(identifier, index), f"{index}:{name}", ua.Variant(value, variant_type)
        )
        await variable.set_writable()
    types = await plant.add_folder(ua.NodeId("Types", index), f"{index}:Types")
    for name, (value, variant_type) in TYPES.items():
        variable = await types.add_variable(
            ua.NodeId(f"Types.{name}", index), f"{index}:{name}", ua.Variant(value, variant_type)
        )
        await variable.set_writable()
    async with server:
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--secure", action="store_true")
    parser.add_argument("--user", action="append", default=[], help="NAME:PASSWORD")
    args = parser.parse_args()
    users = dict(item.split(":", 1) for item in args.user)
    asyncio.run(_serve(args.port, args.directory, args.secure, users))


if __name__ == "__main__":
    main()
