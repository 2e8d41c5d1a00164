"""The files of an ``s3://bucket/...`` path: objects listed by boto3, read through pyarrow.

``path`` names objects as a local ``path`` names files:

- ``s3://bucket/dir/`` (or ``s3://bucket``): the objects directly under ``dir/``, not deeper;
- ``s3://bucket/key``: the object ``key``, or when there is none, the objects directly under
  ``key/`` (a directory);
- ``s3://bucket/dir/*.csv``, ``s3://bucket/dir/**/*.csv``: a glob over keys, ``*``, ``?`` and
  ``[..]`` within one ``/``-separated part, ``**`` over any number of parts (as the last part,
  every object below).

Listing is paginated ``ListObjectsV2`` under the longest prefix without glob characters
(with the ``/`` delimiter when no part below it is searched). Keys with a part starting with
``.`` (hidden, as local files) and folder markers (keys ending in ``/``) are left out. Each
object is named ``s3://bucket/key``, the same on every machine, and carries its ETag: an
object whose ETag changed since its position was taken was replaced.

Objects appear whole when uploaded, so nothing listed is still being written. Reads are
ranged ``GET`` requests through pyarrow's S3 random access file: a large object is never
loaded whole. A line format reads blocks of about ``batch_size`` lines (1-2 MB at the
default), one after the other; each is served from a window of ``S3_READ_AHEAD_BYTES``
fetched in one ``GET``, the range size S3's performance guidelines suggest (8-16 MB), instead
of one request per block: fewer requests, each paying the round trip and the request price
once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError
from omconnect.connectors.files._file_store import FileStore, OpenFile, StoredFile, record_name
from omconnect.connectors.files._glob import is_glob
from omconnect.connectors.files._s3 import S3Location, S3Options
from omconnect.connectors.files._s3_errors import is_s3_failure, s3_error

log = logging.getLogger(__name__)

_NANOSECONDS = 1_000_000_000

S3_READ_AHEAD_BYTES = 16 << 20
"""Bytes fetched by one ranged ``GET`` of a line format's reads (module docstring)."""


