"""F's frame preprocessing: the export's one-convolution halving against the Cast, Transpose, AveragePool, Sub, Mul chain.

    taskset -c 0 python benchmarks/bench_frame_halving.py [--sizes 320x400 720x1280] [--runs 200]

Both graphs are exported from PyTorch by the exporter's own function (``dff.export.torch_graphs.export_graph``):
:class:`~dff.export.torch_graphs.FrameHalving` as ``flow.onnx`` holds it, and the chain it replaced (the frame
transposed to NCHW, 2×2 average-pooled, then normalised). One uint8 BGR frame in, (1, 3, H/2, W/2) out, one thread,
ONNX Runtime and OpenVINO, the two graphs taking turns run by run. Prints the median times, their ratio and the
largest difference of the outputs (relative to their largest value).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dff.config import ModelConfig  # noqa: E402
from dff.export.torch_graphs import FrameHalving, export_graph  # noqa: E402
from dff.quiet_openvino import import_openvino  # noqa: E402

ov = import_openvino()


class TransposedHalving(nn.Module):
    """The chain FrameHalving replaced: NHWC → NCHW copy, 2×2 average pooling, (x − mean) / std."""

    def __init__(self, *, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1 / torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, frames: Tensor) -> Tensor:
        return (F.avg_pool2d(frames.float().permute(0, 3, 1, 2), 2) - self.mean) * self.inv_std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["320x400", "512x640", "720x1280"], help="frame sizes HxW")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    config = ModelConfig()
    mean, std = list(config.mean[::-1]), list(config.std[::-1])  # BGR, as the export takes them
    graphs = {"transposed chain": TransposedHalving(mean=mean, std=std), "one convolution": FrameHalving(mean=mean, std=std)}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            height, width = (int(v) for v in size.split("x"))
            frame = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
            runners = {}
            for name, module in graphs.items():
                path = Path(tmp) / f"{name.replace(' ', '_')}_{size}.onnx"
                export_graph(module.eval(), (torch.from_numpy(frame),), path, input_names=["frame"], output_names=["halved"], dynamic_axes={}, opset=17)
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                # f32 as the backend's default: on CPUs with bf16 OpenVINO would otherwise compute in it.
                config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
                request = core.compile_model(str(path), "CPU", config).create_infer_request()
                runners[name] = {
                    "onnxruntime": lambda s=session: s.run(None, {"frame": frame})[0],
                    "openvino": lambda r=request: r.infer({"frame": frame})[0],
                }
            for engine in ("onnxruntime", "openvino"):
                outputs = {name: engine_runs[engine]() for name, engine_runs in runners.items()}
                times: dict[str, list[float]] = {name: [] for name in runners}
                for _ in range(args.runs):
                    for name, engine_runs in runners.items():
                        start = time.perf_counter()
                        engine_runs[engine]()
                        times[name].append(time.perf_counter() - start)
                old, new = (float(np.median(times[name])) * 1e6 for name in graphs)
                reference = outputs["transposed chain"]
                error = float(np.abs(outputs["one convolution"] - reference).max() / np.abs(reference).max())
                print(f"{size} {engine:12s} transposed chain {old:7.0f} µs, one convolution {new:7.0f} µs: {new / old:.2f}x (max rel. difference {error:.1e})")


if __name__ == "__main__":
    main()
