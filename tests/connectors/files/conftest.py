"""Fixtures of the file connector tests: a real S3 endpoint (moto's server mode)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.s3_server import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the test process; tests keep apart by bucket (``s3_bucket``)."""
    server = S3Server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new bucket of this test's own on the test S3 server."""
    return s3_server.bucket()
