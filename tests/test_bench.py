"""``dff bench`` on a real tiny export in ONNX Runtime (and a checkpoint on the torch backend); MAC counting from ONNX."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from dff.benchmark.complexity import checkpoint_macs, export_macs, onnx_graph_macs
from dff.benchmark.speedup import SweepSettings
from dff.checkpoint import save_checkpoint
from dff.cli import main
from dff.commands.bench import parse_intervals
from dff.config import ModelConfig
from dff.errors import ConfigError
from dff.export import ExportOptions, export_checkpoint
from dff.models import build_model

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A few frames of 64×64, one repeat: the command's mechanics, not the machine's speed.
QUICK = ["--height", "64", "--width", "64", "--frames", "8", "--repeats", "1", "--warmup-frames", "1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
    return save_checkpoint(tmp_path_factory.mktemp("bench") / "tiny.safetensors", build_model(config), config)


@pytest.fixture(scope="module")
def export(checkpoint: Path) -> Path:
    out = checkpoint.parent / "export"
    export_checkpoint(checkpoint, out, ExportOptions(min_size=(64, 64), max_size=(256, 256)))
    return out


def bench_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["bench", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


class TestBenchCommand:
    def test_json_figures_and_plot(self, export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        plot = tmp_path / "speedup.png"
        result = bench_json(capsys, str(export), "-O", "threads=1", *QUICK, "--intervals", "1,2,4", "--plot", str(plot))
        assert 0 < result["r_measured"] < math.inf
        assert 0 < result["r_flops"] < math.inf
        assert [row["l"] for row in result["rows"]] == [1, 2, 4]
        assert result["rows"][0]["predicted_speedup"] == 1.0
        for row in result["rows"]:
            assert row["predicted_speedup"] == pytest.approx(row["l"] / (1 + (row["l"] - 1) * result["r_measured"]))
            assert 0 < row["measured_speedup_min"] <= row["measured_speedup"] <= row["measured_speedup_max"] < math.inf
            assert row["fps"] > 0
        stages = result["stages_ms"]
        # ONNX Runtime runs each path as one fused graph: one stage a path.
        assert set(stages["key"]) >= {"key_path", "total"} and set(stages["non-key"]) >= {"propagate", "total"}
        assert plot.read_bytes().startswith(PNG_SIGNATURE)

    def test_table(self, export: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["bench", str(export), "-O", "threads=1", *QUICK, "--intervals", "1-2"]) == 0
        text = capsys.readouterr().out
        assert "r measured (Eq. 5" in text and "r FLOPs (Eq. 6" in text
        assert text.rstrip().splitlines()[-1].split()[0] == "2"  # the table ends with the row of l = 2

    def test_torch_backend_counts_the_checkpoint(self, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
        result = bench_json(capsys, str(checkpoint), "--backend", "torch", *QUICK, "--intervals", "1,4")
        assert result["macs"]["counted_from"] == "PyTorch modules"
        assert [row["l"] for row in result["rows"]] == [1, 4]
        assert result["r_flops"] == pytest.approx(checkpoint_macs(checkpoint, height=64, width=64).r_flops)

    def test_an_export_is_benchmarked_without_torch(self, export: Path, tmp_path: Path) -> None:
        # A fresh interpreter: this one has imported torch already. The plot brings matplotlib, not torch.
        script = (
            "import sys; from dff.cli import main; "
            f"code = main(['bench', {str(export)!r}, '-O', 'threads=1', {', '.join(repr(a) for a in QUICK)}, "
            f"'--intervals', '1,2', '--plot', {str(tmp_path / 'p.png')!r}]); "
            "sys.exit(code or ('torch' in sys.modules and 'torch was imported'))"
        )
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    def test_too_few_frames_is_one_line_error(self, export: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["bench", str(export), "--frames", "4", "--intervals", "1,8"]) == 2
        error = capsys.readouterr().err
        assert "frames (4) must be >= the largest interval (8)" in error and len(error.strip().splitlines()) == 1

    def test_size_outside_the_export(self, export: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["bench", str(export), "--height", "512", "--width", "512", "--frames", "2", "--intervals", "1,2"]) == 2
        assert "outside this export's allowed sizes" in capsys.readouterr().err


class TestSettings:
    @pytest.mark.parametrize(
        "text, expected", [("1-4", (1, 2, 3, 4)), ("10,1,5", (1, 5, 10)), ("1-3,3,20", (1, 2, 3, 20))]
    )
    def test_parse_intervals(self, text: str, expected: tuple[int, ...]) -> None:
        assert parse_intervals(text) == expected

    @pytest.mark.parametrize("text", ["0-3", "a", "", "2-1"])
    def test_bad_intervals(self, text: str) -> None:
        with pytest.raises(Exception, match="intervals"):
            parse_intervals(text)

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            (dict(intervals=()), "integers >= 1"),
            (dict(intervals=(1, 1)), "must not repeat"),
            (dict(intervals=(1, 30), frames=20), "frames \\(20\\) must be >= the largest interval \\(30\\)"),
            (dict(repeats=0), "repeats >= 1"),
        ],
    )
    def test_rejects(self, kwargs: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            SweepSettings(**kwargs)


class TestMACs:
    def test_onnx_graphs_count_what_the_modules_count(self, checkpoint: Path, export: Path) -> None:
        # 112×144 gives FlowNet's encoder odd sizes, which its decoder crops (Slices ONNX cannot size channels through).
        onnx_counts = export_macs(export, height=112, width=144)
        torch_counts = checkpoint_macs(checkpoint, height=112, width=144)
        assert (onnx_counts.feature, onnx_counts.flow, onnx_counts.task) == (torch_counts.feature, torch_counts.flow, torch_counts.task)
        assert onnx_counts.r_flops == pytest.approx(onnx_counts.flow / onnx_counts.feature)

    def test_gemm(self, tmp_path: Path) -> None:
        # y = x · Wᵀ with W (N=5, K=7) stored transposed (transB=1), for M=3 rows: 3·5·7 MACs.
        weight = helper.make_tensor("w", TensorProto.FLOAT, [5, 7], np.zeros(35, np.float32))
        graph = helper.make_graph(
            [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
            "gemm",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 7])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
            initializer=[weight],
        )
        path = tmp_path / "gemm.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        assert onnx_graph_macs(path, {"N": 3}) == 3 * 5 * 7
