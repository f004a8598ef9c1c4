"""The C++ runtime (cpp/, built by cpp/ci.sh) against the Python runtime: same labels, same schedule, same errors.

Parity is checked on decoded images (PNG files written here from real frames), since video and JPEG decoders differ
between OpenCV builds: the C++ example app reads the PNGs, the Python runtime the same arrays. Against the Python
OpenVINO backend (f32, one thread) every pixel must be equal; against ONNX Runtime at least 99.9%.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import DATA, REPO, decode_all, make_checkpoint, make_export, small_clip

from dff.errors import ExportError
from dff.export import ExportOptions, export_checkpoint
from dff.manifest import load_manifest
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend

BUILD = Path(os.environ.get("DFF_CPP_BUILD", REPO / "cpp" / "build"))
APP = BUILD / "dff_video"
DEMO_MODEL = REPO / "dff" / "assets" / "demo_model.safetensors"
#: The issue's floor against ONNX Runtime (an argmax may flip a rare near-tie pixel between engines).
MIN_ORT_AGREEMENT = 0.999


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
