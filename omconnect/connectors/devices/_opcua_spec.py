"""The options of the ``opcua`` source (see ``opcua`` for what it does)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from omconnect.connectors.api import ConnectorSpec

SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]


class OpcuaNode(BaseModel):
    """One node to subscribe to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(
        description=(
            "A node id (`ns=2;i=3`, `ns=2;s=Line1.Temp`, `nsu=urn:plant;s=Temp`, `i=2258`) or "
            "a browse path from the root, each step `namespace index:browse name` "
            "(`0:Objects/2:Plant/2:Line1/2:Temp`). Browse paths are resolved to node ids "
            "when the source starts. The node must be a variable."
        ),
    )
    name: str | None = Field(
        default=None,
        description="The `name` its records carry (default: the node's browse name).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: object) -> object:
        return {"node": data} if isinstance(data, str) else data


class OpcuaSourceSpec(ConnectorSpec):
    """Options of the ``opcua`` source."""

    url: str = Field(
        description=(
            "The server's endpoint, `opc.tcp://host:4840/path`. Credentials go in `username` "
            "and `password`, not here."
        )
    )
    nodes: list[OpcuaNode] = Field(
        min_length=1,
        description=(
            "The variables to subscribe to: each a node id or browse path (`node`) with an "
            "optional `name`; a plain string is a `node`."
        ),
    )
    username: str | None = Field(
        default=None, description="User name for a user-name identity (default: anonymous)."
    )
    password: SecretStr | None = Field(default=None, description="The user's password.")
    security_policy: SecurityPolicy = Field(
        default="None",
        description=(
            "The security policy of the secure channel: `None` (no signing or encryption), "
            "`Basic256Sha256`, `Aes128Sha256RsaOaep` or `Aes256Sha256RsaPss`. Any but `None` "
            "needs `certificate` and `private_key`, and the server must trust the certificate."
        ),
    )
    security_mode: Literal["Sign", "SignAndEncrypt"] = Field(
        default="SignAndEncrypt",
        description="With a `security_policy` other than `None`: sign, or sign and encrypt.",
    )
    certificate: str | None = Field(
        default=None,
        description=(
            "The client's application instance certificate (a .der or .pem file). Its "
            "subject alternative name URI becomes the client's application URI."
        ),
    )
    private_key: str | None = Field(
        default=None, description="The certificate's private key (a .pem or .der file)."
    )
    private_key_password: SecretStr | None = Field(
        default=None, description="The password of an encrypted `private_key`."
    )
    server_certificate: str | None = Field(
        default=None,
        description=(
            "The server's certificate (a .der or .pem file) to trust. Default: the one the "
            "server's endpoint presents."
        ),
    )
    publishing_interval: float = Field(
        default=500.0,
        gt=0,
        description="How often the server sends the changes it collected, in milliseconds.",
    )
    sampling_interval: float = Field(
        default=0.0,
        ge=-1,
        description=(
            "How often the server samples each node, in milliseconds: `0` as fast as it can "
            "(or on every change), `-1` the publishing interval."
        ),
    )
    queue_size: int = Field(
        default=10,
        ge=0,
        description=(
            "Changes the server keeps per node between two publishings (the oldest go first "
            "when it is full); `0` or `1` keeps only the last."
        ),
    )
    batch_size: int = Field(default=10_000, ge=1, description="The most records one poll returns.")
    timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds to wait for the server to connect and to answer each request.",
    )
    reconnect_max_delay: float = Field(
        default=30.0,
        gt=0,
        description=(
            "The longest wait, in seconds, between two attempts to reconnect after the server "
            "went away (the waits double from one second)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _opc_tcp_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError("expected opc.tcp://host:port/path")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put credentials in `username` and `password`, not in the URL")
        return url

    @model_validator(mode="after")
    def _security_has_certificate(self) -> OpcuaSourceSpec:
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError(
                f"security_policy {self.security_policy} needs `certificate` and `private_key`"
            )
        if self.password is not None and self.username is None:
            raise ValueError("`password` needs `username`")
        return self


_NODE_ID = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?[isgb]=")


def is_node_id(text: str) -> bool:
    """Whether ``text`` is a node id (``ns=2;s=Temp``) rather than a browse path."""
    return _NODE_ID.match(text) is not None
