"""The per-pixel labels of N_task in PyTorch: ``argmax(dim=1)`` (before) against ``max(dim=1).indices`` (now).

torch's CPU argmax over the class axis of an NCHW tensor (a strided reduction) is an order of
magnitude slower than its ``max`` over the same axis, which returns the same indices (the first
maximum on ties). Measured here on real CamVid frames (0016E5, 360×480, run at 352×480), one thread:

* the torch backend's task stage (softmax, ×16 bilinear upsampling, labels, uint8), before and now,
  next to ONNX Runtime's task stage on the same features (the export's task.onnx);
* ``dff eval``'s prediction (score maps upsampled to the label's size, then ``argmax(dim=0)`` over a
  C×H×W tensor) against the same with ``max(dim=0).indices``: there the class axis is the outermost
  one, which torch reduces fast, so ``dff eval`` keeps argmax (this shows whether it still should).

Each pass runs every variant frame by frame in turns (the order rotates), so machine load hits them
alike; the figures are medians over passes, and the labels of argmax and max.indices must be identical.

    nice python benchmarks/bench_task_labels.py [--checkpoint CKPT] [--frames 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dff.benchmark.frames import benchmark_frames  # noqa: E402
from dff.checkpoint import save_checkpoint  # noqa: E402
from dff.config import ModelConfig  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.models import build_model  # noqa: E402
from dff.models.task import class_ids  # noqa: E402
from dff.runtime import open_backend  # noqa: E402

CAMVID = REPO.parent / "shared" / "data" / "camvid_0016E5" / "images"
#: CamVid's 11 classes and void.
CLASSES = 12


def tiny_checkpoint(path: Path) -> Path:
    """A tiny model with CamVid's class count and score weights large enough for confident, varied labels."""
    torch.manual_seed(0)
    config = ModelConfig(feature="tiny", flow="tiny", num_classes=CLASSES)
    model = build_model(config)
    with torch.no_grad():
        model.task_net.score.weight.normal_(std=0.5)
    return save_checkpoint(path, model, config)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: a tiny model with 12 classes")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = args.checkpoint or tiny_checkpoint(Path(scratch) / "model.safetensors")
        export = Path(scratch) / "export"
        export_checkpoint(checkpoint, export, ExportOptions(min_size=(64, 64), max_size=(512, 512)))
        torch_backend = open_backend("torch", model=checkpoint)
        ort_backend = open_backend("onnxruntime", model=export, threads=1)
        height, width = torch_backend.sizes.nearest(360, 480)
        images = benchmark_frames(args.frames, height=height, width=width, source=str(CAMVID))
        task_net = torch_backend.network.task_net
        with torch.inference_mode():
            feats = [torch_backend.feature(torch_backend.upload(image)) for image in images]
            scores = [task_net(feat) for feat in feats]
        size = (height, width)

        def stage_before(i: int) -> np.ndarray:
            with torch.inference_mode():
                probs = task_net.probabilities(feats[i], size)
                return probs.argmax(dim=1).to(torch.uint8)[0].numpy()

        def stage_now(i: int) -> np.ndarray:
            return torch_backend.download(torch_backend.task(feats[i]))

        host_feats = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feat.numpy())) for feat in feats]

        def stage_ort(i: int) -> np.ndarray:
            return ort_backend.download(ort_backend.task(host_feats[i]))

        def eval_argmax(i: int) -> np.ndarray:
            with torch.inference_mode():
                return F.interpolate(scores[i], size=size, mode="bilinear", align_corners=False)[0].argmax(dim=0).numpy()

        def eval_max(i: int) -> np.ndarray:
            with torch.inference_mode():
                return class_ids(F.interpolate(scores[i], size=size, mode="bilinear", align_corners=False)[0], dim=0).numpy()

        variants: dict[str, Callable[[int], np.ndarray]] = {
            "torch task stage, argmax (before)": stage_before,
            "torch task stage, max.indices (now)": stage_now,
            "onnxruntime task stage": stage_ort,
            "dff eval prediction, argmax (as it is)": eval_argmax,
            "dff eval prediction with max.indices": eval_max,
        }
        names = list(variants)
        per_pass: dict[str, list[float]] = {name: [] for name in names}
        agree_ort = []
        for repeat in range(args.repeats + 1):  # the first pass warms up and is not counted
            seconds = dict.fromkeys(names, 0.0)
            for i in range(len(images)):
                order = names[i % len(names):] + names[: i % len(names)]
                out = {}
                for name in order:
                    start = time.perf_counter()
                    out[name] = variants[name](i)
                    seconds[name] += time.perf_counter() - start
                if not (np.array_equal(out[names[0]], out[names[1]]) and np.array_equal(out[names[3]], out[names[4]])):
                    raise RuntimeError(f"frame {i}: labels of argmax and max.indices differ")
                agree_ort.append(float(np.mean(out[names[1]] == out[names[2]])))
            if repeat:
                for name in names:
                    per_pass[name].append(seconds[name] * 1e3 / len(images))
        ms = {name: float(np.median(values)) for name, values in per_pass.items()}
        torch_backend.close()
        ort_backend.close()
    print(f"{len(images)} CamVid frames at {height}x{width}, {CLASSES} classes, {args.repeats} passes, one thread; "
          f"labels of argmax = max.indices on every frame")
    for name in names:
        print(f"  {name:<40} {ms[name]:8.2f} ms/frame")
    print(f"torch task stage: before / now = {ms[names[0]] / ms[names[1]]:.1f}x; now / onnxruntime = "
          f"{ms[names[1]] / ms[names[2]]:.2f}x (labels agree with onnxruntime's on {100 * min(agree_ort):.3f}% of pixels "
          f"or more)")
    print(f"dff eval prediction: argmax / max.indices = {ms[names[3]] / ms[names[4]]:.2f}x (argmax over the leading axis)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
