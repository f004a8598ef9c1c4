"""`dff export` and `dff check` on tiny checkpoints from `dff init`: files, manifest, both dtypes, atomicity, errors.

One module so that the exported directories (a few seconds to make) are shared by the export and the check tests.
"""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dff.checkpoint import load_checkpoint, save_checkpoint
from dff.cli import main
from dff.config import ModelConfig
from dff.errors import CheckpointError, ConfigError, ExportError, InputSizeError
from dff.export import ExportOptions, export_checkpoint
from dff.export import exporter
from dff.export.check import TOLERANCES, check_export
from dff.manifest import load_manifest, sha256_file, write_manifest
from dff.models import build_model

FRAMES = "imagenet_vid_val_00007010"
FRAME_SIZE = (64, 112)  # the clip's 720×1280 at a tenth, to the nearest multiple of 16


@pytest.fixture(scope="module")
def init_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("init") / "tiny.safetensors"
    assert main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "5", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def checkpoint(init_checkpoint, tmp_path_factory) -> Path:
    """The `dff init` checkpoint with its zero-initialised layers made random (M = 0 and S = 1 would make the flow
    graph's outputs constant) and BatchNorm given statistics to fold, as after training."""
    model, config = load_checkpoint(init_checkpoint)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # Flows of about ±2 feature cells, S within 1 ± 0.4, and confident class scores.
        for layer, std in ((model.flow_net.decoder[-1].predict_flow, 0.15), (model.flow_net.scale, 0.05), (model.task_net.score, 0.3)):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
    return save_checkpoint(tmp_path_factory.mktemp("trained") / "tiny.safetensors", model, config)


@pytest.fixture(scope="module")
def exports(checkpoint, tmp_path_factory) -> dict[str, Path]:
    """Dynamic-size exports of ``checkpoint`` in both dtypes, by dtype."""
    root = tmp_path_factory.mktemp("exports")
    for dtype in ("float32", "float16"):
        export_checkpoint(checkpoint, root / dtype, ExportOptions(dtype=dtype))
    return {dtype: root / dtype for dtype in ("float32", "float16")}


@pytest.fixture(scope="module")
def frames(shared_data) -> Path:
    return shared_data / FRAMES


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


class TestOptions:
    def test_defaults_are_dynamic_64_to_2048(self):
        sizes = ExportOptions().sizes()
        assert (sizes.min_height, sizes.min_width, sizes.max_height, sizes.max_width, sizes.multiple) == (64, 64, 2048, 2048, 16)

    @pytest.mark.parametrize("height, width", [(100, 96), (48, 96), (64, 8)])
    def test_sizes_the_networks_cannot_take_are_refused(self, height, width):
        with pytest.raises(InputSizeError, match=f"{height}x{width}.*multiples of 16 and at least 64; resize to"):
            ExportOptions(height=height, width=width)

    def test_inconsistent_size_options_are_refused(self):
        with pytest.raises(ConfigError, match="both --height and --width"):
            ExportOptions(height=64)
        with pytest.raises(ConfigError, match="one or the other"):
            ExportOptions(height=64, width=64, max_size=(128, 128))
        with pytest.raises(InputSizeError, match="min_size 256x64 exceeds max_size 128x128"):
            ExportOptions(min_size=(256, 64), max_size=(128, 128))
        with pytest.raises(InputSizeError, match="max_size: frame size 100x128"):
            ExportOptions(max_size=(100, 128))

    def test_dtype_must_be_float32_or_float16(self):
        with pytest.raises(ConfigError, match="dtype must be one of"):
            ExportOptions(dtype="bfloat16")


