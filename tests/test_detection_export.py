"""Detection through export, check and run: a tiny R-FCN detector, real ONNX files in ONNX Runtime and OpenVINO, a real video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dff.checkpoint import read_checkpoint, save_checkpoint
from dff.config import ModelConfig
from dff.errors import ConfigError
from dff.export import ExportOptions, export_checkpoint
from dff.export.check import check_export
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.sources import open_source
from helpers import make_detector
from test_hardening_writes import disk, fill  # noqa: F401 - the real 1 MB tmpfs fixture and its filler

VIDEO = Path(__file__).resolve().parents[1] / "../shared/data/videos/vtest.avi"
MAX_DETECTIONS = 12


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("detection")
    checkpoint = make_detector(root)
    out = root / "export"
    export_checkpoint(checkpoint, out, ExportOptions(max_size=(256, 256), max_detections=MAX_DETECTIONS))
    return checkpoint, out


def test_checkpoint_knows_its_task_and_old_configs_read_as_segmentation(exported):
    checkpoint, _ = exported
    assert read_checkpoint(checkpoint).config.task == "detection"
    from dff.config import from_dict

    assert from_dict(ModelConfig, {"feature": "tiny", "flow": "tiny"}).task == "segmentation"
    with pytest.raises(ConfigError, match="R-FCN head"):
        ModelConfig(task="detection", feature="small")
    with pytest.raises(ConfigError, match="--max-detections must be >= 1, got 0"):
        ExportOptions(max_detections=0)


def test_manifest_records_task_and_detection_outputs(exported):
    _, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["task"] == "detection"
    outputs = {o["name"]: o for o in manifest["models"]["task"]["outputs"]}
    assert outputs["boxes"]["shape"] == ["N", MAX_DETECTIONS, 4] and outputs["count"]["shape"] == ["N"]
    assert sorted(p.name for p in out.glob("*.onnx")) == sorted(
        ["feature.onnx", "flow.onnx", "task.onnx", "warp.onnx", "warp_plugin.onnx", "key_path.onnx", "propagate.onnx"]
    )


def test_check_matches_pytorch_in_four_runtimes_on_random_and_real_frames(exported):
    checkpoint, out = exported
    report = check_export(out, checkpoint=checkpoint, frames=VIDEO)
    task = [c for c in report.comparisons if c.model == "task"]
    assert {c.runtime for c in task} == {"onnxruntime", "opencv", "reference", "openvino"}
    assert {c.inputs for c in task} == {"random 2x64x64", "random 2x96x128", "frames 2x192x256"}
    assert all(c.ok for c in task), [c for c in task if not c.ok]
    assert any(not c.vacuous for c in task if c.output == "boxes" and c.inputs.startswith("frames"))
    assert not [note for note in report.notes if note.startswith("task (detection)")]  # every runtime ran it
    assert report.ok


def test_runtime_gives_detections_at_the_frames_size_on_a_real_video(exported):
    _, out = exported
    with open_backend("onnxruntime", model=out) as backend:
        assert backend.task_kind == "detection"
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(3))
        for _, frame in zip(range(4), open_source(VIDEO)):
            result = runtime(frame.image)
            height, width = frame.image.shape[:2]
            found = result.detections
            assert result.labels is None and 0 < len(found) <= MAX_DETECTIONS
            assert found.boxes.shape == (len(found), 4) and found.classes.min() >= 1
            assert found.boxes[:, [0, 2]].max() <= width + 1e-3 and found.boxes[:, [1, 3]].max() <= height + 1e-3
            assert np.all(np.diff(found.scores) <= 0)


def test_more_objects_than_the_maximum_are_cut_to_the_best_and_none_give_an_empty_result(exported):
    checkpoint, out = exported
    from dff.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    feat = np.abs(np.random.default_rng(0).standard_normal((1, 32, 8, 8))).astype(np.float32)
    reference = model.task_net.detect(model.task_net(torch.from_numpy(feat)))[0]
    assert len(reference.scores) > MAX_DETECTIONS  # more than the export keeps
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "task.onnx"))
    boxes, scores, classes, count = session.run(None, {"feat": feat})
    assert int(count[0]) == MAX_DETECTIONS
    np.testing.assert_allclose(scores[0], reference.scores[:MAX_DETECTIONS].numpy(), atol=1e-5)
    # Zero detections: features that make every class score fall below the threshold.
    with torch.no_grad():
        model.task_net.rfcn_classes.bias[0] = 100.0  # background wins everywhere
    zero = out.parent / "zero.safetensors"
    save_checkpoint(zero, model, read_checkpoint(checkpoint).config)
    zero_out = out.parent / "zero-export"
    export_checkpoint(zero, zero_out, ExportOptions(max_size=(256, 256), max_detections=MAX_DETECTIONS))
    boxes, scores, classes, count = ort.InferenceSession(str(zero_out / "task.onnx")).run(None, {"feat": feat})
    assert int(count[0]) == 0 and not scores.any() and not classes.any() and not boxes.any()


def test_dff_run_writes_detections_and_refuses_labels_of_a_detector(exported, tmp_path, capsys):
    from dff.cli import main

    _, out = exported
    lines_path = tmp_path / "detections.jsonl"
    assert main(["run", str(out), str(VIDEO), "-l", "3", "--detections", str(lines_path), "--out", str(tmp_path / "o.mp4"), "--no-progress"]) == 0
    records = [json.loads(line) for line in lines_path.read_text().splitlines()]
    assert [r["frame"] for r in records[:4]] == [0, 1, 2, 3] and [r["key"] for r in records[:4]] == [True, False, False, True]
    assert len(records[0]["boxes"]) == len(records[0]["scores"]) == len(records[0]["classes"]) > 0
    assert main(["run", str(out), str(VIDEO), "--labels-dir", str(tmp_path / "labels"), "--no-progress"]) != 0
    assert "is a detection export" in capsys.readouterr().err
    assert not (tmp_path / "labels").exists()


def _frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    import cv2

    return [cv2.resize(frame.image, (size[1], size[0])) for _, frame in zip(range(count), open_source(VIDEO))]


def test_every_backend_gives_the_same_detections(exported):
    """ONNX Runtime and OpenVINO run task.onnx; torch runs the checkpoint through the same graph code."""
    checkpoint, out = exported
    frames = _frames(4, (192, 256))
    found = {}
    for name, model in (("onnxruntime", out), ("openvino", out), ("torch", checkpoint)):
        with open_backend(name, model=model) as backend:
            runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(3))
            found[name] = [runtime(frame).detections for frame in frames]
    for name in ("openvino", "torch"):
        for ours, theirs in zip(found["onnxruntime"], found[name]):
            n = len(ours)  # torch keeps the head's own cap (100), the export MAX_DETECTIONS
            np.testing.assert_allclose(theirs.boxes[:n], ours.boxes, atol=1e-3)
            np.testing.assert_allclose(theirs.scores[:n], ours.scores, atol=1e-5)
            np.testing.assert_array_equal(theirs.classes[:n], ours.classes)


def test_multi_stream_runtime_gives_each_stream_its_detections(exported):
    from dff.runtime import MultiStreamRuntime, phased_schedulers

    _, out = exported
    frames = _frames(2, (192, 256))
    with open_backend("onnxruntime", model=out) as backend:
        single = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(2))
        expected = [single(frame).detections for frame in frames]
        streams = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(2, 2, "aligned"))
        for frame, want in zip(frames, expected):
            results = streams({0: frame, 1: frame})
            for result in results.values():
                assert result.labels is None
                np.testing.assert_allclose(result.detections.boxes, want.boxes, atol=1e-4)


def test_detections_on_a_segmentation_export_are_refused(tmp_path, capsys):
    from dff.cli import main

    checkpoint = tmp_path / "seg"
    assert main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "3", "--out", f"{checkpoint}/"]) == 0
    export = tmp_path / "seg-export"
    assert main(["export", str(checkpoint), "--out", str(export), "--max-size", "128x128"]) == 0
    capsys.readouterr()
    target = tmp_path / "boxes.jsonl"
    assert main(["run", str(export), str(VIDEO), "--detections", str(target), "--no-progress"]) != 0
    assert "is a segmentation export" in capsys.readouterr().err and not target.exists()


def test_dff_bench_times_a_detection_export_and_counts_its_macs(exported, capsys):
    from dff.cli import main

    _, out = exported
    args = ["bench", str(out), "--frames", "6", "--intervals", "1,3", "--repeats", "1", "--warmup-frames", "1", "--height", "128", "--width", "128", "--json"]
    assert main(args) == 0
    figures = json.loads(capsys.readouterr().out)
    # N_task's 1x1 convolutions at 128x128: (18 + 36 + 36 + 36) outputs x 16 inputs x 8x8 cells.
    assert figures["macs"]["task"] == (18 + 36 + 4 * 9 + 4 * 9) * 16 * 64
    assert figures["r_measured"] > 0 and [row["l"] for row in figures["rows"]] == [1, 3]


def test_dff_train_refuses_a_detector(tmp_path, capsys):
    """(``dff eval`` scores detectors: tests/test_detection_eval.py.)"""
    from dff.cli import main

    config = tmp_path / "train.json"
    model = {"task": "detection", "feature": "tiny", "flow": "tiny"}
    config.write_text(json.dumps({"model": model, "output_dir": str(tmp_path / "out"), "iterations": 1, "variant": "dff"}))
    assert main(["train", str(config)]) != 0
    assert "dff train trains segmentation" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_check_without_checkpoint_compares_the_other_runtimes_with_onnxruntime(exported):
    _, out = exported
    report = check_export(out, runtimes=("onnxruntime", "opencv"))
    task = [c for c in report.comparisons if c.model == "task"]
    assert {c.runtime for c in task} == {"opencv", "openvino"} and all(c.ok for c in task)


def test_matching_reports_a_moved_box_a_wrong_class_and_a_missing_box():
    from dff.export.detection_check import match_detections

    expected = {
        "boxes": np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], np.float32),
        "detection_scores": np.array([[0.9, 0.8]], np.float32),
        "classes": np.array([[1, 2]], np.int32),
        "count": np.array([2], np.int32),
    }
    assert match_detections(expected, expected) == (0.0, 0.0, 0.0, 0.0)
    moved = {**expected, "boxes": expected["boxes"] + np.array([1, 0, 1, 0], np.float32)}
    iou_gap, _, _, _ = match_detections(expected, moved)
    assert iou_gap == pytest.approx(1 - 90 / 110)
    wrong = {**expected, "classes": np.array([[1, 3]], np.int32)}
    assert match_detections(expected, wrong)[2] == 0.5
    fewer = {**expected, "count": np.array([1], np.int32)}
    assert match_detections(expected, fewer)[2:] == (0.5, 1.0)


def test_sigterm_mid_run_keeps_an_earlier_detections_file_and_leaves_no_temporary(exported, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    _, out = exported
    target = tmp_path / "boxes.jsonl"
    target.write_text("an earlier file\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "dff.cli", "run", str(out), str(VIDEO), "-l", "1", "--detections", str(target), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".boxes.tmp-") for p in tmp_path.iterdir()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "dff run never started writing"
        time.sleep(0.05)
    time.sleep(0.3)  # some frames written
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boxes.jsonl"]
    assert target.read_text() == "an earlier file\n"


def test_more_rows_than_the_heads_cap_keep_the_heads_cap(exported, tmp_path):
    import onnxruntime as ort

    checkpoint, _ = exported
    out = tmp_path / "wide"
    export_checkpoint(checkpoint, out, ExportOptions(max_size=(256, 256), max_detections=150))  # the tiny head keeps 100
    feat = np.abs(np.random.default_rng(1).standard_normal((1, 32, 12, 12))).astype(np.float32)
    boxes, scores, classes, count = ort.InferenceSession(str(out / "task.onnx")).run(None, {"feat": feat})
    assert boxes.shape == (1, 150, 4) and int(count[0]) == 100 and not scores[0, 100:].any()


def test_full_disk_for_detections_is_an_error_that_keeps_the_earlier_file(exported, disk, capsys):
    from dff.cli import main

    _, out = exported
    target = disk / "boxes.jsonl"
    target.write_text("an earlier file\n")
    fill(disk, leave=16 << 10)  # 795 frames of up to 12 boxes each need far more
    assert main(["run", str(out), str(VIDEO), "--detections", str(target), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write detections file {target}" in err and "no space left" in err, err
    assert target.read_text() == "an earlier file\n"
    assert sorted(p.name for p in disk.iterdir()) == ["boxes.jsonl", "filler"]


def _clip(path: Path, start: int) -> Path:
    """8 frames of vtest.avi from ``start``, 128×160, as a Motion-JPEG AVI."""
    from dff.sources import VideoWriter
    from helpers import vtest_frames

    with VideoWriter(path, fps=10, fourcc="MJPG") as writer:
        for image in vtest_frames(8, (128, 160), start=start):
            writer.write(image)
    return path


def test_many_streams_write_each_streams_detections_equal_to_its_run_alone(exported, tmp_path, capsys):
    from dff.cli import main
    from helpers import decode_all

    _, out = exported
    clips = [_clip(tmp_path / "walk.avi", 0), _clip(tmp_path / "later.avi", 200)]
    streams = tmp_path / "streams"
    args = ["run", str(out), *map(str, clips), "--out-dir", str(streams), "-l", "3", "--phase", "aligned", "--no-progress"]
    assert main(args) == 0
    for clip in clips:
        alone = tmp_path / f"{clip.stem}.jsonl"
        assert main(["run", str(out), str(clip), "-l", "3", "--detections", str(alone), "--no-progress"]) == 0
        batched = [json.loads(line) for line in (streams / clip.stem / "detections.jsonl").read_text().splitlines()]
        single = [json.loads(line) for line in alone.read_text().splitlines()]
        assert [(r["frame"], r["key"]) for r in batched] == [(r["frame"], r["key"]) for r in single] == [(t, t % 3 == 0) for t in range(8)]
        assert sum(len(r["boxes"]) for r in batched) > 0
        for ours, theirs in zip(batched, single):
            assert ours["classes"] == theirs["classes"]
            np.testing.assert_allclose(ours["boxes"], theirs["boxes"], atol=1e-2)
            np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4)
        assert len(decode_all(streams / clip.stem / "overlay.mp4")) == 8 and not (streams / clip.stem / "labels").exists()
    assert batched != [json.loads(line) for line in (streams / "walk" / "detections.jsonl").read_text().splitlines()]  # two different clips
    capsys.readouterr()
    assert main(["run", str(out), *map(str, clips), "--out-dir", str(streams), "--detections", str(tmp_path / "d.jsonl"), "--no-progress"]) != 0
    assert "--detections is for one source without --out-dir" in capsys.readouterr().err


def test_a_stride_8_detector_exports_checks_and_runs_in_onnx_runtime_as_in_torch(tmp_path, capsys):
    """``output_stride: 8`` (a dilated conv4): the export's grid is H/8 × W/8 and its detections are the checkpoint's."""
    from dff.cli import main

    checkpoint = make_detector(tmp_path, output_stride=8)
    out = tmp_path / "export"
    assert main(["export", str(checkpoint), "--out", str(out), "--max-size", "256x256", "--max-detections", str(MAX_DETECTIONS)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["feature_stride"] == 8 and manifest["model"]["output_stride"] == 8
    feat = {o["name"]: o for o in manifest["models"]["feature"]["outputs"]}["feat"]
    assert feat["shape"] == ["N", 32, "H/8", "W/8"]
    report = check_export(out, checkpoint=checkpoint, runtimes=("onnxruntime",))
    assert report.ok and any(c.model == "task" and c.output == "boxes" and not c.vacuous for c in report.comparisons)
    frames = _frames(4, (192, 256))
    found = {}
    for name, model in (("onnxruntime", out), ("torch", checkpoint)):
        with open_backend(name, model=model) as backend:
            runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(3))
            found[name] = [runtime(frame).detections for frame in frames]
    for ours, theirs in zip(found["onnxruntime"], found["torch"]):
        n = len(ours)
        assert n > 0
        np.testing.assert_allclose(theirs.boxes[:n], ours.boxes, atol=1e-3)
        np.testing.assert_array_equal(theirs.classes[:n], ours.classes)


def test_checkpoints_written_before_output_stride_load_with_stride_16(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from dff.checkpoint import CONFIG_KEY, load_checkpoint

    path = make_detector(tmp_path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        weights = {name: f.get_tensor(name) for name in f.keys()}
    config = json.loads(metadata[CONFIG_KEY])
    del config["output_stride"]
    save_file(weights, str(path), metadata={**metadata, CONFIG_KEY: json.dumps(config)})
    model, loaded = load_checkpoint(path)
    assert loaded.output_stride == 16 and model.feature_net.stride == model.flow_net.feature_stride == 16
    assert model.task_net.feature_stride == 16
    with torch.no_grad():
        assert model.feature_net(torch.zeros(1, 3, 64, 96)).shape[2:] == (4, 6)
    with pytest.raises(ConfigError, match="output_stride 8 is for detection only"):
        ModelConfig(feature="tiny", flow="tiny", output_stride=8)
    from dff.cli import main

    args = ["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "4", "--output-stride", "8"]
    assert main([*args, "--task", "detection", "--out", f"{tmp_path}/det8/"]) == 0
    assert read_checkpoint(tmp_path / "det8" / "model.safetensors").config.output_stride == 8
    assert main([*args, "--out", f"{tmp_path}/seg8/"]) != 0 and not (tmp_path / "seg8" / "model.safetensors").exists()
    from dff.config import from_dict

    with pytest.raises(ConfigError, match="12 is not one of \\[8, 16\\]"):
        from_dict(ModelConfig, {"task": "detection", "feature": "tiny", "flow": "tiny", "output_stride": 12})
