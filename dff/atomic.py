"""Atomic file writes: a temporary file beside the target, renamed onto it when complete.

Readers never see half a file, and an interrupted or failed write leaves the previous file intact.
A failed write (no space left, permission denied) is an :class:`~dff.errors.OutputError` naming the
path, the cause and the fix, never a success. Torch-free: the runtime writes its outputs through this too.

Temporary names carry the writing process's id (``.NAME.tmp-PID-XXXX``), so that a later write
into the same folder can remove the leftovers of a process that was killed (``kill -9``) and
nothing else: a name of another pattern, or of a process still alive, is never touched.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dff.errors import OutputError

#: Inside a staging folder: who made it (host and process id), so that a later run can tell it is stale.
STAGING_MARKER = ".dff-staging"

_FIXES = {
    errno.ENOSPC: "no space left on the device: free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded: free some space or write elsewhere",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.EROFS: "read-only file system: choose a writable folder",
    errno.ENOENT: "the folder does not exist or cannot hold files: create it or choose another",
    errno.EISDIR: "it is a directory: give a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def describe_os_error(error: OSError) -> str:
    """The cause of ``error`` and what to do about it, in words."""
    return _FIXES.get(error.errno, error.strerror or str(error))


def write_failure(path: str | Path, error: OSError, what: str = "") -> OutputError:
    """An OutputError for a failed write of ``path``: ``cannot write [what] PATH: cause: fix``."""
    label = f"{what} " if what else ""
    return OutputError(f"cannot write {label}{path}: {describe_os_error(error)}")


def check_output_file(path: str | Path, what: str) -> Path:
    """Check before any work that a file can be written at ``path``; ``what`` names it (``--log``).

    The folder must exist and take a new file (proved by creating and removing one, which also
    catches /proc, read-only mounts and full disks), and ``path`` must not be a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory: give a file path inside it (e.g. {path / ('out' + _suffix(what))})")
    if not path.parent.is_dir():
        raise OutputError(f"{what} {path}: folder {path.parent} does not exist: create it first")
    _probe(path.parent, what, path)
    return path


def check_output_dir(path: str | Path, what: str) -> Path:
    """Check before any work that ``path`` is (or can be made) a folder that takes new files; creates it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder: give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failure(path, error, what) from None
    _probe(path, what, path)
    return path


def space_error(folder: str | Path, size: int = 1 << 16) -> OSError | None:
    """The error that writing ``size`` bytes into ``folder`` raises now (ENOSPC on a full disk), or None.

    For writers that do not report their own failures (OpenCV's video writer): the cause of a bad file, in words.
    """
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".dff-probe-") as probe:
            probe.write(bytes(size))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        return error
    return None


def _suffix(what: str) -> str:
    return {"--log": ".jsonl", "--out": ".mp4"}.get(what, "")


def _probe(folder: Path, what: str, shown: Path) -> None:
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".dff-probe-")
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        raise write_failure(shown, error, what) from None


def _temp_prefix(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-"


def _stale(pid_text: str) -> bool:
    """Whether process ``pid_text`` (digits) no longer exists on this machine."""
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


_swept: set[Path] = set()


def sweep_stale_files(folder: Path) -> None:
    """Remove the temporary files that processes now dead left in ``folder`` (once per folder and process)."""
    if folder in _swept:
        return
    _swept.add(folder)
    pattern = re.compile(r"\.(.+)\.tmp-(\d+)-[A-Za-z0-9_]+(\..*)?")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False) and _stale(match.group(2)):
            Path(entry.path).unlink(missing_ok=True)


class PendingFile:
    """A temporary file beside ``path`` that becomes ``path`` on :meth:`commit` and is removed on :meth:`discard`.

    The temporary name keeps ``path``'s extension (OpenCV picks a container by it) and lies in the same
    folder (so the commit is a rename).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_files(self.path.parent)
            handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=_temp_prefix(self.path.stem), suffix=self.path.suffix)
        except OSError as error:
            raise write_failure(self.path, error) from None
        os.close(handle)
        self.temp = Path(name)

    def commit(self) -> Path:
        try:
            # Data reaches the disk before the rename, so that a crash cannot leave an empty file in place of the old one.
            with open(self.temp, "rb+") as handle:
                os.fsync(handle.fileno())
            # mkstemp makes the file 0600; the result gets the permissions of a file written in place.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.temp, 0o666 & ~umask)
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(self.path))
            os.replace(self.temp, self.path)
        except OSError as error:
            self.discard()
            raise write_failure(self.path, error) from None
        return self.path

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    An OSError while writing (a full disk, say) becomes an OutputError naming ``path``.
    """
    pending = PendingFile(path)
    try:
        try:
            yield pending.temp
        except OSError as error:
            raise write_failure(path, error) from None
        pending.commit()
    finally:
        pending.discard()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def make_staging_dir(parent: Path, name: str) -> Path:
    """A new private folder ``parent/.NAME.tmp-PID-XXXX`` marked as ours; stale ones of dead processes are removed first."""
    sweep_stale_dirs(parent, name)
    try:
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=_temp_prefix(name)))
        (staging / STAGING_MARKER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    except OSError as error:
        raise write_failure(parent / name, error) from None
    return staging


def sweep_stale_dirs(parent: Path, name: str) -> list[Path]:
    """Remove staging folders for ``name`` in ``parent`` that a dead process of this host left; returns them.

    Only folders with our name pattern *and* our marker naming this host and a dead process are removed.
    """
    removed = []
    pattern = re.compile(re.escape(f".{name}.tmp-") + r"(\d+)-[A-Za-z0-9_]+")
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not (match and entry.is_dir(follow_symlinks=False)):
            continue
        try:
            host, pid = (Path(entry.path) / STAGING_MARKER).read_text().split()
        except (OSError, ValueError):
            continue
        if host == socket.gethostname() and pid == match.group(1) and _stale(pid):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed
