"""An S3 prefix as a file sink's destination: objects uploaded whole, a lock object.

A file is written straight to its final key, ``<prefix>/<partition directories>/<name>``, by
a streaming upload (``ObjectUpload``) that only completing makes visible: S3 has no rename,
and needs none. A published file is a completed object; a file being written is an
incomplete multipart upload (or, while smaller than one part, local bytes).

Leftovers: before a topic partition's first rows, its objects from the replay's first offset
on are deleted (the replay writes them again) and its incomplete multipart uploads under the
prefix are aborted (a crashed run's; every upload of a committed file was completed before
the commit).

Failures: listing, deleting and the lock are safe to retry (``RetriableError`` for what may
pass); a failed upload is not, since the rows written into it are in no file any more, so it
stops the run (a ``ConnectorError``) and the next run replays them from the last commit.

Two writers: the runtime keeps the runs of one pipeline apart (its pipeline lock); against
another pipeline writing the same prefix the sink holds a lock object,
``<prefix>/.omconnect.lock``, created with a conditional write (``If-None-Match: *``) on start
and deleted on stop. A lock object of another pipeline refuses the start, naming it; one of
this pipeline (a run that was killed) is taken over. A store without conditional writes
(501 Not Implemented) gets a warning and no lock: then nothing but configuration keeps two
pipelines off one prefix. The lock of a killed run of another pipeline stays until it is
deleted by hand, as the refusal says.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import pyarrow as pa

from omconnect.connectors.api import ConnectorError, RetriableError
from omconnect.connectors.files._object_upload import ObjectUpload
from omconnect.connectors.files._rolling_writer import FileNames
from omconnect.connectors.files._s3 import S3Location, S3Store
from omconnect.connectors.files._s3_errors import s3_error

LOCK_NAME = ".omconnect.lock"


class _Upload:
    """A file being uploaded; ``publish`` completes the upload."""

    def __init__(self, upload: ObjectUpload, location: str, logger: logging.Logger) -> None:
        self._upload = upload
        self._logger = logger
        self.location = location
        self.sink: pa.NativeFile = pa.PythonFile(upload, mode="w")

    def publish(self) -> None:
        self.sink.close()
        self._upload.complete()

    def abort(self) -> None:
        """Best effort: an upload S3 did not abort now is aborted by the next start."""
        self.sink.close()
        try:
            self._upload.abort()
        except ConnectorError as error:
            self._logger.warning("%s: upload not aborted: %s", self.location, error)


class S3Prefix:
    """The prefix of ``location`` in its bucket, and the partition directories under it.

    Args:
        store: the clients.
        location: ``s3://bucket/prefix``.
        part_size: bytes per uploaded part.
        logger: where the lock's warnings go.
    """

    def __init__(
        self, store: S3Store, location: S3Location, part_size: int, logger: logging.Logger
    ) -> None:
        self._store = store
        self._location = location
        self._prefix = location.key.strip("/")
        self._part_size = part_size
        self._logger = logger
        self._lock: dict[str, Any] | None = None

    def open(self, directory: str, name: str) -> _Upload:
        key = self._key(directory, name)
        upload = ObjectUpload(
            self._client, self._location.bucket, key, self._part_size, self._upload_problem
        )
        return _Upload(upload, self._url(key), self._logger)

    def remove_leftovers(
        self, names: FileNames, from_offset: int, exclusive: bool
    ) -> list[str | Path]:
        """Aborts every incomplete upload of ``names`` under the prefix (whatever its offset:
        none of them holds committed rows) and deletes its objects from ``from_offset`` on."""
        bucket, removed = self._location.bucket, list[str | Path]()
        within = f"{self._prefix}/" if self._prefix else ""
        try:
            pages = self._client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=bucket, Prefix=within):
                for upload in page.get("Uploads", []):
                    key = upload["Key"]
                    if names.offset_of(key.rpartition("/")[2]) is not None:
                        self._client.abort_multipart_upload(
                            Bucket=bucket, Key=key, UploadId=upload["UploadId"]
                        )
                        removed.append(f"{self._url(key)} (incomplete upload)")
            stale = []
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=within
            ):
                for item in page.get("Contents", []):
                    offset = names.offset_of(item["Key"].rpartition("/")[2])
                    if offset is not None and offset >= from_offset:
                        stale.append(item["Key"])
            for start in range(0, len(stale), 1000):  # S3 deletes up to 1000 keys a call
                chunk = stale[start : start + 1000]
                answer = self._client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
                if answer.get("Errors"):
                    failed = answer["Errors"][0]
                    raise ConnectorError(
                        f"{self._url(failed['Key'])}: cannot delete an uncommitted file: "
                        f"{failed.get('Code')}: {failed.get('Message')}"
                    )
                removed.extend(self._url(k) for k in chunk)
        except ConnectorError:
            raise
        except Exception as error:
            raise self._problem(error, "deleting uncommitted files") from error
        return removed

    def claim(self, pipeline: str) -> bool:
        """Create (or take over from an earlier run of ``pipeline``) the lock object; whether
        other pipelines are now kept out.

        Raises:
            ConnectorError: another pipeline holds the lock, or S3 cannot be used (naming
                the path and what to check).
        """
        holder = {
            "pipeline": pipeline,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        body = json.dumps(holder).encode()
        key = self._key("", LOCK_NAME)
        try:
            self._client.put_object(
                Bucket=self._location.bucket, Key=key, Body=body, IfNoneMatch="*"
            )
        except Exception as error:
            code = _code_of(error)
            if code in ("NotImplemented", "501"):
                self._logger.warning(
                    "%s: the S3 store has no conditional writes: no lock object keeps other "
                    "pipelines from writing this prefix",
                    self._location,
                )
                return False
            if code not in ("PreconditionFailed", "412"):
                raise self._problem(error, "creating the lock object") from error
            self._take_over(key, pipeline, body)
        self._lock = holder
        return True

    def _take_over(self, key: str, pipeline: str, body: bytes) -> None:
        """Replace the lock object of an earlier run of ``pipeline``; refuse another's."""
        try:
            earlier = self._holder(key)
        except Exception as error:
            raise self._problem(error, "reading the lock object") from error
        if earlier.get("pipeline") != pipeline:
            raise ConnectorError(
                f"{self._location}: pipeline {earlier.get('pipeline')!r} already writes under "
                f"this prefix (pid {earlier.get('pid')} on host {earlier.get('host')}, since "
                f"{earlier.get('since')}); give each pipeline a prefix of its own, or delete "
                f"{self._url(key)} if it no longer runs"
            )
        try:
            self._client.put_object(Bucket=self._location.bucket, Key=key, Body=body)
        except Exception as error:
            raise self._problem(error, "taking the lock object over") from error

    def release(self) -> None:
        """Delete the lock object if this run still holds it (best effort: a failure is
        logged; the next run of this pipeline takes the lock over)."""
        if self._lock is None:
            return
        key, ours, self._lock = self._key("", LOCK_NAME), self._lock, None
        try:
            if self._holder(key) == ours:
                self._client.delete_object(Bucket=self._location.bucket, Key=key)
        except Exception as error:
            self._logger.warning("%s: lock object not deleted: %s", self._url(key), error)

    @property
    def _client(self) -> Any:
        return self._store.client

    def _holder(self, key: str) -> dict[str, Any]:
        try:
            answer = self._client.get_object(Bucket=self._location.bucket, Key=key)
            found = json.loads(answer["Body"].read())
        except ValueError:
            return {"pipeline": "(unreadable lock object)"}
        except Exception as error:
            if _code_of(error) == "NoSuchKey":
                return {}
            raise
        return found if isinstance(found, dict) else {}

    def _problem(self, error: Exception, doing: str = "writing") -> ConnectorError:
        return s3_error(error, str(self._location), doing, self._store.options)

    def _upload_problem(self, error: Exception) -> ConnectorError:
        """Never retried: the rows of a failed upload are in no file any more (boto3 has
        retried the call already), so the run stops and the next one replays them from the
        last commit."""
        problem = self._problem(error, "uploading")
        return ConnectorError(str(problem)) if isinstance(problem, RetriableError) else problem

    def _key(self, directory: str, name: str) -> str:
        return "/".join(part for part in (self._prefix, directory, name) if part)

    def _url(self, key: str) -> str:
        return f"s3://{self._location.bucket}/{key}"


def _code_of(error: Exception) -> str | None:
    """The service's error code of a boto3 ``ClientError``, else None."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code", "")) or None