class S3ObjectStore(FileStore):
    """The objects an ``s3://`` path names (see the module docstring)."""

    whole_when_listed = True

    def __init__(self, path: str, options: S3Options) -> None:
        super().__init__(path)
        self.location = S3Location.parse(path)
        self.options = options
        self._clients = options.store()
        key = self.location.key
        self._glob = _key_pattern(key) if is_glob(key) else None
        # The fixed part of a glob, up to its last "/" before a glob character.
        cut = next((i for i, c in enumerate(key) if c in "*?["), len(key))
        self._list_prefix = key[:cut]
        self._root = key[: key.rfind("/", 0, cut) + 1] if self._glob else None
        self._deep = self._glob is not None and ("/" in key[cut:] or "**" in key)

    def list(self) -> list[StoredFile]:
        key = self.location.key
        try:
            if self._glob is not None:
                delimiter = None if self._deep else "/"
                objects = [
                    o
                    for o in self._objects(self._list_prefix, delimiter)
                    if self._glob.fullmatch(o["Key"])
                ]
                root = self._root or ""
            elif key and not key.endswith("/"):
                exact = [o for o in self._objects(key, "/") if o["Key"] == key]
                if exact:
                    return [self._stored(exact[0])]
                root = key + "/"
                objects = list(self._objects(root, "/"))
            else:
                root = key
                objects = list(self._objects(root, "/"))
        except Exception as error:
            raise self._failure(error, "listing objects") from None
        found = [self._stored(o) for o in objects if not _hidden_or_folder(o["Key"][len(root) :])]
        return sorted(found)

    def open(self, file: StoredFile) -> OpenFile:
        try:
            native = self._clients.filesystem.open_input_file(
                f"{self.location.bucket}/{file.location}"
            )
        except FileNotFoundError:
            raise
        except Exception as error:
            raise self._failure(error, f"opening {file.name}") from None
        if native.size() != file.size:
            # Replaced since it was listed: its ETag too.
            now = self.stat(file)
            if now is None:
                native.close()
                raise FileNotFoundError(file.name)
            file = now
        return OpenFile(file, native, read_ahead=S3_READ_AHEAD_BYTES)

    def stat(self, file: StoredFile) -> StoredFile | None:
        client = self._clients.client
        try:
            head = client.head_object(Bucket=self.location.bucket, Key=file.location)
        except Exception as error:
            if _status(error) == 404:
                return None
            raise self._failure(error, f"reading {file.name}") from None
        return StoredFile(
            file.name,
            file.location,
            int(head["ContentLength"]),
            _seconds_ns(head["LastModified"]),
            _etag(head["ETag"]),
        )

    def check(self) -> None:
        """Refuse a bucket that does not exist, credentials that are refused, access that
        is denied; an endpoint that cannot be reached now is logged and left to the task."""
        try:
            self._clients.client.list_objects_v2(
                Bucket=self.location.bucket, Prefix=self._list_prefix, MaxKeys=1
            )
        except Exception as error:
            failure = self._failure(error, "listing objects")
            if isinstance(failure, RetriableError):
                log.warning("%s (the source tries again when it starts)", failure)
                return
            raise failure from None

    def schema_name(self) -> str:
        """The last part of the key without its extension for one object
        (``s3://b/orders.csv`` -> ``orders``), else the last part of the prefix searched
        (``s3://b/data/orders/*.csv`` -> ``orders``), else the bucket's name."""
        key = self.location.key
        if self._root is not None:
            base = self._root.rstrip("/")
        elif key.endswith("/"):
            base = key.rstrip("/")
        else:
            base = str(PurePosixPath(key).with_suffix("")) if key else ""
        return record_name(base.rsplit("/", 1)[-1] or self.location.bucket)

    def access_error(self, error: BaseException) -> ConnectorError | None:
        """A failure of pyarrow or boto3 to reach or read S3 (not to parse an object)."""
        if not is_s3_failure(error):
            return None
        return self._failure(error, "reading")

    def _failure(self, error: BaseException, doing: str) -> ConnectorError:
        if isinstance(error, ConfigError):  # boto3 missing: the s3 extra
            return error
        return s3_error(error, self.path, doing, self.options)

    def _objects(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = delimiter
        pages = self._clients.client.get_paginator("list_objects_v2").paginate(**arguments)
        for page in pages:
            yield from page.get("Contents", ())

    def _stored(self, listed: dict[str, Any]) -> StoredFile:
        key = listed["Key"]
        return StoredFile(
            f"s3://{self.location.bucket}/{key}",
            key,
            int(listed["Size"]),
            _seconds_ns(listed["LastModified"]),
            _etag(listed["ETag"]),
        )


def _key_pattern(key: str) -> re.Pattern[str]:
    """A glob over keys as a regular expression (see the module docstring)."""
    parts = key.split("/")
    pieces: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            pieces.append(".*" if last else "(?:[^/]+/)*")
            continue
        pieces.append(_part_pattern(part) + ("" if last else "/"))
    return re.compile("".join(pieces))


def _part_pattern(part: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := part.find("]", i + 2)) > 0:
            inside = part[i + 1 : end]
            if inside.startswith("!"):
                inside = "^" + inside[1:]
            out.append(f"[{inside.replace(chr(92), chr(92) * 2)}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _hidden_or_folder(relative: str) -> bool:
    return (
        not relative
        or relative.endswith("/")
        or any(part.startswith(".") for part in relative.split("/"))
    )


def _etag(text: str) -> str:
    return text.strip('"')


def _seconds_ns(when: Any) -> int:
    """A listing's or a HEAD's time in whole seconds (the listing's has milliseconds, the
    HEAD's not), as nanoseconds."""
    return int(when.timestamp()) * _NANOSECONDS


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None
