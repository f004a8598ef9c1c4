"""Detection with Deep Feature Flow on this machine's CPU: tiny networks, R-FCN head, synthetic video, mAP@0.5 and fps.

As Table 4 for ImageNet VID, at toy scale. F is pre-trained on flying-shapes pairs (our Flying
Chairs); *Frame* trains N (tiny ResNet and R-FCN head) on single frames of a 128×128 synthetic
video; *DFF* starts from both and trains everything on pairs 0 ≤ i − k ≤ 9. Evaluated by the
paper's protocol on another video of the same kind (another seed): per-frame (l = 1), copy
(f_i = f_k, l = 5), *DFF separate* (Frame's N with the pre-trained F, no joint training, l = 5)
and *DFF* (l = 5).

    nice python benchmarks/detection.py              # into runs/detection
    python benchmarks/detection.py --scale 0.02      # a quick check of the whole pipeline
    python benchmarks/detection.py --retrain         # train again instead of reusing finished stages

A finished stage (its ``model.safetensors`` exists) is reused, so a re-run only evaluates.
Results go to ``OUT/results.json`` and, as Markdown, to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from dff.config import ModelConfig  # noqa: E402
from dff.data.flying_shapes import FlyingShapesConfig  # noqa: E402
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig  # noqa: E402
from dff.detection.evaluate import DetectionResult, evaluate_detection  # noqa: E402
from dff.detection.ground_truth import SyntheticBoxes  # noqa: E402
from dff.detection.model import build_detection_model  # noqa: E402
from dff.detection.train import load_detector, train_detector  # noqa: E402
from dff.train.config import FlowTrainConfig, RunConfig  # noqa: E402
from dff.train.flow import train_flow  # noqa: E402
from dff.train.loop import MODEL_NAME  # noqa: E402
from dff.train.parts import FLOW_PARTS, load_parts  # noqa: E402
from dff.train.schedule import OptimiserConfig  # noqa: E402

KEY_INTERVAL = 5
#: One thread: on a CPU shared with other jobs, a second thread mostly waits for a core.
THREADS = 1
SIZE = 128
VIDEO = SyntheticVideoConfig(height=SIZE, width=SIZE, length=600, max_speed=3.0, seed=0)
TEST_VIDEO = replace(VIDEO, length=120, seed=1)
MODEL = ModelConfig(feature="tiny", flow="tiny", num_classes=VIDEO.num_classes, class_names=SyntheticVideo(VIDEO).class_names)
FLOW_DATA = FlyingShapesConfig(height=SIZE, width=SIZE, length=20000, max_displacement=16.0, seed=0)
#: Iterations of each stage at --scale 1 (batch sizes: 8 flow pairs, 4 detection pairs).
ITERATIONS = {"flow": 800, "frame": 2000, "dff": 1200}


def run_stage(name: str, output: Path, train: Callable[[], Path], *, retrain: bool) -> tuple[Path, float]:
    """Train unless finished (or ``retrain``); the model's path and the training seconds (0 when reused)."""
    model = output / MODEL_NAME
    if model.is_file() and not retrain:
        print(f"[{name}] reusing {model}", flush=True)
        return model, 0.0
    shutil.rmtree(output, ignore_errors=True)
    print(f"[{name}] training", flush=True)
    start = time.perf_counter()
    path = train()
    return path, time.perf_counter() - start


