"""The C++ runtime (cpp/, built by cpp/ci.sh) against the Python runtime: same labels, same detections, same schedule,
same errors.

Parity is checked on decoded images (PNG files written here from real frames), since video and JPEG decoders differ
between OpenCV builds: the C++ example app reads the PNGs, the Python runtime the same arrays. Against the Python
OpenVINO backend (f32, one thread) every pixel must be equal; against ONNX Runtime at least 99.9%. A detection export's
boxes are read through the C API (libdff.so by ctypes) at full precision and must equal the Python OpenVINO backend's:
same count and classes, boxes within 1e-3 pixel, scores within 1e-5.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import DATA, REPO, decode_all, make_checkpoint, make_detector, make_export, small_clip

from dff.errors import ExportError
from dff.export import ExportOptions, export_checkpoint
from dff.manifest import load_manifest
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.detections import Detections

BUILD = Path(os.environ.get("DFF_CPP_BUILD", REPO / "cpp" / "build"))
APP = BUILD / "dff_video"
LIBRARY = BUILD / "libdff.so"
DEMO_MODEL = REPO / "dff" / "assets" / "demo_model.safetensors"
#: The issue's floor against ONNX Runtime (an argmax may flip a rare near-tie pixel between engines).
MIN_ORT_AGREEMENT = 0.999
#: Detection parity with the Python OpenVINO backend: box corners in pixels, scores.
BOX_TOLERANCE, SCORE_TOLERANCE = 1e-3, 1e-5
MAX_DETECTIONS = 12


def app() -> Path:
    """The built example app; a failure (not a skip) when it is missing: `make test` builds it first."""
    if not APP.is_file():
        pytest.fail(f"the C++ runtime is not built ({APP} is missing): run `bash cpp/ci.sh` (or `make cpp`) first")
    return APP


def write_frames(folder: Path, images: list[np.ndarray]) -> list[np.ndarray]:
    """``images`` as PNG files (lossless) in ``folder``; returns them as read back, which is what both runtimes get."""
    folder.mkdir()
    for index, image in enumerate(images):
        cv2.imwrite(str(folder / f"{index:06d}.png"), image)
    return [cv2.imread(str(folder / f"{index:06d}.png")) for index in range(len(images))]


def run_cpp(export: Path, frames: Path, out: Path, interval: int) -> tuple[list[np.ndarray], list[bool]]:
    labels_dir, summary = out / "labels", out / "summary.json"
    command = [str(app()), str(export), str(frames), "-l", str(interval), "-O", "threads=1", "-O", "precision=f32",
               "--labels-dir", str(labels_dir), "--summary", str(summary)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    per_frame = json.loads(summary.read_text())["per_frame"]
    labels = [cv2.imread(str(labels_dir / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED) for i in range(len(per_frame))]
    return labels, [frame["key"] for frame in per_frame]


def run_python(backend: str, export: Path, images: list[np.ndarray], interval: int):
    with open_backend(backend, model=export, threads=1) as engine:
        runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(interval))
        results = [runtime(image) for image in images]
    return [r.labels for r in results], [r.key for r in results]


def check_parity(export: Path, images: list[np.ndarray], tmp_path: Path, interval: int) -> None:
    decoded = write_frames(tmp_path / "frames", images)
    cpp_labels, cpp_keys = run_cpp(export, tmp_path / "frames", tmp_path, interval)
    ov_labels, ov_keys = run_python("openvino", export, decoded, interval)
    ort_labels, ort_keys = run_python("onnxruntime", export, decoded, interval)
    assert cpp_keys == ov_keys == ort_keys == [i % interval == 0 for i in range(len(images))]
    for index, (cpp, ov) in enumerate(zip(cpp_labels, ov_labels, strict=True)):
        assert cpp.shape == ov.shape == images[index].shape[:2]
        assert np.array_equal(cpp, ov), f"frame {index}: C++ and Python OpenVINO labels differ on {np.mean(cpp != ov):.5f}"
    agreement = np.mean([(c == o).mean() for c, o in zip(cpp_labels, ort_labels)])
    assert agreement >= MIN_ORT_AGREEMENT, f"C++ labels agree with ONNX Runtime's on {agreement:.5f} of pixels"
    assert len(np.unique(np.concatenate([c.ravel() for c in cpp_labels]))) > 1, "labels should vary over the clip"


class CDetection(ctypes.Structure):
    """dff.h's dff_detection."""

    _fields_ = [(name, ctypes.c_float) for name in ("x1", "y1", "x2", "y2", "score")] + [("class_id", ctypes.c_int32)]


