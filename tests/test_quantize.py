"""``dff quantize``: int8 Q/DQ exports of the shipped demo model, calibrated on real video, run by ONNX Runtime and
OpenVINO, checked against TensorRT's explicit-quantization rules and against the float export at the task level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from dff.benchmark.complexity import export_macs
from dff.cli import main
from dff.errors import ConfigError, ExportError
from dff.frame_halving_layers import frame_halving_layers
from dff.manifest import MANIFEST_NAME, load_manifest, sha256_file
from dff.quantize import QuantizeOptions, quantize_export
from dff.quantize.accuracy import check_quantized
from dff.quantize.calibration import calibration_set
from dff.quantize.tensorrt_rules import check_float_graph, check_qdq_nodes, check_tensorrt_rules
from dff.runtime.key_flow_half import split_key_half
from tests.conftest import SHARED_DATA

VIDEO = SHARED_DATA / "videos" / "vtest.avi"
SIZE = (128, 160)


@pytest.fixture(scope="module")
def int8_export(demo_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "export"
    quantize_export(demo_export, VIDEO, out, QuantizeOptions(frames=16, key_interval=4, size=SIZE))
    return out


def test_calibration_takes_the_runtimes_frames_and_key_current_pairs(demo_export: Path) -> None:
    manifest = load_manifest(demo_export)
    calibration = calibration_set(VIDEO, sizes=manifest.sizes, class_names=manifest.class_names, count=9, key_interval=4, size=SIZE)
    assert len(calibration.frames) == 9 and calibration.size == SIZE
    assert all(f.shape == (1, *SIZE, 3) and f.dtype == np.uint8 for f in calibration.frames)
    # Key frames 0, 4, 8: F sees (0, 1), (0, 2), (0, 3), (4, 5), (4, 6), (4, 7).
    frames = calibration.frames
    expected = [(frames[k], frames[i]) for k, i in ((0, 1), (0, 2), (0, 3), (4, 5), (4, 6), (4, 7))]
    assert len(calibration.pairs) == len(expected)
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(calibration.pairs, expected))
    assert not np.array_equal(frames[0], frames[1])  # real, moving video
    # Without --size the runtime resizes to the allowed size nearest the video's own 360x480.
    native = calibration_set(VIDEO, sizes=manifest.sizes, class_names=manifest.class_names, count=3, key_interval=2)
    assert native.size == manifest.sizes.nearest(360, 480)


def test_int8_export_is_complete_and_records_its_float_export(demo_export: Path, int8_export: Path) -> None:
    manifest = load_manifest(int8_export)  # verifies every file's SHA-256
    record = manifest.quantization
    assert record is not None and record.networks == ("feature", "flow")
    assert Path(record.float_export) == demo_export.resolve()
    assert record.float_manifest_sha256 == sha256_file(demo_export / MANIFEST_NAME)
    assert (record.calibration_frames, record.calibration_pairs, record.calibration_size) == (16, 12, SIZE)
    assert load_manifest(demo_export).quantization is None
    float_files = load_manifest(demo_export).files()
    for role, entry in manifest.files().items():
        assert (entry.inputs, entry.outputs) == (float_files[role].inputs, float_files[role].outputs)
        ops = {node.op_type for node in onnx.load(int8_export / entry.file).graph.node}
        if role in ("feature", "flow"):
            assert {"QuantizeLinear", "DequantizeLinear"} <= ops and entry.sha256 != float_files[role].sha256
        else:
            assert entry.sha256 == float_files[role].sha256  # warp, plugin and task copied unchanged
    assert not [p for p in int8_export.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_weights_are_per_channel_symmetric_int8(int8_export: Path) -> None:
    model = onnx.load(int8_export / "feature.onnx")
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants and constants[n.input[0]].ndim == 4]
    assert weights
    for node in weights:
        values, scale, zero = (constants[name] for name in node.input)
        assert values.dtype == np.int8 and scale.shape == (values.shape[0],) and not zero.any()
    activations = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert activations and all(constants[n.input[1]].ndim == 0 and not constants[n.input[2]].any() for n in activations)


def test_tensorrt_rules_pass_and_catch_violations(int8_export: Path, demo_export: Path) -> None:
    report = check_tensorrt_rules(int8_export)
    assert report.ok, report.violations
    assert any("GridSample kept float" in line for line in report.checked)
    assert any(line.startswith("feature.onnx: 30 Conv") for line in report.checked)
    # An asymmetric zero point is refused.
    model = onnx.load(int8_export / "feature.onnx")
    zero = next(i for i in model.graph.initializer if i.name.endswith("zero_point") and numpy_helper.to_array(i).ndim == 0)
    zero.CopyFrom(numpy_helper.from_array(np.array(3, np.int8), zero.name))
    assert any("zero point must be int8 zeros" in line for line in check_qdq_nodes(model, "feature.onnx"))
    # Q/DQ in the warp graph (on GridSample's input) are refused.
    int8_feature = onnx.load(int8_export / "feature.onnx")
    assert check_float_graph(onnx.load(demo_export / "warp.onnx"), "warp.onnx") == []
    assert check_float_graph(int8_feature, "warp.onnx")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_both_engines_run_it_within_task_tolerance(int8_export: Path, backend: str) -> None:
    report = check_quantized(int8_export, count=15, backends=(backend,))
    (row,) = report.rows
    assert row.agreement >= 0.95, report.lines()
    assert row.miou is not None and row.float_miou is not None and row.miou_delta >= -0.01, report.lines()
    assert report.ok


def test_int8_flow_graphs_keep_their_key_frame_input(int8_export: Path) -> None:
    # conv1 reads quantised activations and weights: the key-half split (dff.runtime.key_flow_half) does not apply.
    assert all(split_key_half(onnx.load(int8_export / f"{role}.onnx")) is None for role in ("flow", "propagate"))


def test_int8_export_counts_the_float_exports_macs(demo_export: Path, int8_export: Path) -> None:
    # Its weights are int8 constants dequantized in the graph; dff bench reads its FLOP r from these counts.
    int8, float32 = (export_macs(path, height=SIZE[0], width=SIZE[1]) for path in (int8_export, demo_export))
    assert (int8.feature, int8.flow, int8.task) == (float32.feature, float32.flow, float32.task) and int8.feature > 0
    assert frame_halving_layers(onnx.load(int8_export / "flow.onnx"))  # F's frame halving stayed float, not counted


def test_cli_bench_runs_an_int8_export(int8_export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(int8_export), "--frames", "6", "--repeats", "1", "--intervals", "1,3", "--warmup-frames", "1",
                 "--height", str(SIZE[0]), "--width", str(SIZE[1])]) == 0
    assert "r FLOPs (Eq. 6, O(F) / O(N_feat), from the ONNX graphs): 0.04" in capsys.readouterr().out


def test_real_frames_give_agreement_only(int8_export: Path) -> None:
    report = check_quantized(int8_export, frames=SHARED_DATA / "camvid_0016E5" / "images", count=6, backends=("onnxruntime",))
    (row,) = report.rows
    assert row.miou is None and row.miou_delta is None and 0.9 <= row.agreement <= 1.0


def test_cli_quantize_then_check(demo_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "int8"
    assert main(["quantize", str(demo_export), "--calibrate", str(VIDEO), "--out", str(out), "--frames", "8", "--size", "128x160"]) == 0
    assert "calibrated on 8 frames and 6 key/current pairs of 128x160" in capsys.readouterr().out
    assert main(["check", str(out), "--backends", "onnxruntime"]) == 0
    text = capsys.readouterr().out
    assert "tensorrt rules: warp.onnx: float, no Q/DQ" in text and "within task-level tolerance" in text
    # An impossible tolerance fails the check with exit status 1.
    assert main(["check", str(out), "--backends", "onnxruntime", "--min-agreement", "100.01"]) == 1
    # A non-empty --out is refused, in one line, and left as it was.
    assert main(["quantize", str(demo_export), "--calibrate", str(VIDEO), "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    # An int8 export is not quantized again.
    assert main(["quantize", str(out), "--calibrate", str(VIDEO), "--out", str(tmp_path / "again")]) == 2
    assert "already an int8 export" in capsys.readouterr().err


def test_moved_float_export_is_named(int8_export: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--float-export"):
        check_quantized(int8_export, float_export=tmp_path, backends=("onnxruntime",))


def test_failed_quantization_leaves_nothing(demo_export: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration method"):
        quantize_export(demo_export, VIDEO, tmp_path / "int8", QuantizeOptions(frames=4, size=SIZE, method="bogus"))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
