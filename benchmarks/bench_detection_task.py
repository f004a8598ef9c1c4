"""The detection task graph (task.onnx: R-FCN's maps, proposals, PS-RoI pooling, both NMS in ONNX) against the
same work in PyTorch (``RFCNTaskNet.detect``, NMS on the host) and against a segmentation task graph, per frame.

    nice .venv/bin/python benchmarks/bench_detection_task.py [--repeats 20] [--sizes 256x320,512x640] [--threads 1]

One process; a tiny detector and a tiny segmenter of the same width, random weights with larger head weights so
that the NMS has work to do. The three contenders take turns call by call on the same features, so machine load
hits them alike. Prints medians in ms and the ratios: ONNX / PyTorch, detection / segmentation task in ONNX Runtime
(the heavier N_task that Eq. 7's r then holds), and how many boxes each frame kept.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from dff.checkpoint import save_checkpoint
from dff.config import ModelConfig
from dff.export import ExportOptions, export_checkpoint
from dff.models import build_model


def _size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", default="256x320,512x640", help="frame sizes HxW, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        detector_config = ModelConfig(task="detection", feature="tiny", flow="tiny", num_classes=4)
        detector = build_model(detector_config).eval()
        head = detector.task_net
        for conv in (head.rpn_objectness, head.rfcn_classes):
            torch.nn.init.normal_(conv.weight, std=0.3)
        segmenter_config = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
        options = ExportOptions(max_size=(1024, 1024))
        for name, model, config in (("det", detector, detector_config), ("seg", build_model(segmenter_config), segmenter_config)):
            save_checkpoint(root / f"{name}.safetensors", model, config)
            export_checkpoint(root / f"{name}.safetensors", root / name, options)
        detection, segmentation = _session(root / "det" / "task.onnx", args.threads), _session(root / "seg" / "task.onnx", args.threads)
        for height, width in (_size(s) for s in args.sizes.split(",")):
            feat = np.abs(np.random.default_rng(0).standard_normal((1, 32, height // 16, width // 16))).astype(np.float32)
            feat_torch = torch.from_numpy(feat)
            contenders = {
                "task.onnx detection (ORT)": lambda: detection.run(None, {"feat": feat}),
                "RFCNTaskNet.detect (PyTorch)": lambda: head.detect(head(feat_torch)),
                "task.onnx segmentation (ORT)": lambda: segmentation.run(None, {"feat": feat}),
            }
            times: dict[str, list[float]] = {name: [] for name in contenders}
            with torch.inference_mode():
                for run in contenders.values():
                    run()  # first calls allocate
                for _ in range(args.repeats):
                    for name, run in contenders.items():
                        start = time.perf_counter()
                        run()
                        times[name].append((time.perf_counter() - start) * 1e3)
                kept = int(detection.run(None, {"feat": feat})[3][0])
            median = {name: statistics.median(values) for name, values in times.items()}
            print(f"{height}x{width} frames ({height // 16}x{width // 16} cells), {args.repeats} calls each, {args.threads} thread(s), {kept} boxes kept:")
            for name, value in median.items():
                print(f"  {name:30s} {value:8.2f} ms")
            onnx, torch_ms, seg = (median[name] for name in contenders)
            print(f"  ratio ONNX / PyTorch detection: {onnx / torch_ms:.2f}; detection / segmentation task (ORT): {onnx / seg:.1f}")


if __name__ == "__main__":
    main()
