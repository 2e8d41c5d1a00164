"""The S3 endpoint of B3 on object storage: moto's S3 server, speaking S3 over HTTP on
127.0.0.1, in a subprocess of its own (so its CPU is never counted as the harness's: the
contestants' CPU is their own process tree, the server's work shows in their wall time).

The harness uploads its inputs once, off the clock, gives each run an output prefix of its own
(``out-<run>/``), downloads what a run wrote into a local directory for the oracle, off the
clock, and deletes it (moto keeps objects in memory). Credentials are fixed and fake: moto
accepts any.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCESS_KEY_ID = "omconnect-bench"
SECRET_ACCESS_KEY = "omconnect-bench-secret"
BUCKET = "omconnect-bench"
OUTPUT_PREFIX = "out-"
START_TIMEOUT_SECONDS = 60.0
SERVER_DESCRIPTION = "moto's S3 server (`moto_server`) in its own process on 127.0.0.1"


@dataclass
class S3Endpoint:
    """A running S3 server with one bucket, and what the contestants need to reach it."""

    endpoint_url: str
    bucket: str = BUCKET
    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    _runs: Iterator[int] = field(default_factory=itertools.count, repr=False)

    @property
    def host_port(self) -> str:
        """``host:port`` of the endpoint (what pyarrow's ``endpoint_override`` takes)."""
        return self.endpoint_url.removeprefix("http://")

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def credentials_env(self) -> dict[str, str]:
        """The usual AWS variables, for the tools that read credentials from the environment."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def output_prefix(self, name: str) -> str:
        """A new output prefix (``out-<name>-<n>/``, a key prefix with its slash) for one run."""
        return f"{OUTPUT_PREFIX}{name}-{next(self._runs)}/"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def upload(self, path: Path) -> str:
        """Upload ``path`` as the object named like it (once: a present object of the same size
        is kept); its ``s3://`` URL."""
        client = self.client()
        try:
            present = client.head_object(Bucket=self.bucket, Key=path.name)["ContentLength"]
        except client.exceptions.ClientError:
            present = None
        if present != path.stat().st_size:
            client.upload_file(str(path), self.bucket, path.name)
        return self.url(path.name)

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2")
        found = pages.paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in found for item in page.get("Contents", []))

    def download(self, prefix: str, directory: Path) -> int:
        """Every object under ``prefix`` into ``directory`` (keys relative to the prefix);
        how many."""
        client = self.client()
        keys = self.keys(prefix)
        for key in keys:
            target = directory / key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(self.bucket, key, str(target))
        return len(keys)

    def delete_outputs(self) -> None:
        """Delete every run's output (the inputs stay)."""
        client = self.client()
        keys = self.keys(OUTPUT_PREFIX)
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start : start + 1000]]
            client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})
        uploads = client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_s3(log: Path) -> Iterator[S3Endpoint]:
    """moto's S3 server in a subprocess (its output in ``log``) with the bucket made, until
    the block ends."""
    port = _free_port()
    script = Path(sys.executable).parent / "moto_server"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*argv, "-H", "127.0.0.1", "-p", str(port)], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        endpoint = S3Endpoint(f"http://127.0.0.1:{port}")
        _wait_answering(endpoint.endpoint_url, server)
        endpoint.client().create_bucket(Bucket=endpoint.bucket)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_answering(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer within {START_TIMEOUT_SECONDS:.0f} s")