def c_api_detections(export: Path, images: list[np.ndarray], interval: int) -> tuple[list[Detections], list[bool]]:
    """``images`` through libdff's C API (dff_runtime_process_detections) on OpenVINO, f32, one thread."""
    if not LIBRARY.is_file():
        pytest.fail(f"the C++ runtime is not built ({LIBRARY} is missing): run `bash cpp/ci.sh` (or `make cpp`) first")
    lib = ctypes.CDLL(str(LIBRARY))
    lib.dff_last_error.restype = ctypes.c_char_p
    lib.dff_runtime_process_detections.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.POINTER(CDetection),
        ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double),
    ]

    def call(status: int) -> None:
        assert status == 0, lib.dff_last_error().decode()

    backend, runtime, most = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_int()
    options = (ctypes.c_char_p * 2)(b"threads=1", b"precision=f32")
    call(lib.dff_backend_open(b"openvino", str(export).encode(), options, ctypes.c_size_t(2), ctypes.byref(backend)))
    try:
        call(lib.dff_backend_max_detections(backend, ctypes.byref(most)))
        assert most.value == MAX_DETECTIONS
        call(lib.dff_runtime_create(backend, interval, ctypes.byref(runtime)))
        found, keys = [], []
        buffer = (CDetection * most.value)()
        count, key = ctypes.c_size_t(), ctypes.c_int()
        for image in images:
            image = np.ascontiguousarray(image)
            call(lib.dff_runtime_process_detections(
                runtime, image.ctypes.data, image.shape[0], image.shape[1], image.strides[0], buffer, most.value,
                ctypes.byref(count), ctypes.byref(key), None,
            ))
            rows = buffer[: count.value]
            found.append(Detections(
                boxes=np.array([[d.x1, d.y1, d.x2, d.y2] for d in rows], np.float32).reshape(-1, 4),
                scores=np.array([d.score for d in rows], np.float32),
                classes=np.array([d.class_id for d in rows], np.int32),
            ))
            keys.append(bool(key.value))
        return found, keys
    finally:
        lib.dff_runtime_destroy(runtime)
        lib.dff_backend_close(backend)


def python_detections(export: Path, images: list[np.ndarray], interval: int) -> tuple[list[Detections], list[bool]]:
    with open_backend("openvino", model=export, threads=1) as engine:
        runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(interval))
        results = [runtime(image) for image in images]
    return [r.detections for r in results], [r.key for r in results]


def vtest_frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """The first ``count`` frames of vtest.avi (people walking), shrunk to ``size`` (H, W)."""
    capture = cv2.VideoCapture(str(DATA / "videos" / "vtest.avi"))
    frames = [cv2.resize(capture.read()[1], size[::-1], interpolation=cv2.INTER_AREA) for _ in range(count)]
    capture.release()
    return frames


@pytest.fixture(scope="module")
def detection_export(tmp_path_factory) -> Path:
    """A tiny R-FCN with non-degenerate scores whose F moves features, so that non-key frames have boxes of their own."""
    root = tmp_path_factory.mktemp("cpp_detection")
    out = root / "export"
    export_checkpoint(make_detector(root, flow_std=0.05), out, ExportOptions(max_size=(256, 256), max_detections=MAX_DETECTIONS))
    return out


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cpp")
    return make_export(make_checkpoint(root / "tiny.safetensors"), root / "export")


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cpp_demo") / "export"
    export_checkpoint(DEMO_MODEL, out, ExportOptions())
    return out


def test_labels_equal_python_on_camvid(tiny_export, tmp_path):
    """Real CamVid frames at 120x160: not an allowed size, so both runtimes resize to 128x160 and back."""
    files = sorted((DATA / "camvid_0016E5" / "images").glob("*.jpg"))[:10]
    assert files, "CamVid frames are expected in ../shared/data"
    images = [cv2.resize(cv2.imread(str(f)), (160, 120), interpolation=cv2.INTER_AREA) for f in files]
    check_parity(tiny_export, images, tmp_path, interval=4)


def test_labels_equal_python_on_the_demo_export(demo_export, tmp_path):
    """The shipped demo model on the real ImageNet VID clip (720p shrunk to 180x320, resized to 176x320 inside)."""
    files = sorted((DATA / "imagenet_vid_val_00007010").glob("*.JPEG"))[:8]
    assert files, "the ImageNet VID clip is expected in ../shared/data"
    images = [cv2.resize(cv2.imread(str(f)), (320, 180), interpolation=cv2.INTER_AREA) for f in files]
    check_parity(demo_export, images, tmp_path, interval=3)


