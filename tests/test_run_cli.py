"""``dff run`` end to end: `dff init` → `dff export` → `dff run` on short real clips, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import DATA, decode_all, run_without_torch, small_clip, wipe_frame

from dff.cli import main

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real test data not found at {DATA}")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, export directory) of a tiny model, made with the commands a user runs."""
    folder = tmp_path_factory.mktemp("model")
    checkpoint = folder / "tiny.safetensors"
    assert main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "5", "--out", str(checkpoint)]) == 0
    assert main(["export", str(checkpoint), "--out", str(folder / "export"), "--max-size", "512x512"]) == 0
    return checkpoint, folder / "export"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return small_clip(tmp_path_factory.mktemp("clip") / "clip.avi", 7)


@needs_data
class TestRun:
    def test_run_with_all_outputs_and_compare(self, model, clip, tmp_path, capsys):
        out, labels, log = tmp_path / "out.mp4", tmp_path / "labels", tmp_path / "timings.jsonl"
        code = main(
            ["run", str(model[1]), str(clip), "--key-interval", "3", "--out", str(out), "--labels-dir", str(labels),
             "--log", str(log), "--compare", "--no-progress"]
        )
        printed = capsys.readouterr().out
        assert code == 0
        assert "7 frames at" in printed and "r (Eq. 5, non-key / key time) = " in printed
        assert "s (Eq. 7, predicted speed-up for l = 3) = " in printed
        assert "per-frame baseline:" in printed and "measured speed-up over per-frame: " in printed
        assert len(decode_all(out)) == 7
        assert sorted(p.name for p in labels.glob("*.png")) == [f"{i:06d}.png" for i in range(7)]
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert [r["path"] for r in records] == ["key", "non-key", "non-key", "key", "non-key", "non-key", "key"]
        assert all("baseline_ms" in r for r in records)

    def test_torch_backend(self, model, clip, tmp_path, capsys):
        assert main(["run", str(model[0]), str(clip), "--backend", "torch", "-O", "device=cpu", "--labels-dir",
                     str(tmp_path), "--no-progress"]) == 0
        assert "7 frames at" in capsys.readouterr().out
        assert cv2.imread(str(tmp_path / "000006.png"), cv2.IMREAD_UNCHANGED).shape == (120, 160)

    def test_frame_folder_source(self, model, tmp_path, capsys):
        frames = tmp_path / "frames"
        frames.mkdir()
        for i, image in enumerate(decode_all(small_clip(tmp_path / "clip.avi", 3))):
            cv2.imwrite(str(frames / f"f{i}.png"), image)
        assert main(["run", str(model[1]), str(frames), "--no-progress"]) == 0
        assert "3 frames at" in capsys.readouterr().out

    def test_corrupt_frame_is_skipped_and_reported(self, model, tmp_path, capsys):
        path = small_clip(tmp_path / "clip.avi", 8)
        wipe_frame(path, 3)
        assert main(["run", str(model[1]), str(path), "--no-progress"]) == 0
        captured = capsys.readouterr()
        assert "7 frames at" in captured.out and "skipped 1 unreadable frame(s)" in captured.out
        # The warning is one line of ours, not a library's file and line (issue 11 item 14).
        assert captured.err == f"dff run: warning: video {path}: skipped 1 unreadable frame(s) before frame 4\n"

    def test_video_that_ends_early_is_reported(self, model, tmp_path, capsys):
        path = small_clip(tmp_path / "clip.avi", 12)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert main(["run", str(model[1]), str(path), "--no-progress"]) == 0
        captured = capsys.readouterr()
        # Said once, in the summary (issue 11 item 14), not also as a warning.
        assert "the video ended after 6 of the 12 frames its container announced" in captured.out
        assert "ended" not in captured.err

    def test_runs_without_torch(self, model, clip):
        code = f"""
from dff.cli import main
code = main(["run", {str(model[1])!r}, {str(clip)!r}, "--no-progress"])
sys.exit(code if "torch" not in sys.modules else 99)
"""
        result = run_without_torch(code)
        assert result.returncode == 0, result.stderr
        assert "7 frames at" in result.stdout


class TestRunErrors:
    def run(self, args: list[str], capsys) -> tuple[int, str]:
        code = main(["run", *args, "--no-progress"])
        return code, capsys.readouterr().err

    def test_missing_export(self, tmp_path, capsys):
        cv2.imwrite(str(tmp_path / "0.png"), np.zeros((64, 64, 3), np.uint8))
        code, err = self.run([str(tmp_path / "absent"), str(tmp_path)], capsys)
        assert code == 2 and "dff run: error: export directory" in err and "does not exist" in err

    def test_video_that_cannot_be_opened(self, model, tmp_path, capsys):
        fake = tmp_path / "fake.mp4"
        fake.write_text("not a video")
        code, err = self.run([str(model[1]), str(fake)], capsys)
        assert code == 2 and "cannot open video" in err and "re-encode to H.264" in err

    def test_missing_video(self, model, tmp_path, capsys):
        code, err = self.run([str(model[1]), str(tmp_path / "absent.mp4")], capsys)
        assert code == 2 and "absent.mp4 does not exist" in err

    @needs_data
    def test_hash_mismatch(self, model, clip, tmp_path, capsys):
        broken = tmp_path / "export"
        broken.mkdir()
        for file in model[1].iterdir():
            (broken / file.name).write_bytes(file.read_bytes())
        with open(broken / "task.onnx", "ab") as handle:
            handle.write(b"\0")
        code, err = self.run([str(broken), str(clip)], capsys)
        assert code == 2 and "task.onnx (task model) does not match the SHA-256" in err

    @needs_data
    def test_unknown_backend_option(self, model, clip, capsys):
        code, err = self.run([str(model[1]), str(clip), "-O", "fp16=true"], capsys)
        assert code == 2 and "takes no option(s) ['fp16']" in err

    def test_bad_key_interval(self, model, tmp_path, capsys):
        code, err = self.run([str(model[1]), str(tmp_path), "--key-interval", "0"], capsys)
        assert code == 2 and "--key-interval must be >= 1, got 0" in err

    def test_option_without_value(self, model, tmp_path, capsys):
        with pytest.raises(SystemExit):
            main(["run", str(model[1]), str(tmp_path), "-O", "provider"])
        assert "expected KEY=VALUE, got 'provider'" in capsys.readouterr().err
