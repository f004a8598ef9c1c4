"""Detection with Deep Feature Flow on this machine's CPU: Table 4's variants for R-FCN at l = 5 and 10, over seeds.

At toy scale, as Table 4 for ImageNet VID: tiny networks, R-FCN head, 128×128 synthetic videos whose
objects move fast (up to 5 pixels per frame, several feature cells between key frames at l = 10),
leave and re-enter the frame in part, and occlude each other (6 objects). F is pre-trained once on
the training videos' exact flow (shared by every seed; see :class:`VideoFlowPairs`); per seed *Frame* trains N on single
frames of 6 training videos, then *DFF* (everything), *DFF fix N* (F only) and *DFF fix F* (N only)
start from Frame's N and the pre-trained F and train on pairs 0 ≤ i − k ≤ 9 (Section 5.1).
*DFF separate* is Frame's N with the pre-trained F untrained jointly; *copy* reuses f_k (f_i = f_k).
Evaluated on 2 held-out videos by the paper's protocol (l pairs per annotated frame, every 4th frame
annotated) at l = 5 and l = 10, mAP@0.5 as mean and min–max over the seeds; also Frame's N with the
exact flow and no joint training. F's motion on the objects is checked against the exact flow
(:mod:`dff.detection.flow_check`).

    nice python benchmarks/detection.py                  # 3 seeds into runs/detection, one after another
    nice python benchmarks/detection.py --seeds 1        # one seed (run seeds in parallel, then all to gather)
    python benchmarks/detection.py --scale 0.02          # a quick check of the whole pipeline

A finished stage (its ``model.safetensors``) and a finished seed (its ``results.json``) are reused.
Results go to ``OUT/results.json`` and, as Markdown, to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dff.config import ModelConfig  # noqa: E402
from dff.data.flying_shapes import FlowSample  # noqa: E402
from dff.data.pairs import FlowPairDataset  # noqa: E402
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig  # noqa: E402
from dff.detection.evaluate import evaluate_detection  # noqa: E402
from dff.detection.flow_check import ExactFlow, flow_on_objects, stale_box_share  # noqa: E402
from dff.detection.ground_truth import AnnotatedFrames, SyntheticBoxes  # noqa: E402
from dff.detection.model import build_detection_model  # noqa: E402
from dff.detection.train import load_detector, train_detector  # noqa: E402
from dff.models.preprocess import FrameNormalizer  # noqa: E402
from dff.models import build_model  # noqa: E402
from dff.train.config import RunConfig  # noqa: E402
from dff.train.data import collate_flow  # noqa: E402
from dff.train.distributed import start, stop  # noqa: E402
from dff.train.loop import MODEL_NAME, run_training  # noqa: E402
from dff.train.objectives import FlowObjective  # noqa: E402
from dff.train.parts import FLOW_PARTS, load_parts  # noqa: E402
from dff.train.schedule import OptimiserConfig  # noqa: E402

KEY_INTERVALS = (10, 5)  # ImageNet VID's l (Section 5.2), then Cityscapes'
#: One thread: on a CPU shared with other jobs, a second thread mostly waits for a core.
THREADS = 1
SIZE = 128
#: Fast objects (5 px/frame: up to ~3 feature cells in 9 frames, camera motion on top), 6 of them so they occlude.
VIDEO = SyntheticVideoConfig(height=SIZE, width=SIZE, length=100, num_objects=6, max_speed=5.0, seed=0)
TRAINING_VIDEOS = 6  # seeds 0-5: a single video's few objects are learnt by heart
TEST_VIDEO = replace(VIDEO, length=80, seed=100)
TEST_VIDEOS = 2  # seeds 100, 101
#: Annotated test frames: every 4th from 9 on, so every l = 10 pair exists.
TEST_FRAMES = range(9, TEST_VIDEO.length, 4)
MODEL = ModelConfig(
    task="detection", feature="tiny", flow="tiny", num_classes=VIDEO.num_classes, class_names=SyntheticVideo(VIDEO).class_names
)
#: Iterations at --scale 1 (batch sizes: 8 flow pairs, 4 detection pairs).
ITERATIONS = {"flow": 1200, "frame": 1000, "pairs": 300}
LR = {"flow": 0.02, "frame": 0.02, "pairs": 0.01}
MAX_OFFSET = 9  # pairs 0 ≤ i − k ≤ 9 (Section 5.1: k random in [i − 9, i])
SEEDS = (0, 1, 2)
#: Variants trained on pairs from Frame's N and the pre-trained F: the parts each keeps fixed.
PAIR_VARIANTS = {"DFF": (), "DFF fix N": ("feature_net", "task_net"), "DFF fix F": ("flow_net",)}


class VideoFlowPairs:
    """F's pre-training pairs: (I_{i-d}, I_i), 1 ≤ d ≤ 9, of the training videos with their exact flow M_{i→k}.

    Flying shapes (our Flying Chairs) taught the tiny F almost no motion of these videos in 800
    steps (|M| 0.03 cells on objects moving 1.2); the videos' own exact flow is synthetic flow of
    the target domain, as FlyingThings or Sintel would be for real video.
    """

    def __init__(self, videos: Sequence[SyntheticVideo], *, length: int = 20000, seed: int = 0) -> None:
        self.videos = list(videos)
        self.length = length
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, n: int) -> FlowSample:
        rng = np.random.default_rng([self.seed, n])
        video = self.videos[int(rng.integers(len(self.videos)))]
        i = int(rng.integers(MAX_OFFSET, len(video)))
        k = i - int(rng.integers(1, MAX_OFFSET + 1))
        return FlowSample(key=video.image(k), current=video.image(i), flow=video.flow(current=i, key=k), visible=video.visible(current=i, key=k))


def pretrain_flow(output: Path, iterations: int) -> Path:
    """F alone on :class:`VideoFlowPairs` with the end-point error (``dff train-flow``'s objective)."""
    torch.manual_seed(0)
    model = build_model(MODEL)
    for part in ("feature_net", "task_net"):
        getattr(model, part).requires_grad_(False)
    run = RunConfig(
        iterations=iterations, output_dir=str(output), optimiser=OptimiserConfig(lr=LR["flow"]), batch_size=8, checkpoint_every=10**6,
        device="cpu", threads=THREADS,
    )
    group = start(run.device)
    try:
        return run_training(
            objective=FlowObjective(flow_net=model.flow_net, normalizer=FrameNormalizer(mean=MODEL.mean, std=MODEL.std)),
            model=model, model_config=MODEL, dataset=FlowPairDataset(VideoFlowPairs([SyntheticVideo(replace(VIDEO, seed=s)) for s in range(TRAINING_VIDEOS)])),  # type: ignore[arg-type]
            settings=run, group=group, resume=False, run_description=run.run_description(), collate=collate_flow,
        )
    finally:
        stop(group)


def held_out_videos() -> list[SyntheticVideo]:
    return [SyntheticVideo(replace(TEST_VIDEO, seed=TEST_VIDEO.seed + v)) for v in range(TEST_VIDEOS)]


def run_stage(name: str, output: Path, train: Callable[[], Path]) -> Path:
    """Train unless finished; the model's path."""
    model = output / MODEL_NAME
    if model.is_file():
        print(f"[{name}] reusing {model}", flush=True)
        return model
    shutil.rmtree(output, ignore_errors=True)
    print(f"[{name}] training", flush=True)
    start = time.perf_counter()
    path = train()
    print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)
    return path


