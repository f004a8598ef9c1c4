"""Issue 11: `dff run` checks its output paths before the first frame, and SIGTERM/Ctrl-C clean up like an error."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers import small_clip, start_dff

from dff.cli import main


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_clip(tmp_path_factory.mktemp("clip") / "long.avi", 600)


def test_log_that_is_a_directory_is_refused_before_any_frame(tiny_export: Path, long_clip: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "logs").mkdir()
    started = time.perf_counter()
    code = main(["run", str(tiny_export), str(long_clip), "--log", str(tmp_path / "logs"), "--no-progress"])
    message = capsys.readouterr().err
    assert code == 2
    assert "--log" in message and "is a directory" in message
    assert time.perf_counter() - started < 5  # refused before the 600 frames were computed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]  # nothing left behind


def test_labels_dir_that_is_a_file_is_refused(tiny_export: Path, long_clip: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "labels").write_text("mine")
    assert main(["run", str(tiny_export), str(long_clip), "--labels-dir", str(tmp_path / "labels"), "--no-progress"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "labels").read_text() == "mine"


@pytest.mark.parametrize(("sent", "status", "word"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_signal_mid_run_removes_temporary_files_and_keeps_earlier_outputs(
    tiny_export: Path, long_clip: Path, tmp_path: Path, sent: signal.Signals, status: int, word: str
) -> None:
    out, log = tmp_path / "out.mp4", tmp_path / "timings.jsonl"
    out.write_bytes(b"an earlier overlay")
    log.write_text("an earlier log\n")
    process = start_dff(
        "run", str(tiny_export), str(long_clip), "-l", "1", "--out", str(out), "--log", str(log), "--no-progress"
    )
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir()):  # frames are being written
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "dff run never started writing"
        time.sleep(0.05)
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert "dff run: " in stderr and word in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "timings.jsonl"]  # no temporary file left
    assert out.read_bytes() == b"an earlier overlay" and log.read_text() == "an earlier log\n"
