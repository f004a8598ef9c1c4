"""Issue 11, items 9, 10, 13, 15, 16: messages that say the real problem, and checks that check something."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dff.cli import main

FRAME_SIZE = (64, 80)


def dff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real CLI in this process: (exit status, stdout, stderr); a traceback would end the test itself."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def write_frames(folder: Path, count: int, size: tuple[int, int] = FRAME_SIZE) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        cv2.imwrite(str(folder / f"{index}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ckpt/`` as `dff init --out ckpt/` writes it, its export ``export/``, and a folder of 4 frames."""
    root = tmp_path_factory.mktemp("messages")
    assert main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "3", "--out", f"{root / 'ckpt'}/"]) == 0
    assert main(["export", str(root / "ckpt"), "--out", str(root / "export"), "--min-size", "64", "--max-size", "128"]) == 0
    write_frames(root / "frames", 4)
    return root


# Item 9: a directory given as a checkpoint, and the export/checkpoint mix-ups.


def test_a_checkpoint_folder_is_read_wherever_a_checkpoint_is(workspace: Path, capsys, tmp_path: Path) -> None:
    from dff.checkpoint import load_checkpoint

    ckpt = workspace / "ckpt"
    assert (ckpt / "model.safetensors").is_file()
    assert load_checkpoint(ckpt)[1].num_classes == 3  # dff eval and training read through load/read_checkpoint
    status, out, _ = dff(capsys, "export", ckpt, "--out", tmp_path / "e", "--min-size", "64", "--max-size", "128")
    assert status == 0 and (tmp_path / "e" / "manifest.json").is_file()
    status, out, _ = dff(capsys, "check", workspace / "export", "--checkpoint", ckpt, "--runtimes", "onnxruntime")
    assert status == 0 and "within tolerance" in out
    status, out, _ = dff(capsys, "run", ckpt, workspace / "frames", "--backend", "torch", "-l", "2", "--no-progress")
    assert status == 0 and "frames" in out


def test_an_export_given_to_the_torch_backend_says_it_is_an_export(workspace: Path, capsys) -> None:
    status, _, err = dff(capsys, "run", workspace / "export", workspace / "frames", "--backend", "torch", "--no-progress")
    assert status == 2
    assert "is a dff export" in err and "not a checkpoint" in err and "--backend onnxruntime" in err
    assert "does not exist" not in err


def test_a_checkpoint_given_to_the_default_backend_suggests_a_new_export_folder(workspace: Path, capsys) -> None:
    for given in (workspace / "ckpt", workspace / "ckpt" / "model.safetensors"):
        status, _, err = dff(capsys, "run", given, workspace / "frames", "--no-progress")
        assert status == 2 and "is a checkpoint, not an export directory" in err
        suggested = Path(err.split("--out ")[1].split("`")[0])
        assert suggested == workspace / "ckpt-export" and not suggested.exists()
        assert f"--out {given}`" not in err


def test_the_suggested_export_folder_is_never_an_existing_one(tmp_path: Path) -> None:
    from dff.checkpoint_path import export_dir_for

    checkpoint = tmp_path / "runs" / "best.safetensors"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"x")
    assert export_dir_for(checkpoint) == tmp_path / "runs" / "best-export"
    (tmp_path / "runs" / "best-export").mkdir()
    assert export_dir_for(checkpoint) == tmp_path / "runs" / "best-export-2"


def test_a_folder_without_model_safetensors_says_so(tmp_path: Path, capsys) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "step-100.safetensors").write_bytes(b"")
    status, _, err = dff(capsys, "export", tmp_path / "ckpt", "--out", tmp_path / "e")
    assert status == 2 and "has no model.safetensors (it holds step-100.safetensors: give one of them)" in err


def test_out_an_existing_directory_says_it_is_a_directory(workspace: Path, capsys, tmp_path: Path) -> None:
    status, _, err = dff(capsys, "run", workspace / "export", workspace / "frames", "--out", tmp_path, "--no-progress")
    assert status == 2 and "is a directory" in err and "no such encoder" not in err


def test_one_pixel_frames_give_a_padded_video_not_an_encoder_error(workspace: Path, capsys, tmp_path: Path) -> None:
    frames = write_frames(tmp_path / "tiny", 3, size=(1, 1))
    status, out, err = dff(capsys, "run", workspace / "export", frames, "--out", tmp_path / "o.mp4", "--no-progress")
    assert status == 0 and "no such encoder" not in err
    assert "frames of 1x1 padded" in out + err
    video, shapes = cv2.VideoCapture(str(tmp_path / "o.mp4")), []
    while (frame := video.read()[1]) is not None:
        shapes.append(frame.shape)
    assert shapes == [(2, 2, 3)] * 3