def settings(output: Path, iterations: int, lr: float, seed: int) -> RunConfig:
    return RunConfig(
        iterations=iterations, output_dir=str(output), optimiser=OptimiserConfig(lr=lr), batch_size=4, checkpoint_every=10**6,
        device="cpu", threads=THREADS, seed=seed,
    )


def write_json(path: Path, value: object) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(value, indent=2))
    os.replace(partial, path)


def run_seed(seed: int, out: Path, flow: Path, iterations: dict[str, int]) -> dict:
    """Train and evaluate every variant for one seed; the seed's results (cached in ``out/results.json``)."""
    cached = out / "results.json"
    if cached.is_file():
        print(f"[seed {seed}] reusing {cached}", flush=True)
        return json.loads(cached.read_text())
    train_videos = [SyntheticBoxes(SyntheticVideo(replace(VIDEO, seed=s))) for s in range(TRAINING_VIDEOS)]

    def train_frame() -> Path:
        torch.manual_seed(seed)
        return train_detector(
            build_detection_model(MODEL), sequences=train_videos, settings=settings(out / "frame", iterations["frame"], LR["frame"], seed),
            model_config=MODEL, max_offset=0, frozen_parts=("flow_net",),
        )

    frame = run_stage(f"seed {seed} Frame", out / "frame", train_frame)

    def from_frame() -> torch.nn.Module:
        model, _ = load_detector(frame)
        load_parts(model, MODEL, flow, FLOW_PARTS)
        return model

    models = {"Frame": load_detector(frame)[0], "DFF separate": from_frame().eval()}
    for name, fixed in PAIR_VARIANTS.items():
        folder = out / name.lower().replace(" ", "_")
        path = run_stage(
            f"seed {seed} {name}", folder,
            lambda: train_detector(
                from_frame(), sequences=train_videos, settings=settings(folder, iterations["pairs"], LR["pairs"], seed),
                model_config=MODEL, max_offset=MAX_OFFSET, frozen_parts=fixed,
            ),
        )
        models[name] = load_detector(path)[0]

    test_videos = held_out_videos()
    test = [AnnotatedFrames(SyntheticBoxes(v), TEST_FRAMES) for v in test_videos]
    runs = [("Frame", "Frame", "frame", 1)] + [
        (method, trained, mode, l)
        for l in KEY_INTERVALS
        for method, trained, mode in [("copy", "Frame", "copy"), ("DFF separate", "DFF separate", "dff")]
        + [(name, name, "dff") for name in PAIR_VARIANTS]
    ]
    results = []
    for method, trained, mode, l in runs:
        start = time.perf_counter()
        r = evaluate_detection(models[trained], test, mode=mode, key_interval=l, mean=MODEL.mean, std=MODEL.std)  # type: ignore[arg-type]
        print(f"[seed {seed} eval] {method} l={l}: mAP {100 * r.mean_ap:.1f} ({time.perf_counter() - start:.0f} s)", flush=True)
        results.append({"method": method, **asdict(r)})
    normalizer = FrameNormalizer(mean=MODEL.mean, std=MODEL.std)
    flows = [
        {"model": name, **asdict(flow_on_objects(models[name], test_videos, offset=l - 1, frames=TEST_FRAMES, normalizer=normalizer))}
        for name in ("DFF separate", *[n for n in PAIR_VARIANTS if n != "DFF fix F"])
        for l in KEY_INTERVALS
    ]
    report = {"seed": seed, "iterations": iterations, "results": results, "flow": flows}
    out.mkdir(parents=True, exist_ok=True)
    write_json(cached, report)
    return report