def test_errors_read_as_the_python_runtime_words_them(tiny_export, tmp_path):
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for file in tiny_export.iterdir():
        (tampered / file.name).write_bytes(file.read_bytes())
    data = bytearray((tampered / "flow.onnx").read_bytes())
    data[200] ^= 0xFF
    (tampered / "flow.onnx").write_bytes(bytes(data))
    frames = tmp_path / "frames"
    write_frames(frames, [np.zeros((64, 64, 3), np.uint8)])
    for export in (tampered, tmp_path / "missing"):
        with pytest.raises(ExportError) as python:
            load_manifest(export)
        result = subprocess.run([str(app()), str(export), str(frames)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.strip() == f"dff_video: error: {python.value}"


def test_example_app_on_a_video(tiny_export, tmp_path):
    """dff_video decodes a real clip itself and writes one label PNG per frame, the overlay video and the summary."""
    clip = small_clip(tmp_path / "clip.avi", 7)
    out = tmp_path / "out"
    command = [str(app()), str(tiny_export), str(clip), "-l", "3", "--labels-dir", str(out / "labels"),
               "--overlay", str(out / "overlay.mp4"), "--summary", str(out / "summary.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "7 frames (3 key, l = 3)" in result.stdout
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{i:06d}.png" for i in range(7)]
    assert cv2.imread(str(out / "labels" / "000000.png"), cv2.IMREAD_UNCHANGED).shape == (120, 160)
    assert len(decode_all(out / "overlay.mp4")) == 7
    summary = json.loads((out / "summary.json").read_text())
    assert [f["key"] for f in summary["per_frame"]] == [True, False, False, True, False, False, True]
    assert summary["key"]["feature_ms"] > 0 and summary["non_key"]["flow_ms"] > 0 and summary["non_key"]["feature_ms"] == 0


def test_example_app_stops_cleanly_on_sigterm(tiny_export, tmp_path):
    """SIGTERM mid-run: exit 143, the unfinished overlay removed, the label PNGs already written kept, no temp files."""
    frames = tmp_path / "frames"
    write_frames(frames, [np.full((256, 320, 3), i % 256, np.uint8) for i in range(400)])
    out = tmp_path / "out"
    command = [str(app()), str(tiny_export), str(frames), "-l", "2", "--labels-dir", str(out / "labels"),
               "--overlay", str(out / "overlay.mp4")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "labels" / "000002.png").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "interrupted after" in stderr
    written = sorted(p.name for p in (out / "labels").iterdir())
    assert 3 <= len(written) < 400 and all(not name.startswith(".") for name in written)
    assert sorted(p.name for p in out.iterdir()) == ["labels"]  # no overlay, no temporary file


def test_detections_equal_python_on_real_frames(detection_export, tmp_path):
    """vtest.avi at 100x150: resized to 96x144 inside, the boxes scaled back on both axes; key and non-key frames."""
    decoded = write_frames(tmp_path / "frames", vtest_frames(8, (100, 150)))
    cpp, cpp_keys = c_api_detections(detection_export, decoded, interval=3)
    python, python_keys = python_detections(detection_export, decoded, interval=3)
    assert cpp_keys == python_keys == [i % 3 == 0 for i in range(8)]
    for index, (c, p) in enumerate(zip(cpp, python, strict=True)):
        assert len(c) == len(p) > 0, f"frame {index}: {len(c)} C++ detections, {len(p)} Python"
        assert np.array_equal(c.classes, p.classes), f"frame {index}: classes differ"
        np.testing.assert_allclose(c.boxes, p.boxes, rtol=0, atol=BOX_TOLERANCE, err_msg=f"frame {index}: boxes")
        np.testing.assert_allclose(c.scores, p.scores, rtol=0, atol=SCORE_TOLERANCE, err_msg=f"frame {index}: scores")
    # The detector finds more than the export keeps: both runtimes give the same best MAX_DETECTIONS.
    assert all(len(p) == MAX_DETECTIONS for p in python)
    # The non-key frames ran F and W: their boxes are their own, not a copy of the key frame's.
    assert any(not np.array_equal(python[i].boxes, python[i - i % 3].boxes) for i in range(8) if i % 3)


def test_example_app_writes_detections_as_dff_run_does(detection_export, tmp_path):
    """dff_video --detections against `dff run --detections` on the same PNG frames: the same JSON lines (both round
    boxes to 0.01 pixel and scores to 1e-5), and an overlay video with the boxes drawn."""
    frames = tmp_path / "frames"
    write_frames(frames, vtest_frames(7, (120, 160)))
    cpp_lines, python_lines, overlay = tmp_path / "cpp.jsonl", tmp_path / "python.jsonl", tmp_path / "boxes.mp4"
    command = [str(app()), str(detection_export), str(frames), "-l", "3", "-O", "threads=1", "--detections",
               str(cpp_lines), "--overlay", str(overlay), "--summary", str(tmp_path / "summary.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    command = ["-m", "dff.cli", "run", str(detection_export), str(frames), "--backend", "openvino", "-O", "threads=1",
               "-l", "3", "--detections", str(python_lines), "--no-progress"]
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    cpp = [json.loads(line) for line in cpp_lines.read_text().splitlines()]
    python = [json.loads(line) for line in python_lines.read_text().splitlines()]
    assert len(cpp) == len(python) == 7
    for c, p in zip(cpp, python, strict=True):
        assert list(c) == list(p) == ["frame", "key", "boxes", "scores", "classes"]
        assert (c["frame"], c["key"], c["classes"]) == (p["frame"], p["key"], p["classes"])
        # One rounding step (0.01, 1e-5) apart at most, where the unrounded values straddle a rounding boundary.
        np.testing.assert_allclose(c["boxes"], p["boxes"], rtol=0, atol=0.01 + BOX_TOLERANCE)
        np.testing.assert_allclose(c["scores"], p["scores"], rtol=0, atol=1e-5 + SCORE_TOLERANCE)
    assert len(decode_all(overlay)) == 7
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [f["detections"] for f in summary["per_frame"]] == [len(c["scores"]) for c in cpp]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boxes.mp4", "cpp.jsonl", "frames", "python.jsonl", "summary.json"]


def test_example_app_refuses_the_other_tasks_outputs(detection_export, tiny_export, tmp_path):
    """Labels of a detector, boxes of a segmenter: one line naming the fix, exit 1, nothing written."""
    frames = tmp_path / "frames"
    write_frames(frames, vtest_frames(2, (120, 160)))
    cases = (
        (detection_export, "--labels-dir", tmp_path / "labels",
         f"dff_video: error: {detection_export} is a detection export: it gives boxes, not per-pixel labels for "
         "--labels-dir; use --detections FILE (and --overlay for the overlay)"),
        (tiny_export, "--detections", tmp_path / "boxes.jsonl",
         f"dff_video: error: {tiny_export} is a segmentation export: it gives per-pixel labels, not boxes for "
         "--detections; use --labels-dir, or export a detection checkpoint (`dff init --task detection`)"),
    )
    for export, flag, target, message in cases:
        result = subprocess.run([str(app()), str(export), str(frames), flag, str(target)], capture_output=True, text=True,
                                timeout=60)
        assert (result.returncode, result.stderr.strip()) == (1, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_example_app_drops_unfinished_detections_on_sigterm(detection_export, tmp_path):
    """SIGTERM while the detections file fills: exit 143, neither it nor its temporary file left behind."""
    frames = tmp_path / "frames"
    write_frames(frames, [np.full((128, 160, 3), i % 256, np.uint8) for i in range(400)])
    out = tmp_path / "out"
    out.mkdir()
    command = [str(app()), str(detection_export), str(frames), "-l", "2", "--detections", str(out / "boxes.jsonl")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in out.iterdir()):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "interrupted after" in stderr
    assert list(out.iterdir()) == []


def test_zero_detections(tmp_path):
    """A detector whose background wins everywhere: no boxes through the C API, and empty lists in the JSON lines."""
    import torch

    from dff.checkpoint import load_checkpoint, save_checkpoint

    model, config = load_checkpoint(make_detector(tmp_path))
    with torch.no_grad():
        model.task_net.rfcn_classes.bias[0] = 100.0
    export = tmp_path / "export"
    export_checkpoint(save_checkpoint(tmp_path / "zero.safetensors", model, config), export,
                      ExportOptions(max_size=(256, 256), max_detections=MAX_DETECTIONS))
    images = write_frames(tmp_path / "frames", vtest_frames(3, (120, 160)))
    found, keys = c_api_detections(export, images, interval=2)
    assert [len(d) for d in found] == [0, 0, 0] and keys == [True, False, True]
    lines = tmp_path / "boxes.jsonl"
    result = subprocess.run([str(app()), str(export), str(tmp_path / "frames"), "-l", "2", "--detections", str(lines),
                             "--overlay", str(tmp_path / "boxes.mp4")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert records == [{"frame": i, "key": i % 2 == 0, "boxes": [], "scores": [], "classes": []} for i in range(3)]
    assert len(decode_all(tmp_path / "boxes.mp4")) == 3
