"""The warp W on ONNX Runtime's CPU provider: warp.onnx's GridSample against its row-gather form (dff.runtime.gather_sample).

    taskset -c 0 python benchmarks/bench_gather_warp.py [--grids 8x8 20x25 32x40 45x80] [--batches 1 3] [--runs 200]

The demo model's warp.onnx (exported once, dynamic sizes) as the file has it and as the CPU backend loads it, one
thread, the two sessions taking turns run by run on the same random features (128 channels), flow (about 3 cells)
and scale. Prints per feature grid and batch the median times, their ratio and the largest difference of the outputs
relative to their largest value (the same four products, summed in another order).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dff.commands.demo import DEMO_MODEL  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.runtime.gather_sample import gather_warp  # noqa: E402


def _grid(text: str) -> tuple[int, int]:
    height, width = (int(side) for side in text.split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", nargs="+", type=_grid, default=[(8, 8), (20, 25), (32, 40), (45, 80)], help="feature grids HxW")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 3])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with tempfile.TemporaryDirectory() as scratch:
        export_checkpoint(DEMO_MODEL, Path(scratch), ExportOptions())
        model = onnx.load(Path(scratch) / "warp.onnx")
    rewritten, replaced = gather_warp(model)
    if replaced != 1:
        raise SystemExit(f"expected one GridSample in warp.onnx, rewrote {replaced}")
    sessions = {
        "GridSample": ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]),
        "row gathers": ort.InferenceSession(rewritten.SerializeToString(), options, providers=["CPUExecutionProvider"]),
    }
    channels = next(i for i in model.graph.input if i.name == "key_feat").type.tensor_type.shape.dim[1].dim_value
    rng = np.random.default_rng(0)
    for height, width in args.grids:
        for batch in args.batches:
            feeds = {
                "key_feat": rng.standard_normal((batch, channels, height, width)).astype(np.float32),
                "flow": (3 * rng.standard_normal((batch, 2, height, width))).astype(np.float32),
                "scale": (1 + 0.1 * rng.standard_normal((batch, channels, height, width))).astype(np.float32),
            }
            outputs = {name: session.run(None, feeds)[0] for name, session in sessions.items()}
            times: dict[str, list[float]] = {name: [] for name in sessions}
            for run in range(args.runs):
                order = list(sessions.items())
                for name, session in order if run % 2 else order[::-1]:
                    start = time.perf_counter()
                    session.run(None, feeds)
                    times[name].append(time.perf_counter() - start)
            grid_us, gather_us = (1e6 * float(np.median(times[name])) for name in sessions)
            reference = outputs["GridSample"]
            error = float(np.abs(outputs["row gathers"] - reference).max() / np.abs(reference).max())
            print(
                f"{height}x{width} batch {batch}: GridSample {grid_us:8.1f} µs, row gathers {gather_us:8.1f} µs: "
                f"{grid_us / gather_us:.2f}x (max rel. difference {error:.1e})"
            )


if __name__ == "__main__":
    main()