@pytest.mark.parametrize(
    ("edit", "missing"),
    [
        (lambda manifest: {}, "format, exporter_version, model, opset, dtype, feature_stride, class_names, preprocessing, "
         "sizes, models"),
        (lambda manifest: {**manifest, "models": {**manifest["models"], "flow": {"file": "flow.onnx"}}},
         "models.flow.sha256, models.flow.inputs, models.flow.outputs"),
    ],
)
def test_a_manifest_with_missing_fields_names_them(workspace: Path, capsys, tmp_path: Path, edit, missing) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((workspace / "export" / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(edit(manifest)))
    status, _, err = dff(capsys, "run", broken, workspace / "frames", "--no-progress")
    assert status == 2
    assert f"lacks the field(s) {missing}:" in err and "is not a complete dff export" in err
    assert "__init__" not in err and "positional argument" not in err


# Item 10: a corrupt ONNX file whose SHA-256 matches the manifest.


def corrupt_with_matching_hash(export: Path, out: Path, role: str) -> Path:
    """A copy of ``export`` whose ``role`` model is truncated to half, with the manifest's hash updated to match."""
    import hashlib
    import shutil

    shutil.copytree(export, out)
    path = out / f"{role}.onnx"
    data = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(data)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["models"][role]["sha256"] = hashlib.sha256(data).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_corrupt_model_with_a_matching_hash_is_one_line(workspace: Path, capsys, tmp_path: Path, backend: str) -> None:
    export = corrupt_with_matching_hash(workspace / "export", tmp_path / "export", "flow")
    status, _, err = dff(capsys, "run", export, workspace / "frames", "--backend", backend, "--no-progress")
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert f"{export / 'flow.onnx'} (flow model) is not a valid ONNX model" in err and "export again" in err
    assert "InvalidProtobuf" not in err and "src/" not in err


def test_check_reports_the_same_corrupt_model(workspace: Path, capsys, tmp_path: Path) -> None:
    export = corrupt_with_matching_hash(workspace / "export", tmp_path / "export", "task")
    status, _, err = dff(capsys, "check", export)
    assert status == 2 and f"{export / 'task.onnx'} (task model) is not a valid ONNX model" in err


# Item 13: frames the runtime cannot take, and key-frame intervals of any integer type.


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), "the image is empty (0x0 pixels)"),
        (np.zeros((64, 0, 3), np.uint8), "the image is empty (64x0 pixels)"),
        (np.zeros((64, 64, 3), np.float32), "expected a uint8 H×W×3 BGR image, got float32 array of shape (64, 64, 3)"),
        (np.zeros((64, 64, 4), np.uint8), "expected a uint8 H×W×3 BGR image, got uint8 array of shape (64, 64, 4)"),
        (np.zeros((64, 64), np.uint8), "expected a uint8 H×W×3 BGR image, got uint8 array of shape (64, 64)"),
    ],
)
def test_a_frame_the_runtime_cannot_take_is_a_clear_error(workspace: Path, image: np.ndarray, message: str) -> None:
    from dff.errors import VideoError
    from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend

    with open_backend("onnxruntime", model=workspace / "export") as backend:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(2))
        with pytest.raises(VideoError) as raised:
            runtime(image)
        assert str(raised.value).startswith(f"frame 0: {message}")
        # The stream is unharmed: the next good frame is its first.
        assert runtime(np.zeros((64, 80, 3), np.uint8)).labels.shape == (64, 80) and runtime.frames == 1


def test_fixed_interval_takes_any_integer_but_not_a_bool_or_less_than_one() -> None:
    from dff.runtime import FixedInterval

    for value in (np.int64(5), np.int32(5), np.uint8(5), 5):
        scheduler = FixedInterval(value)
        assert scheduler.interval == 5 and type(scheduler.interval) is int
    for value in (True, False, 0, -3, np.int64(0), 2.0, "5", None):
        with pytest.raises(ValueError, match="key-frame interval must be an integer >= 1"):
            FixedInterval(value)


# Item 17: the torch backend's labels through max(dim).indices, identical to argmax.


def test_class_ids_equal_argmax_even_on_ties() -> None:
    import torch

    from dff.models.task import class_ids

    generator = torch.Generator().manual_seed(0)
    # Small integers: most pixels have tied classes, where the first maximum must win, as in argmax.
    probs = torch.randint(0, 3, (2, 12, 48, 64), generator=generator).float()
    assert torch.equal(class_ids(probs), probs.argmax(dim=1))
    assert torch.equal(class_ids(probs[0], dim=0), probs[0].argmax(dim=0))
    smooth = torch.rand((1, 5, 33, 17), generator=generator)
    assert torch.equal(class_ids(smooth), smooth.argmax(dim=1))