def settings(output: Path, iterations: int, lr: float) -> RunConfig:
    return RunConfig(
        iterations=iterations, output_dir=str(output), optimiser=OptimiserConfig(lr=lr), batch_size=4, checkpoint_every=1000, device="cpu", threads=THREADS
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "detection"))
    parser.add_argument("--retrain", action="store_true", help="train every stage again")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's iterations (a quick check: 0.02)")
    args = parser.parse_args()
    out = Path(args.out)
    torch.set_num_threads(THREADS)
    iterations = {name: max(1, round(n * args.scale)) for name, n in ITERATIONS.items()}
    train_video = [SyntheticBoxes(SyntheticVideo(VIDEO))]
    seconds: dict[str, float] = {}

    flow_config = FlowTrainConfig(
        model=MODEL, data=FLOW_DATA, iterations=iterations["flow"], batch_size=8, optimiser=OptimiserConfig(lr=0.01),
        checkpoint_every=1000, output_dir=str(out / "flow"), device="cpu", threads=THREADS,
    )
    flow, seconds["flow pre-training"] = run_stage("flow pre-training", out / "flow", lambda: train_flow(flow_config), retrain=args.retrain)

    def train_frame() -> Path:
        torch.manual_seed(0)
        model = build_detection_model(MODEL)
        return train_detector(
            model, sequences=train_video, settings=settings(out / "frame", iterations["frame"], 0.02), model_config=MODEL,
            max_offset=0, frozen_parts=("flow_net",),
        )

    frame, seconds["Frame"] = run_stage("Frame", out / "frame", train_frame, retrain=args.retrain)

    def start_from_frame() -> torch.nn.Module:
        model, _ = load_detector(frame)
        load_parts(model, MODEL, flow, FLOW_PARTS)
        return model

    def train_dff() -> Path:
        return train_detector(
            start_from_frame(), sequences=train_video, settings=settings(out / "dff", iterations["dff"], 0.01), model_config=MODEL, max_offset=9
        )

    dff, seconds["DFF"] = run_stage("DFF", out / "dff", train_dff, retrain=args.retrain)

    test_video = [SyntheticBoxes(SyntheticVideo(TEST_VIDEO))]
    frame_model, _ = load_detector(frame)
    dff_model, _ = load_detector(dff)
    runs = [
        ("Frame", "Frame", frame_model, "frame"),
        ("copy (f_i = f_k)", "Frame", frame_model, "copy"),
        ("DFF separate", "Frame + pre-trained F", start_from_frame().eval(), "dff"),
        ("DFF", "DFF", dff_model, "dff"),
    ]
    rows: list[tuple[str, str, DetectionResult]] = []
    for method, trained, model, mode in runs:
        print(f"[eval] {method}", flush=True)
        result = evaluate_detection(model, test_video, mode=mode, key_interval=KEY_INTERVAL, mean=MODEL.mean, std=MODEL.std)  # type: ignore[arg-type]
        rows.append((method, trained, result))

    names = MODEL.names[1:]
    lines = [
        f"### Detection, synthetic video {SIZE}x{SIZE} (test: {TEST_VIDEO.length} frames, seed {TEST_VIDEO.seed}), CPU, {THREADS} thread",
        "",
        "| method | model | l | mAP@0.5 (%) | " + " | ".join(f"AP {n} (%)" for n in names) + " | key ms | non-key ms | fps |",
        "|---|---|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for method, trained, r in rows:
        aps = " | ".join("-" if ap is None else f"{100 * ap:.1f}" for ap in r.class_ap)
        non_key = "-" if r.non_key_ms is None else f"{r.non_key_ms:.1f}"
        lines.append(f"| {method} | {trained} | {r.key_interval} | {100 * r.mean_ap:.1f} | {aps} | {r.key_ms:.1f} | {non_key} | {r.fps:.0f} |")
    lines += ["", "Training seconds: " + ", ".join(f"{name} {s:.0f}" for name, s in seconds.items()) + f" (total {sum(seconds.values()):.0f})"]
    lines += ["Iterations: " + ", ".join(f"{name} {n}" for name, n in iterations.items())]
    report = {
        "iterations": iterations,
        "training_seconds": seconds,
        "results": [{"method": m, "model": t, **asdict(r)} for m, t, r in rows],
    }
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "results.json.tmp"
    partial.write_text(json.dumps(report, indent=2))
    os.replace(partial, out / "results.json")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