class TestExport:
    @pytest.mark.parametrize("dtype", ["float32", "float16"])
    def test_manifest_describes_the_files(self, exports, checkpoint, dtype):
        manifest = load_manifest(exports[dtype])  # verifies every file's SHA-256
        assert (manifest.dtype, manifest.opset, manifest.feature_stride) == (dtype, 17, 16)
        assert manifest.checkpoint_sha256 == sha256_file(checkpoint)
        assert manifest.class_names == tuple(f"class{i}" for i in range(5))
        assert sorted(p.name for p in exports[dtype].iterdir()) == sorted(
            ["manifest.json"] + [entry.file for entry in manifest.all_files().values()]
        )
        io = {role: {s.name: (s.dtype, s.shape) for s in entry.inputs + entry.outputs} for role, entry in manifest.files().items()}
        assert io["feature"] == {"frame": ("uint8", ("N", "H", "W", 3)), "feat": (dtype, ("N", 32, "H/16", "W/16"))}
        assert io["flow"]["key_frame"] == io["flow"]["frame"] == ("uint8", ("N", "H", "W", 3))
        assert io["flow"]["flow"] == (dtype, ("N", 2, "H/16", "W/16"))
        assert io["task"]["labels"] == ("uint8", ("N", "H", "W"))
        assert io["task"]["probs"] == io["task"]["scores"] == (dtype, ("N", 5, "H/16", "W/16"))
        assert io["warp"] == io["warp_plugin"]

    def test_float16_files_hold_float16_weights(self, exports):
        for role in ("feature", "flow", "task"):
            model = onnx.load(exports["float16"] / f"{role}.onnx")
            kernels = [i for i in model.graph.initializer if len(i.dims) == 4]
            # The networks' kernels are float16; F's frame halving (one input channel) normalises in float32, as the
            # preprocessing always does (its 1 / std are no float16 numbers).
            weights = [i for i in kernels if i.dims[1] != 1]
            assert weights and {i.data_type for i in weights} == {onnx.TensorProto.FLOAT16}, role
            assert {i.data_type for i in kernels if i.dims[1] == 1} <= {onnx.TensorProto.FLOAT}, role

    def test_runs_at_every_allowed_size_and_batch(self, exports):
        session = ort.InferenceSession(str(exports["float32"] / "task.onnx"), providers=["CPUExecutionProvider"])
        for n, h, w in ((1, 4, 4), (3, 5, 9), (2, 12, 7)):
            feat = np.random.default_rng(0).random((n, 32, h, w), dtype=np.float32)
            scores, probs, labels = session.run(None, {"feat": feat})
            assert scores.shape == probs.shape == (n, 5, h, w) and labels.shape == (n, 16 * h, 16 * w)
            assert labels.dtype == np.uint8 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    def test_fixed_size_export_from_the_cli(self, init_checkpoint, tmp_path, capsys):
        out = tmp_path / "fixed"
        assert main(["export", str(init_checkpoint), "--out", str(out), "--height", "64", "--width", "96", "--opset", "16"]) == 0
        assert "frames 64x96..64x96" in capsys.readouterr().out
        manifest = load_manifest(out)
        assert manifest.opset == 16 and manifest.models.feature.inputs[0].shape == ("N", 64, 96, 3)
        assert manifest.models.task.outputs[2].shape == ("N", 64, 96)
        with pytest.raises(InputSizeError, match="80x96"):
            manifest.sizes.check(80, 96)
        session = ort.InferenceSession(str(out / "feature.onnx"), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape == ["N", 64, 96, 3]
        assert session.run(None, {"frame": np.zeros((2, 64, 96, 3), np.uint8)})[0].shape == (2, 32, 4, 6)

    def test_polygraphy_runs_the_exported_files(self, exports):
        polygraphy = Path(sys.executable).parent / "polygraphy"
        if not polygraphy.is_file():
            pytest.skip(f"polygraphy's command is not installed beside {sys.executable}")
        for model, shapes in (("feature.onnx", "frame:[2,64,96,3]"), ("flow.onnx", "key_frame:[1,64,96,3] frame:[1,64,96,3]")):
            result = subprocess.run(
                [str(polygraphy), "run", str(exports["float16"] / model), "--onnxrt", "--input-shapes", *shapes.split()],
                capture_output=True, text=True, timeout=120,
            )
            assert result.returncode == 0 and "PASSED" in result.stdout, result.stdout + result.stderr


class TestAtomicity:
    def test_a_failed_export_leaves_nothing(self, checkpoint, tmp_path, monkeypatch):
        def fail(*args, **kwargs):
            raise RuntimeError("disk full while writing the manifest")

        monkeypatch.setattr(exporter, "write_manifest", fail)
        with pytest.raises(RuntimeError, match="disk full"):
            export_checkpoint(checkpoint, tmp_path / "out", ExportOptions())
        assert list(tmp_path.iterdir()) == []

    def test_a_failed_export_keeps_the_previous_one_and_a_new_one_replaces_it(self, checkpoint, tmp_path, monkeypatch):
        out = tmp_path / "out"
        export_checkpoint(checkpoint, out, ExportOptions(opset=17))
        before = {p.name: sha256_file(p) for p in out.iterdir()}

        def fail(*args, **kwargs):
            raise RuntimeError("interrupted while exporting the task network")

        with monkeypatch.context() as patch:
            patch.setattr(exporter, "warp_model", fail)
            with pytest.raises(RuntimeError, match="interrupted"):
                export_checkpoint(checkpoint, out, ExportOptions(opset=18))
        assert {p.name: sha256_file(p) for p in out.iterdir()} == before
        assert _leftovers(tmp_path) == []
        export_checkpoint(checkpoint, out, ExportOptions(opset=18))
        assert load_manifest(out).opset == 18 and _leftovers(tmp_path) == []
        assert oct(os.stat(out).st_mode & 0o777) == "0o755"

    def test_a_directory_that_is_not_an_export_is_not_replaced(self, checkpoint, tmp_path):
        (tmp_path / "notes.txt").write_text("mine")
        with pytest.raises(ExportError, match="not an earlier export, so nothing in it is replaced"):
            export_checkpoint(checkpoint, tmp_path, ExportOptions())
        assert (tmp_path / "notes.txt").read_text() == "mine"
        with pytest.raises(ExportError, match="is a file"):
            export_checkpoint(checkpoint, tmp_path / "notes.txt", ExportOptions())


class TestErrors:
    def test_missing_and_corrupt_checkpoints(self, checkpoint, tmp_path, capsys):
        with pytest.raises(CheckpointError, match="does not exist"):
            export_checkpoint(tmp_path / "missing.safetensors", tmp_path / "out", ExportOptions())
        corrupt = tmp_path / "corrupt.safetensors"
        corrupt.write_bytes(checkpoint.read_bytes()[:1000])
        assert main(["export", str(corrupt), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"dff export: error: checkpoint {corrupt} is not a readable safetensors file (truncated or corrupt?)")
        assert not (tmp_path / "out").exists()

    def test_more_classes_than_uint8_labels_hold(self, tmp_path):
        config = ModelConfig(feature="tiny", flow="tiny", num_classes=257)
        path = save_checkpoint(tmp_path / "wide.safetensors", build_model(config), config)
        with pytest.raises(ConfigError, match="at most 256 classes.*got 257"):
            export_checkpoint(path, tmp_path / "out")
        assert not (tmp_path / "out").exists()

    @pytest.mark.parametrize(
        "flags, message",
        [
            (["--opset", "20"], "opset must be between 16 and 19, got 20"),
            (["--opset", "13"], "GridSample needs opset 16"),
            (["--height", "100", "--width", "96"], "frame size 100x96 (HxW) is not allowed"),
            (["--min-size", "64x64", "--max-size", "32x32"], "max_size: frame size 32x32"),
        ],
    )
    def test_the_cli_prints_one_line_that_says_what_to_do(self, init_checkpoint, tmp_path, capsys, flags, message):
        assert main(["export", str(init_checkpoint), "--out", str(tmp_path / "out"), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dff export: error:") and message in err and err.count("\n") == 1
        assert list(tmp_path.iterdir()) == []


class TestCheck:
    @pytest.mark.parametrize("dtype", ["float32", "float16"])
    def test_every_model_agrees_in_three_runtimes_with_pytorch(self, exports, checkpoint, frames, dtype):
        report = check_export(exports[dtype], checkpoint=checkpoint, frames=frames, frame_size=FRAME_SIZE)
        print("\n".join(report.lines()))
        assert report.ok
        covered = {(c.model, c.runtime.split()[0]) for c in report.comparisons}
        # The fused graphs against the stages composed, in ONNX Runtime; the host's labels from float32 probabilities.
        fused = {(m, r) for m in ("key_path", "propagate") for r in ("onnxruntime", *(("host",) if dtype == "float32" else ()))}
        stages_models = ("feature", "flow", "task", "warp", "warp_plugin")
        stages = {(m, r) for m in stages_models for r in ("onnxruntime", "opencv", "reference")}
        # flow.onnx split at conv1 as the CPU backends run it, against the file (dff.runtime.key_flow_half).
        assert covered == stages | fused | {("flow", "key-half")}
        assert {c.output for c in report.comparisons if c.model == "propagate"} == {"scores", "probs", "labels", "flow_stats"}
        # The plugin file ran as it is in the reference evaluator, and with its node inlined in the others.
        assert {c.runtime for c in report.comparisons if c.model == "warp_plugin"} == {
            "reference", "onnxruntime (DFFWarp inlined)", "opencv (DFFWarp inlined)"
        }
        sets = {"random 2x64x64", "random 2x96x128", "frames 2x64x112"}
        assert {c.inputs for c in report.comparisons if c.runtime != "onnxruntime" or c.model in stages_models} == sets
        assert {c.inputs for c in report.comparisons if c.model == "propagate" and c.runtime == "onnxruntime"} == {
            f"{name}, against the stages composed" for name in sets
        }
        # Not vacuous: the perturbed checkpoint gives flows and errors that are not exactly zero.
        flow_errors = [c.max_abs for c in report.comparisons if c.model == "flow" and c.output == "flow"]
        assert max(flow_errors) > 0 and all(c.tolerance == TOLERANCES[dtype] for c in report.comparisons)

    def test_a_wrong_graph_is_caught(self, exports, checkpoint, tmp_path):
        # warp.onnx with align_corners=0: valid ONNX, subtly different numbers; manifest hashes updated to match.
        broken = tmp_path / "broken"
        broken.mkdir()
        for path in exports["float32"].iterdir():
            (broken / path.name).write_bytes(path.read_bytes())
        model = onnx.load(broken / "warp.onnx")
        grid_sample = next(n for n in model.graph.node if n.op_type == "GridSample")
        next(a for a in grid_sample.attribute if a.name == "align_corners").i = 0
        onnx.save(model, broken / "warp.onnx")
        manifest = load_manifest(broken, verify=False)
        with pytest.raises(ExportError, match="does not match the SHA-256"):
            check_export(broken)
        warp_entry = replace(manifest.models.warp, sha256=sha256_file(broken / "warp.onnx"))
        write_manifest(broken, replace(manifest, models=replace(manifest.models, warp=warp_entry)))
        report = check_export(broken, checkpoint=checkpoint, runtimes=("onnxruntime", "reference"))
        failed = {(c.model, c.runtime) for c in report.comparisons if not c.ok}
        # The inlined plugin graph is built from warp.onnx, so it fails with it; the NumPy DFFWarp does not; and
        # propagate.onnx, which holds the warp as exported, no longer computes what the separate files compose.
        assert failed == {
            ("warp", "onnxruntime"), ("warp", "reference"), ("warp_plugin", "onnxruntime (DFFWarp inlined)"), ("propagate", "onnxruntime")
        }
        assert main(["check", str(broken), "--runtimes", "onnxruntime"]) == 1

    def test_another_checkpoint_is_refused(self, exports, init_checkpoint):
        with pytest.raises(CheckpointError, match="not the one this export was made from"):
            check_export(exports["float32"], checkpoint=init_checkpoint)

    def test_cli_without_checkpoint_compares_with_onnxruntime(self, exports, capsys, tmp_path):
        assert main(["check", str(exports["float16"]), "--runtimes", "opencv"]) == 0
        out = capsys.readouterr().out
        assert "reference: onnxruntime" in out and "comparisons within tolerance" in out
        assert main(["check", str(tmp_path)]) == 2
        assert "has no manifest.json" in capsys.readouterr().err
        assert main(["check", str(exports["float16"]), "--runtimes", "tensorrt"]) == 2
        assert "unknown runtime(s) ['tensorrt']" in capsys.readouterr().err
