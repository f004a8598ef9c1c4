"""Atomic file writes: a temporary file beside the target, renamed onto it when complete.

Readers never see half a file, and an interrupted write leaves the previous file intact.
Torch-free: the runtime writes its outputs through this too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PendingFile:
    """A temporary file beside ``path`` that becomes ``path`` on :meth:`commit` and is removed on :meth:`discard`.

    The temporary name keeps ``path``'s extension (OpenCV picks a container by it) and lies in the same
    folder (so the commit is a rename).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.tmp-", suffix=self.path.suffix)
        os.close(handle)
        self.temp = Path(name)

    def commit(self) -> Path:
        # mkstemp makes the file 0600; the result gets the permissions of a file written in place.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp, 0o666 & ~umask)
        os.replace(self.temp, self.path)
        return self.path

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed."""
    pending = PendingFile(path)
    try:
        yield pending.temp
        pending.commit()
    finally:
        pending.discard()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return Path(path)