# Item 16: dff check's flow comparisons on a fresh checkpoint compare something.


def double_the_flow(export: Path, out: Path) -> Path:
    """A copy of ``export`` whose flow.onnx outputs 2·M (invisible on a fresh checkpoint's M = 0), hash updated."""
    import hashlib
    import shutil

    import onnx
    from onnx import helper, numpy_helper

    shutil.copytree(export, out)
    model = onnx.load(out / "flow.onnx")
    at, producer = next((i, node) for i, node in enumerate(model.graph.node) if "flow" in node.output)
    producer.output[list(producer.output).index("flow")] = "flow_before_doubling"
    dtype = np.float16 if json.loads((out / "manifest.json").read_text())["dtype"] == "float16" else np.float32
    model.graph.initializer.append(numpy_helper.from_array(np.array(2, dtype), "two"))
    # Right after its producer: later nodes (the flow statistics) read "flow" too, and nodes must stay sorted.
    model.graph.node.insert(at + 1, helper.make_node("Mul", ["flow_before_doubling", "two"], ["flow"], name="broken_doubling"))
    onnx.save(model, out / "flow.onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["models"]["flow"]["sha256"] = hashlib.sha256((out / "flow.onnx").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_a_fresh_checkpoint_is_checked_on_perturbed_last_layers(workspace: Path) -> None:
    from dff.export.check import check_export

    report = check_export(workspace / "export", checkpoint=workspace / "ckpt", runtimes=("onnxruntime", "opencv"))
    assert report.ok
    flow = [c for c in report.comparisons if c.model == "flow"]
    exported, perturbed = [c for c in flow if "perturbed" not in c.inputs], [c for c in flow if "perturbed" in c.inputs]
    # As exported, F gives M = 0 and S = 1: every such comparison is vacuous and is not called a pass.
    assert exported and all(c.vacuous and c.status == "vacuous" for c in exported)
    assert perturbed and not any(c.vacuous for c in perturbed) and all(c.ok for c in perturbed)
    text = "\n".join(report.lines())
    assert "last layers (flow_net.scale.weight, flow_net.decoder.3.predict_flow.weight) drawn at random" in text
    assert f"{len(report.comparisons) - len(exported)} of {len(report.comparisons)} comparisons within tolerance; " \
        f"{len(exported)} vacuous" in text


def test_a_broken_flow_export_fails_the_check(workspace: Path, capsys, tmp_path: Path) -> None:
    broken = double_the_flow(workspace / "export", tmp_path / "broken")
    status, out, _ = dff(capsys, "check", broken, "--checkpoint", workspace / "ckpt", "--runtimes", "onnxruntime")
    assert status == 1
    rows = [line.split() for line in out.splitlines() if line.startswith("flow ")]
    assert any(row[2] == "flow" and row[-1] == "FAIL" for row in rows)
    assert any(row[2] == "scale" and row[-1] == "ok" for row in rows)  # the scale field was not broken


def test_outputs_compared_only_on_constants_fail_the_report() -> None:
    from dff.export.check import CheckReport, Comparison

    report = CheckReport(
        reference="test",
        structure=(),
        comparisons=(
            Comparison("flow", "opencv", "random", "flow", 0.0, 0.0, 1e-4, vacuous=True),
            Comparison("task", "opencv", "random", "probs", 1e-7, 1e-7, 1e-4),
        ),
    )
    assert not report.ok and report.unchecked() == ["flow.flow"]
    assert "NOT CHECKED: flow.flow" in "\n".join(report.lines())


def test_without_a_checkpoint_the_perturbed_flow_is_checked_against_onnx_runtime(workspace: Path) -> None:
    from dff.export.check import check_export

    report = check_export(workspace / "export", runtimes=("onnxruntime", "opencv"))
    perturbed = [c for c in report.comparisons if c.model == "flow" and "perturbed" in c.inputs]
    # ONNX Runtime is the reference, so OpenCV is what is compared, on M and S that vary; and the graph split at conv1
    # as the CPU backends run it (dff.runtime.key_flow_half) against the perturbed file.
    assert report.ok and perturbed and {c.runtime for c in perturbed} == {"opencv", "key-half split (onnxruntime)"}
    assert not any(c.vacuous for c in perturbed)
