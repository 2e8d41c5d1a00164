"""A real S3 endpoint for the tests: moto's server mode, speaking S3 over HTTP on a free port.

Each test process starts one server (``S3Server.start``) and each test gets buckets of its own
(``bucket``), so tests never see each other's objects. The server runs in the test process;
``omconnect`` processes the tests start (and SIGKILL) reach it over HTTP like any S3
endpoint, so a kill mid-upload leaves the server as a crash would leave AWS.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ACCESS_KEY_ID = "omconnect-test"
SECRET_ACCESS_KEY = "omconnect-test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    """moto's threaded server on 127.0.0.1 and a free port, with fixed test credentials."""

    endpoint_url: str
    _server: Any = field(repr=False)

    @classmethod
    def start(cls) -> S3Server:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(f"http://{host}:{port}", server)

    def stop(self) -> None:
        self._server.stop()

    def options(self) -> dict[str, str]:
        """The ``s3:`` options of a pipeline file that reach this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
        }

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def bucket(self) -> str:
        """A new, empty bucket of the calling test's own."""
        name = f"omct-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def iam_user(self, policy: dict[str, Any] | None = None) -> tuple[str, str]:
        """A new IAM user's access key id and secret, allowed what ``policy`` allows
        (nothing when None). Credentials are checked only under ``enforcing_auth``."""
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        name = f"omct-{uuid.uuid4().hex[:12]}"
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName="test", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    @contextlib.contextmanager
    def enforcing_auth(self) -> Iterator[None]:
        """While the block lasts, the server checks each request's credentials and
        permissions against its IAM users (moto accepts any by default). The setting is the
        server's process-wide: tests of one process run one at a time, so only the calling
        test sees it."""
        self._auth_free_requests("0")
        try:
            yield
        finally:
            self._auth_free_requests("inf")

    def _auth_free_requests(self, count: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form type would hide the body
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def filesystem(self) -> Any:
        """pyarrow's S3 file system of this server (paths are ``bucket/key``)."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=self.endpoint_url.removeprefix("http://"),
            scheme="http",
            region=REGION,
            access_key=ACCESS_KEY_ID,
            secret_key=SECRET_ACCESS_KEY,
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """The keys of the objects of ``bucket`` under ``prefix``, sorted."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def incomplete_uploads(self, bucket: str) -> list[dict[str, Any]]:
        """The multipart uploads of ``bucket`` started and neither completed nor aborted."""
        return list(self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))