def exact_flow_results(out: Path, seeds: Sequence[int]) -> list[dict]:
    """Frame's N with the exact flow of the test videos, S = 1 (what perfect motion gives without joint training), per seed and l."""
    videos = held_out_videos()
    test = [AnnotatedFrames(SyntheticBoxes(v), TEST_FRAMES) for v in videos]
    rows = []
    for seed in seeds:
        model, _ = load_detector(out / f"seed{seed}" / "frame" / MODEL_NAME)
        model.flow_net = ExactFlow(videos, normalizer=FrameNormalizer(mean=MODEL.mean, std=MODEL.std), channels=MODEL.channels)
        for l in KEY_INTERVALS:
            r = evaluate_detection(model, test, mode="dff", key_interval=l, mean=MODEL.mean, std=MODEL.std)
            print(f"[seed {seed} eval] Frame's N + exact flow l={l}: mAP {100 * r.mean_ap:.1f}", flush=True)
            rows.append({"seed": seed, "key_interval": l, "mean_ap": r.mean_ap})
    return rows


def spread(values: Sequence[float]) -> str:
    return f"{np.mean(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


def markdown(reports: Sequence[dict], stale: dict[int, float], exact: Sequence[dict]) -> str:
    seeds = [r["seed"] for r in reports]
    methods = ["Frame", "DFF", "DFF fix N", "DFF fix F", "DFF separate", "copy"]
    lines = [
        f"### Detection, synthetic videos {SIZE}x{SIZE}, seeds {seeds}: mAP@0.5 (%), mean [min, max] over seeds",
        "",
        "| method | " + " | ".join(f"l = {l}" for l in KEY_INTERVALS) + " |",
        "|---|" + "---|" * len(KEY_INTERVALS),
    ]
    for method in methods:
        cells = []
        for l in KEY_INTERVALS:
            found = [100 * x["mean_ap"] for r in reports for x in r["results"] if x["method"] == method and (method == "Frame" or x["key_interval"] == l)]
            cells.append(spread(found))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("| Frame's N + exact flow, no joint training | " + " | ".join(spread([100 * x["mean_ap"] for x in exact if x["key_interval"] == l]) for l in KEY_INTERVALS) + " |")
    lines += [
        "",
        "How hard for copying: objects whose box in the key frame has IoU < 0.5 with their box in frame i: "
        + ", ".join(f"{100 * share:.0f}% at i − k = {d}" for d, share in stale.items()),
    ]
    lines += [
        "",
        "F on the objects' cells of the test videos (feature cells; mean over seeds): true |M|, F's |M|, end-point error, mean |S − 1|",
        "",
        "| F of | i − k | true \\|M\\| | \\|M\\| | EPE | \\|S − 1\\| |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("DFF separate", "DFF", "DFF fix N"):
        for l in KEY_INTERVALS:
            rows = [f for r in reports for f in r["flow"] if f["model"] == name and f["offset"] == l - 1]
            mean = {key: np.mean([f[key] for f in rows]) for key in ("true_motion", "predicted_motion", "end_point_error", "scale_deviation")}
            lines.append(
                f"| {name} | {l - 1} | {mean['true_motion']:.2f} | {mean['predicted_motion']:.2f} | {mean['end_point_error']:.2f} | {mean['scale_deviation']:.3f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "detection"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's iterations (a quick check: 0.02)")
    args = parser.parse_args()
    out = Path(args.out)
    torch.set_num_threads(THREADS)
    iterations = {name: max(1, round(n * args.scale)) for name, n in ITERATIONS.items()}
    flow = run_stage("flow pre-training", out / "video_flow", lambda: pretrain_flow(out / "video_flow", iterations["flow"]))
    reports = [run_seed(seed, out / f"seed{seed}", flow, iterations) for seed in args.seeds]
    test_videos = held_out_videos()
    stale = {l - 1: float(np.mean([stale_box_share(v, offset=l - 1, frames=TEST_FRAMES) for v in test_videos])) for l in KEY_INTERVALS}
    exact = exact_flow_results(out, args.seeds)
    write_json(out / "results.json", {"reports": reports, "stale_box_share": stale, "exact_flow": exact})
    print(markdown(reports, stale, exact))
    return 0


if __name__ == "__main__":
    sys.exit(main())
