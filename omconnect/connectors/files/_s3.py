"""S3 locations of the file connectors: ``s3://bucket/prefix`` paths and their ``s3:`` options.

Both clients a file connector uses on S3 are built here, from the same options, and both are
given the endpoint explicitly: pyarrow's ``S3FileSystem`` (reads and writes object bytes; it
does not read ``AWS_ENDPOINT_URL``) and boto3 (lists objects with their ETags, uploads in
parts). Credentials not given in the options come from the usual AWS chain (environment,
shared files, instance roles) of each client.

boto3 is the ``s3`` extra; it is imported only when an ``s3://`` path is used, so the core
imports without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from omconnect.connectors.api import ConfigError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

S3_SCHEME = "s3://"


def is_s3_path(path: str) -> bool:
    """Whether a connector's ``path`` names an S3 location."""
    return path.startswith(S3_SCHEME)


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/key``: the bucket and the key (or key prefix, or glob), no leading ``/``."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, path: str) -> S3Location:
        """Split an ``s3://`` path; a path without a bucket is a ``ConfigError`` on ``path``."""
        if not is_s3_path(path):
            raise ConfigError(f"{path!r} is not an s3:// path", key="path")
        bucket, _, key = path[len(S3_SCHEME) :].partition("/")
        if not bucket:
            raise ConfigError(f"{path!r} names no bucket: write s3://BUCKET/PREFIX", key="path")
        return cls(bucket, key)

    @property
    def arrow_path(self) -> str:
        """The location as pyarrow's ``S3FileSystem`` names it: ``bucket/key``."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.arrow_path}"


class S3Options(BaseModel):
    """The ``s3:`` options of a file connector whose ``path`` is ``s3://bucket/prefix``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = Field(
        default=None,
        description=(
            "The S3 endpoint, such as `http://127.0.0.1:9000` for MinIO or a local test "
            "server; AWS's regional endpoint when left out. `http://` endpoints are spoken "
            "to without TLS."
        ),
    )
    region: str | None = Field(
        default=None,
        description="The bucket's region (AWS_REGION or the shared config's when left out).",
    )
    access_key_id: str | None = Field(
        default=None,
        description=(
            "Access key id; with `secret_access_key`. When both are left out, credentials "
            "come from the usual AWS chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the "
            "shared credentials file (AWS_PROFILE), then the instance or container role."
        ),
    )
    secret_access_key: SecretStr | None = Field(
        default=None,
        description="Secret access key; write it as `${file:path}` or `${VAR}`, not inline.",
    )
    session_token: SecretStr | None = Field(
        default=None, description="Session token of temporary credentials."
    )

    def check_credentials(self) -> None:
        """Refuse half a key pair: one of ``access_key_id`` and ``secret_access_key``."""
        if (self.access_key_id is None) != (self.secret_access_key is None):
            missing = "secret_access_key" if self.secret_access_key is None else "access_key_id"
            raise ConfigError(
                "give both access_key_id and secret_access_key, or neither (the AWS chain)",
                key=f"s3.{missing}",
            )

    def store(self) -> S3Store:
        """The clients for these options (built on first use)."""
        return S3Store(self)


class S3Store:
    """The pyarrow file system and the boto3 client of one set of ``s3:`` options."""

    def __init__(self, options: S3Options) -> None:
        options.check_credentials()
        self.options = options

    @cached_property
    def filesystem(self) -> pafs.S3FileSystem:
        """pyarrow's S3 file system, with the endpoint passed explicitly."""
        import pyarrow.fs as pafs

        options = self.options
        arguments: dict[str, Any] = {}
        if options.endpoint_url:
            scheme, _, address = options.endpoint_url.partition("://")
            arguments["endpoint_override"] = address.rstrip("/") if address else scheme
            arguments["scheme"] = "http" if scheme == "http" else "https"
        if options.region:
            arguments["region"] = options.region
        if options.access_key_id and options.secret_access_key:
            arguments["access_key"] = options.access_key_id
            arguments["secret_key"] = options.secret_access_key.get_secret_value()
            if options.session_token:
                arguments["session_token"] = options.session_token.get_secret_value()
        return pafs.S3FileSystem(**arguments)

    @cached_property
    def client(self) -> Any:
        """A boto3 S3 client, with the endpoint passed explicitly."""
        try:
            import boto3
        except ImportError as error:
            raise ConfigError(
                "s3:// paths need boto3: pip install 'omconnect[s3]'", key="path"
            ) from error
        options = self.options
        return boto3.client(
            "s3",
            endpoint_url=options.endpoint_url,
            region_name=options.region,
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=(
                options.secret_access_key.get_secret_value() if options.secret_access_key else None
            ),
            aws_session_token=(
                options.session_token.get_secret_value() if options.session_token else None
            ),
        )
