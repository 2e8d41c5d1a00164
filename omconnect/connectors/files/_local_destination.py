"""A local directory as a file sink's destination: hidden temporary files, atomic renames.

While a file is written it is ``.<final name>.<writer>.tmp`` in its directory (hidden:
sources and readers skip it), where ``<writer>`` is the writing process's pid and a random
token: a writer only ever renames or deletes its own temporary files, and deletes another's
only when it knows that writer is gone (it holds the directory's lock, or the pid is dead).
Publishing a file fsyncs it, renames it to its final name and fsyncs the directory, so a
final name never shows a torn file, even after a power loss.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa

from omconnect.connectors.files._rolling_writer import FileNames, sync_directory


class _TemporaryFile:
    """A file written under its hidden temporary name, renamed when published."""

    def __init__(self, directory: Path, name: str, writer: str) -> None:
        self.location = directory / name
        self._temp = directory / f".{name}.{writer}.tmp"
        self.sink: pa.NativeFile = pa.OSFile(str(self._temp), "wb")

    def publish(self) -> None:
        self.sink.close()
        fd = os.open(self._temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._temp, self.location)
        sync_directory(self.location.parent)

    def abort(self) -> None:
        self.sink.close()
        self._temp.unlink(missing_ok=True)


class LocalDirectory:
    """The directory ``root`` and the partition directories under it.

    Args:
        root: the sink's directory (exists).
        writer: this writer's name in its temporary files (``writer_token()``).
    """

    def __init__(self, root: Path, writer: str) -> None:
        self.root = root
        self.writer = writer

    def open(self, directory: str, name: str) -> _TemporaryFile:
        parent = self.root / directory if directory else self.root
        parent.mkdir(parents=True, exist_ok=True)
        return _TemporaryFile(parent, name, self.writer)

    def remove_leftovers(
        self, names: FileNames, from_offset: int, exclusive: bool
    ) -> list[str | Path]:
        """Without ``exclusive`` only temporary files whose writer's pid is dead go (and
        those of older versions, whose names carry no writer)."""
        # Without the writer part: a temporary file of an older version.
        temp = re.compile(r"\." + names.pattern.pattern + r"(?:\.(\d+)-[0-9a-f]+)?\.tmp")
        removed: list[str | Path] = []
        for parent, _directories, files in os.walk(self.root):
            removed_here = False
            for name in files:
                offset = names.offset_of(name)
                stale_published = offset is not None and offset >= from_offset
                found = temp.fullmatch(name)
                stale_temp = found is not None and (
                    exclusive or found.group(2) is None or not _writer_is_alive(int(found.group(2)))
                )
                if stale_published or stale_temp:
                    path = Path(parent, name)
                    path.unlink(missing_ok=True)
                    removed.append(path)
                    removed_here = True
            if removed_here:
                sync_directory(Path(parent))
        return removed


def _writer_is_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
