"""A real S3 endpoint for the tests: moto's server mode, speaking S3 over HTTP on a free port.

Each test process starts one server (``S3Server.start``) and each test gets buckets of its own
(``bucket``), so tests never see each other's objects. The server runs in the test process;
``omconnect`` processes the tests start (and SIGKILL) reach it over HTTP like any S3
endpoint, so a kill mid-upload leaves the server as a crash would leave AWS.
"""

from __future__ import annotations

import uuid
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
