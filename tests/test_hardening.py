"""Issue 11: a user's files are never lost (export --out replacement, symlinks, stale staging folders)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dff.atomic import STAGING_MARKER, make_staging_dir
from dff.errors import ExportError
from dff.export import ExportOptions, export_checkpoint
from tests.helpers import make_checkpoint

OPTIONS = ExportOptions(min_size=(64, 64), max_size=(128, 128))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.safetensors")


def test_export_refuses_a_folder_with_a_foreign_manifest(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "u"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    (out / "manifest.json").write_text('{"hello": 1}')
    with pytest.raises(ExportError, match="not a dff export manifest.*notes.txt"):
        export_checkpoint(checkpoint, out, OPTIONS)
    assert (out / "notes.txt").read_text() == "precious"
    assert (out / "manifest.json").read_text() == '{"hello": 1}'


def test_export_again_keeps_engines_and_user_files_and_unchanged_models(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "e"
    export_checkpoint(checkpoint, out, OPTIONS)
    (out / "engines").mkdir()
    (out / "engines" / "feature.engine").write_bytes(b"engine")
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")}
    export_checkpoint(checkpoint, out, OPTIONS)
    assert (out / "engines" / "feature.engine").read_bytes() == b"engine"
    assert (out / "notes.txt").read_text() == "mine"
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")} == before  # byte-identical files untouched
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_export_writes_through_a_symlink(tmp_path: Path, checkpoint: Path) -> None:
    target = tmp_path / "real"
    export_checkpoint(checkpoint, target, OPTIONS)
    link = tmp_path / "link"
    link.symlink_to(target)
    export_checkpoint(checkpoint, link, OPTIONS)
    assert link.is_symlink() and (target / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    with pytest.raises(ExportError, match="symbolic link"):
        export_checkpoint(checkpoint, dangling, OPTIONS)


def test_export_sweeps_staging_folders_of_killed_exports(tmp_path: Path, checkpoint: Path) -> None:
    # A real process that is gone by the time the export runs: its staging folder is stale.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".out.tmp-{pid}-abcd"
    stale.mkdir()
    (stale / STAGING_MARKER).write_text(f"{os.uname().nodename} {pid}\n")
    (stale / "feature.onnx").write_bytes(b"x" * 1000)
    foreign = tmp_path / f".out.tmp-{pid}-user"
    foreign.mkdir()  # no marker: not ours, kept
    live = make_staging_dir(tmp_path, "out")  # this process is alive: kept
    export_checkpoint(checkpoint, tmp_path / "out", OPTIONS)
    assert not stale.exists() and foreign.is_dir() and live.is_dir()
