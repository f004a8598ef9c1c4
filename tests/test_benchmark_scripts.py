"""The benchmark scripts run: a script that rots (an export gained outputs, an API moved) fails here, not in a
user's hands. Tiny frames and one repeat, so each takes seconds; the figures themselves are the scripts' business."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_streams_ceiling_prints_each_stage_and_the_mix():
    out = run_script("bench_streams.py", "--ceiling", "--streams", "2", "--ceiling-repeats", "1", "--height", "64", "--width", "96")
    line = next(text for text in out.splitlines() if text.strip().startswith("S =  2"))
    for stage in ("feature", "flow", "warp", "task"):
        assert re.search(rf"{stage} \d+\.\d+/\d+\.\d+ \(\d+\.\d+x\)", line), line
    assert re.search(r"l = 5 mix \d+\.\d+x", line)
    assert "kernel profile of flow.onnx" in out


def test_bench_streams_compares_backends_with_labels_equal_to_alone():
    out = run_script("bench_streams.py", "--backend", "onnxruntime,openvino", "--streams", "1,2", "--frames", "6",
                     "--repeats", "1", "--no-flatness", "--height", "64", "--width", "96")
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+[12]\s+\d", line)]
    assert [row[0] for row in rows] == ["1", "2", "1", "2"]  # S = 1, 2 on each backend
    assert all(float(row[-1]) == 1.0 for row in rows)  # every stream's labels equal its own run alone
    assert "onnxruntime CPU" in out and "openvino CPU" in out


def test_bare_graphs_show_each_networks_rate_and_f_with_the_key_half():
    out = run_script("bench_cpu_fastpath.py", "--bare", "--height", "64", "--width", "96")
    line = next(text for text in out.splitlines() if "GMAC/s:" in text)
    assert re.search(r"feature \d+\.\d, flow \d+\.\d; flow with the key half once per key frame \d+\.\d+ ms", line), line
    assert re.search(r"r \d\.\d+ = \d+\.\d+x FLOP r", line), line


def test_profile_paths_profiles_both_paths_as_the_backend_loads_them(tmp_path: Path):
    from dff.commands.demo import DEMO_MODEL
    from dff.export import ExportOptions, export_checkpoint

    export_checkpoint(DEMO_MODEL, tmp_path / "export", ExportOptions(height=64, width=96))
    out = run_script("profile_paths.py", "--export", str(tmp_path / "export"), "--repeats", "2")
    lines = {line.split()[1].rstrip(":"): line for line in out.splitlines() if line.startswith("64x96")}
    assert set(lines) == {"key_path", "propagate"}
    assert all(re.search(r"wall \d+\.\d+ ms, kernels \d+\.\d+ ms: \w+ \d+\.\d%", line) and "Conv" in line for line in lines.values())


def test_frame_halving_bench_times_both_forms_on_both_engines_with_equal_outputs():
    out = run_script("bench_frame_halving.py", "--sizes", "64x96", "--runs", "2")
    rows = re.findall(r"64x96 (\w+)\s+transposed chain\s+\d+ µs, one convolution\s+\d+ µs: \d+\.\d+x \(max rel\. difference (\S+)\)", out)
    assert [engine for engine, _ in rows] == ["onnxruntime", "openvino"], out
    assert all(float(error) < 1e-6 for _, error in rows), out  # the same sums in another order


def test_gather_warp_bench_times_both_forms_with_equal_outputs():
    out = run_script("bench_gather_warp.py", "--grids", "4x6", "--batches", "1", "2", "--runs", "2")
    rows = re.findall(r"4x6 batch (\d): GridSample\s+\d+\.\d µs, row gathers\s+\d+\.\d µs: \d+\.\d+x \(max rel\. difference (\S+)\)", out)
    assert [batch for batch, _ in rows] == ["1", "2"], out
    assert all(float(error) < 1e-6 for _, error in rows), out  # the same four products, summed in another order


def test_label_tail_bench_times_three_forms_with_the_graphs_labels():
    out = run_script("bench_label_tail.py", "--runs", "1", "--inputs", "2")
    rows = re.findall(r"graph \d+\.\d+ ms, every class \d+\.\d+ ms \(\d+\.\d+x\), two-class \d+\.\d+ ms .*pixels unlike the graph's: (\S+), (\S+)$", out, re.M)
    assert len(rows) == 4, out  # the demo model on vtest.avi and three synthetic class counts
    assert all(float(every) <= 1e-4 and float(two) <= 1e-4 for every, two in rows), out  # float ties at most
