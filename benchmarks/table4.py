"""Table 4 of the paper with tiny networks on this machine's CPU: Frame, DFF and its variants, copy and SFF.

Synthetic video (exact labels): F is pre-trained on flying-shapes pairs, *Frame* on single frames
of a training video, then the DFF variants of Table 3 start from those two; all are evaluated by
the paper's protocol (l = 5) on another video of the same kind (another seed). CamVid 0016E5
(``../shared/data/camvid_0016E5``, 101 labelled frames): Frame and DFF train on the first 70
frames and are evaluated on the last 31, with copy and SFF.

    nice python benchmarks/table4.py                 # both parts, into runs/table4
    python benchmarks/table4.py --part synthetic     # one part
    python benchmarks/table4.py --retrain            # train again instead of reusing finished stages

A finished stage (its ``model.safetensors`` exists) is reused, so a re-run only evaluates. Results
go to ``OUT/results.json`` and, as Markdown, to stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from dff.checkpoint import load_checkpoint  # noqa: E402
from dff.config import ModelConfig  # noqa: E402
from dff.data.flying_shapes import FlyingShapesConfig  # noqa: E402
from dff.data.synthetic import SyntheticVideoConfig  # noqa: E402
from dff.eval.protocol import ModeResult, evaluate_modes  # noqa: E402
from dff.eval.report import table  # noqa: E402
from dff.train.config import FlowTrainConfig, TrainConfig  # noqa: E402
from dff.train.data import TrainDataConfig, VideoConfig  # noqa: E402
from dff.train.flow import train_flow  # noqa: E402
from dff.train.loop import MODEL_NAME  # noqa: E402
from dff.train.schedule import OptimiserConfig  # noqa: E402
from dff.train.segmentation import train  # noqa: E402

CAMVID = REPO.parent / "shared" / "data" / "camvid_0016E5"
KEY_INTERVAL = 5  # the paper's l for Cityscapes (Section 5.2)
#: One thread: on a CPU shared with other jobs, a second thread mostly waits for a core (10× slower steps here).
THREADS = 1
#: SGD learning rate of every segmentation stage (the paper's 10^-3 is for batch 8 of 1024×2048 frames), dropping
#: tenfold for the last quarter (Section 5.1's 15K + 5K).
LR = 0.01

# --- the synthetic part ---------------------------------------------------------------------------
SYNTHETIC_SIZE = 128
#: Training: 8 videos (seeds 0-7) of 150 frames; a single video's few objects are learnt by heart.
VIDEO = SyntheticVideoConfig(height=SYNTHETIC_SIZE, width=SYNTHETIC_SIZE, length=150, max_speed=3.0, seed=0)
TRAINING_VIDEOS = 8
#: Evaluation: 4 other videos (seeds 100-103) of 120 frames.
TEST_VIDEO = replace(VIDEO, length=120, seed=100)
TEST_VIDEOS = 4
SYNTHETIC_MODEL = ModelConfig(feature="tiny", flow="tiny", num_classes=VIDEO.num_classes)

# --- the CamVid part ------------------------------------------------------------------------------
CAMVID_SIZE = (240, 320)  # half of 480×360, rounded to multiples of 16
CAMVID_MODEL = ModelConfig(feature="tiny", flow="tiny", num_classes=11)

#: F's pre-training, shared by both parts (F is fully convolutional; CamVid's frames are larger).
FLOW_DATA = FlyingShapesConfig(height=SYNTHETIC_SIZE, width=SYNTHETIC_SIZE, length=20000, max_displacement=16.0, seed=0)


#: Table 4's names: of the evaluation modes of the Frame model, and of the DFF variants.
METHODS = {
    "frame": "Frame",
    "copy": "copy (f_i = f_k)",
    "sff": "SFF (DIS flow, S = 1)",
    "dff": "DFF",
    "dff-fix-n": "DFF fix N",
    "dff-fix-f": "DFF fix F",
    "dff-separate": "DFF separate",
}


@dataclass(frozen=True)
class Stage:
    """One training run: a config and the function that trains it."""

    name: str
    config: TrainConfig | FlowTrainConfig

    def run(self, *, retrain: bool) -> tuple[Path, float]:
        """Train unless finished (or ``retrain``); the model's path and the training seconds (0 when reused)."""
        output = Path(self.config.output_dir)
        model = output / MODEL_NAME
        if model.is_file() and not retrain:
            print(f"[{self.name}] reusing {model}", flush=True)
            return model, 0.0
        shutil.rmtree(output, ignore_errors=True)
        print(f"[{self.name}] training {self.config.iterations} iterations", flush=True)
        start = time.perf_counter()
        path = train_flow(self.config) if isinstance(self.config, FlowTrainConfig) else train(self.config)
        return path, time.perf_counter() - start


def flow_stage(out: Path, model: ModelConfig, scale: float) -> Stage:
    return Stage(
        "flow pre-training",
        FlowTrainConfig(
            model=model,
            data=FLOW_DATA,
            iterations=max(1, round(2000 * scale)),
            batch_size=8,
            optimiser=OptimiserConfig(lr=0.01),
            checkpoint_every=1000,
            output_dir=str(out / "flow"),
            device="cpu",
            threads=THREADS,
        ),
    )


