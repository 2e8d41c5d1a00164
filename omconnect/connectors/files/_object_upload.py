"""One S3 object written as a stream: uploaded in parts while it grows, visible when complete.

S3 has no rename, so a file sink's file is written straight to its final key, and S3 keeps
it invisible until the end: bytes are spooled (in memory up to 1 MiB, then in a local
temporary file) and each time ``part_size`` of them are there they go up as one part of a
multipart upload, started with the first part. ``complete`` uploads the rest and completes
the upload (a file smaller than one part is sent with a single PUT instead); only then does
the object exist. ``abort`` aborts the upload, so S3 drops its parts. An upload that a
crash left behind stays incomplete and invisible until the sink's next start aborts it.

Memory stays bounded whatever the file size: one spool per open file, and a part is handed
to boto3 as a file, not as bytes.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from typing import Any

from omconnect.connectors.api import ConnectorError

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part (every part but the last)."""

_SPOOL_IN_MEMORY = 1024 * 1024

Describe = Callable[[Exception], ConnectorError]
"""Turns a failed S3 call into the error to raise (naming the location, no secret)."""


class ObjectUpload(io.RawIOBase):
    """A writable stream whose bytes become the object ``key`` of ``bucket`` on ``complete``.

    Args:
        client: a boto3 S3 client.
        bucket: the bucket.
        key: the object's key.
        part_size: bytes per part (at least ``MIN_PART_SIZE``).
        describe: makes the error raised for a failed S3 call.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, part_size: int, describe: Describe
    ) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self.key = key
        self._part_size = part_size
        self._describe = describe
        # Closed by complete() or abort(), which end every upload.
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        self._spooled = 0
        self._written = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._spool.write(view)
        self._spooled += view.nbytes
        self._written += view.nbytes
        if self._spooled >= self._part_size:
            self._upload_part()
        return view.nbytes

    def tell(self) -> int:
        return self._written

    @property
    def parts(self) -> int:
        """How many parts were uploaded so far."""
        return len(self._parts)

    def complete(self) -> None:
        """Upload what is spooled and make the object visible.

        Raises:
            ConnectorError: S3 refused a call (see ``describe``).
        """
        try:
            if self._upload_id is None:
                self._spool.seek(0)
                self._call(self._client.put_object, Body=self._spool)
            else:
                if self._spooled:
                    self._upload_part()
                self._call(
                    self._client.complete_multipart_upload,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        finally:
            self._spool.close()

    def abort(self) -> None:
        """Drop what was written; the upload's parts are deleted by S3.

        Raises:
            ConnectorError: S3 refused to abort (the upload stays until the next start).
        """
        self._spool.close()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._call(self._client.abort_multipart_upload, UploadId=upload_id)

    def _upload_part(self) -> None:
        if self._upload_id is None:
            started = self._call(self._client.create_multipart_upload)
            self._upload_id = started["UploadId"]
        number = len(self._parts) + 1
        self._spool.seek(0)
        sent = self._call(
            self._client.upload_part,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=self._spool,
            ContentLength=self._spooled,
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        self._spool.seek(0)
        self._spool.truncate()
        self._spooled = 0

    def _call(self, method: Callable[..., Any], **arguments: Any) -> Any:
        try:
            return method(Bucket=self._bucket, Key=self.key, **arguments)
        except Exception as error:
            if isinstance(error, ConnectorError):
                raise
            raise self._describe(error) from error
