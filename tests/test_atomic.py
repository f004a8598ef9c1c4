"""Atomic writes: the target appears whole or not at all, and an earlier file survives a failed write."""

import os

import pytest

from dff.atomic import PendingFile, atomic_path, write_bytes_atomic


def test_write_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_bytes_atomic(target, b"one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "video.mp4"
    target.write_bytes(b"earlier")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            assert temp.suffix == ".mp4" and temp.parent == tmp_path  # same folder, same container type
            temp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]


def test_pending_file_discard(tmp_path):
    pending = PendingFile(tmp_path / "log.jsonl")
    pending.temp.write_text("x")
    pending.discard()
    assert not any(tmp_path.iterdir())