def segmentation_stages(
    out: Path, model: ModelConfig, data: TrainDataConfig, flow: Path, *, frame_iterations: int, dff_iterations: int, variants: tuple[str, ...]
) -> list[Stage]:
    """Frame first; the DFF variants start from its N and from the pre-trained F."""
    common = dict(model=model, data=data, batch_size=4, checkpoint_every=1000, device="cpu", threads=THREADS)
    frame = TrainConfig(
        variant="frame", iterations=frame_iterations, optimiser=OptimiserConfig(lr=LR), output_dir=str(out / "frame"), **common
    )
    frame_model = str(out / "frame" / MODEL_NAME)
    stages = [Stage("Frame", frame)]
    for variant in variants:
        iterations = 0 if variant == "dff-separate" else dff_iterations
        stages.append(
            Stage(
                variant,
                TrainConfig(
                    variant=variant,
                    iterations=iterations,
                    optimiser=OptimiserConfig(lr=LR),
                    init_network=frame_model,
                    init_flow=str(flow),
                    output_dir=str(out / variant),
                    **common,
                ),
            )
        )
    return stages


def evaluate(path: Path, video: VideoConfig, modes: tuple[str, ...]) -> list[ModeResult]:
    model, config = load_checkpoint(path)
    return evaluate_modes(model, config, video, modes=modes, key_interval=KEY_INTERVAL, device="cpu")  # type: ignore[arg-type]


def synthetic_part(out: Path, flow: Path, retrain: bool, scale: float) -> tuple[list[tuple[str, ModeResult]], dict[str, float]]:
    variants = ("dff", "dff-fix-n", "dff-fix-f", "dff-separate")
    data = TrainDataConfig(dataset="synthetic", synthetic=VIDEO, videos=TRAINING_VIDEOS, max_offset=9)
    stages = segmentation_stages(out, SYNTHETIC_MODEL, data, flow, frame_iterations=max(1, round(4000 * scale)), dff_iterations=max(1, round(5000 * scale)), variants=variants)
    seconds = {}
    models = {}
    for stage in stages:
        models[stage.name], seconds[stage.name] = stage.run(retrain=retrain)
    test = VideoConfig(dataset="synthetic", synthetic=TEST_VIDEO, videos=TEST_VIDEOS)
    rows = [("Frame", r) for r in evaluate(models["Frame"], test, ("frame", "copy", "sff"))]
    for variant in variants:
        rows.append((variant, evaluate(models[variant], test, ("dff",))[0]))
    return rows, seconds


def camvid_part(out: Path, flow: Path, retrain: bool, scale: float) -> tuple[list[tuple[str, ModeResult]], dict[str, float]]:
    data = TrainDataConfig(dataset="camvid", root=str(CAMVID), frames=(0, 70), resize=CAMVID_SIZE, max_offset=9)
    stages = segmentation_stages(out, CAMVID_MODEL, data, flow, frame_iterations=max(1, round(3000 * scale)), dff_iterations=max(1, round(3000 * scale)), variants=("dff",))
    seconds = {}
    models = {}
    for stage in stages:
        models[stage.name], seconds[stage.name] = stage.run(retrain=retrain)
    test = VideoConfig(dataset="camvid", root=str(CAMVID), frames=(70, 101), resize=CAMVID_SIZE)
    rows = [("Frame", r) for r in evaluate(models["Frame"], test, ("frame", "copy", "sff"))]
    rows.append(("dff", evaluate(models["dff"], test, ("dff",))[0]))
    return rows, seconds


def markdown(title: str, rows: list[tuple[str, ModeResult]], seconds: dict[str, float]) -> str:
    lines = [f"### {title}", "", "| method | model | l | mIoU (%) | fps (CPU) |", "|---|---|---|---|---|"]
    for model, r in rows:
        method = METHODS[model if r.mode == "dff" else r.mode]
        lines.append(f"| {method} | {model} | {r.key_interval} | {100 * r.miou:.1f} | {r.fps:.0f} |")
    lines += ["", "Training seconds: " + ", ".join(f"{name} {s:.0f}" for name, s in seconds.items()) + f" (total {sum(seconds.values()):.0f})"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "table4"))
    parser.add_argument("--part", choices=("synthetic", "camvid", "both"), default="both")
    parser.add_argument("--retrain", action="store_true", help="train every stage again")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's iterations (a quick check: 0.01)")
    args = parser.parse_args()
    out = Path(args.out)
    torch.set_num_threads(THREADS)
    flow, flow_seconds = flow_stage(out, SYNTHETIC_MODEL, args.scale).run(retrain=args.retrain)
    report: dict[str, object] = {}
    texts = []
    parts = {"synthetic": synthetic_part, "camvid": camvid_part}
    for name, part in parts.items():
        if args.part not in (name, "both"):
            continue
        if name == "camvid" and not CAMVID.is_dir():
            print(f"skipping CamVid: {CAMVID} is absent")
            continue
        rows, seconds = part(out / name, flow, args.retrain, args.scale)
        seconds = {"flow pre-training": flow_seconds, **seconds}
        print(table([r for _, r in rows]))
        texts.append(markdown(f"{name} (l = {KEY_INTERVAL})", rows, seconds))
        report[name] = {"results": [{"model": m, **r.__dict__} for m, r in rows], "training_seconds": seconds}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print("\n\n".join(texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
