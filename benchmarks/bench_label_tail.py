"""N_task's tail: labels from the probabilities on the feature grid, as task.onnx's graph computes them and on the host.

    taskset -c 0 python benchmarks/bench_label_tail.py [--runs 20]

Three forms of the same labels (the first maximum of the ×16 bilinear upsampling), taking turns input by input:
the export's own tail (``task.onnx`` from ``probs`` to ``labels``: Resize, ArgMax, in ONNX Runtime, one thread), the
host tail interpolating every class in every mixed quad (``labels_from_probs(two_class=False)``), and the host tail as
the CPU backends run it (two-class quads by the sign of p_b - p_a, :mod:`dff.runtime.label_tail`). Inputs: the demo
model's probabilities on vtest.avi frames at 320×400 (real boundaries, 4 classes), and confident synthetic
probabilities (random blobs of classes, softmax of 5 · one-hot plus noise) with 4, 11 and 19 classes on the feature
grids of 320×400, 720×1280 and 1024×2048 frames. Prints per input set the medians, the host tails' ratios to the
graph, and the share of pixels whose labels differ from the graph's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dff.commands.demo import DEMO_MODEL  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.manifest import LABELS, PROBS  # noqa: E402
from dff.runtime import open_backend  # noqa: E402
from dff.runtime.label_tail import labels_from_probs  # noqa: E402

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "vtest.avi"


def tail_session(task: onnx.ModelProto) -> ort.InferenceSession:
    """task.onnx from probs to labels, with any number of classes and any grid."""
    tail = utils.Extractor(task).extract_model([PROBS], [LABELS])
    for value in (*tail.graph.input, *tail.graph.output):
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            dim.dim_param = f"d{index}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(tail.SerializeToString(), options, providers=["CPUExecutionProvider"])


def demo_probabilities(export: Path, frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    images = []
    while len(images) < frames:
        ok, image = capture.read()
        if not ok:
            raise SystemExit(f"{VIDEO} has fewer than {frames} frames")
        images.append(cv2.resize(image, (400, 320)))
    with open_backend("onnxruntime", model=export, threads=1, label_tail="host", fused_graphs=False) as backend:
        key = backend.upload(images[0])
        feat = backend.feature(key)
        return [backend.task(backend.warp(feat, backend.flow(key, backend.upload(image)))).numpy()[0].copy() for image in images]


def synthetic_probabilities(classes: int, grid: tuple[int, int], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    height, width = grid
    found = []
    for _ in range(count):
        blobs = rng.integers(0, classes, (height // 4 + 1, width // 4 + 1)).astype(np.uint8)
        labels = cv2.resize(blobs, (width, height), interpolation=cv2.INTER_NEAREST)
        logits = 5 * np.eye(classes, dtype=np.float32)[labels].transpose(2, 0, 1) + rng.standard_normal((classes, height, width)).astype(np.float32)
        exp = np.exp(logits - logits.max(axis=0))
        found.append((exp / exp.sum(axis=0)).astype(np.float32))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="passes over each input set")
    parser.add_argument("--inputs", type=int, default=6, help="inputs per set")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        export_checkpoint(DEMO_MODEL, Path(scratch), ExportOptions(height=320, width=400))
        graph = tail_session(onnx.load(Path(scratch) / "task.onnx"))
        sets = {"demo model, vtest.avi, 4 classes, 20x25": demo_probabilities(Path(scratch), args.inputs)}
    rng = np.random.default_rng(0)
    for classes, grid in ((4, (20, 25)), (11, (45, 80)), (19, (64, 128))):
        sets[f"synthetic, {classes} classes, {grid[0]}x{grid[1]}"] = synthetic_probabilities(classes, grid, args.inputs, rng)
    forms = {
        "graph": lambda probs: graph.run(None, {PROBS: probs[None]})[0][0],
        "every class": lambda probs: labels_from_probs(probs, two_class=False),
        "two-class": labels_from_probs,
    }
    for name, inputs in sets.items():
        times: dict[str, list[float]] = {form: [] for form in forms}
        for run in range(args.runs):
            for probs in inputs:
                order = list(forms.items())
                rotation = run % len(order)
                for form, compute in order[rotation:] + order[:rotation]:
                    start = time.perf_counter()
                    compute(probs)
                    times[form].append(time.perf_counter() - start)
        ms = {form: 1e3 * float(np.median(values)) for form, values in times.items()}
        differ = {form: max(float(np.mean(forms[form](probs) != forms["graph"](probs))) for probs in inputs) for form in ("every class", "two-class")}
        print(
            f"{name}: graph {ms['graph']:.3f} ms, every class {ms['every class']:.3f} ms ({ms['every class'] / ms['graph']:.2f}x), "
            f"two-class {ms['two-class']:.3f} ms ({ms['two-class'] / ms['graph']:.2f}x; {ms['two-class'] / ms['every class']:.2f}x every class); "
            f"pixels unlike the graph's: {differ['every class']:.1e}, {differ['two-class']:.1e}"
        )


if __name__ == "__main__":
    main()
