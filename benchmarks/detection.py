"""Detection with Deep Feature Flow on this machine's CPU: Table 4's variants for R-FCN at l = 5 and 10, over seeds.

At toy scale, as Table 4 for ImageNet VID: tiny networks, R-FCN head, 128×128 synthetic videos whose
objects move fast (up to 5 pixels per frame, several feature cells between key frames at l = 10),
leave and re-enter the frame in part, and occlude each other (6 objects). N_feat has output stride 8
(``ModelConfig.output_stride``: conv4 dilated as well): at stride 16 the grid is 8×8 cells and an
object 2–3.5 cells wide, too coarse for warped features to carry it (``--bound`` measures that). F is pre-trained once on
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
    nice python benchmarks/detection.py --pair-steps 900 --task-gradient-scale 0.1 --out runs/detection-slow-n
                                                         # longer pair stages, N trained 10x slower than F in DFF
    python benchmarks/detection.py --objects 3 --max-speed 4 --pair-steps 2700 --out runs/detection-3
                                                         # less occlusion, longer pair stages (benchmarks/README.md)
    nice python benchmarks/detection.py --bound --output-stride 16   # the cheap check of a set-up: Frame only, then
                                                         # Frame, copy and Frame's N + exact flow (--size for larger frames)

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
from dataclasses import asdict, dataclass, replace
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
TRAINING_VIDEOS = 6  # seeds 0-5: a single video's few objects are learnt by heart
TEST_VIDEOS = 2  # seeds 100, 101
TEST_LENGTH = 80
#: Annotated test frames: every 4th from 9 on, so every l = 10 pair exists.
TEST_FRAMES = range(9, TEST_LENGTH, 4)


@dataclass(frozen=True, kw_only=True)
class SetUp:
    """Frame size and feature grid: objects are a fixed share of the frame (:class:`SyntheticVideoConfig`) and
    move 5 px per frame at 128 px, scaled with the frame (up to ~3 cells of 16 px in 9 frames, camera motion on top)."""

    size: int = 128
    output_stride: int = 8
    objects: int = 6
    speed: float = 5.0  # the fastest object's pixels per frame at 128 px

    @property
    def video(self) -> SyntheticVideoConfig:
        """A training video (seed 0); 6 objects by default, so they occlude."""
        return SyntheticVideoConfig(
            height=self.size, width=self.size, length=100, num_objects=self.objects, max_speed=self.speed * self.size / 128, seed=0
        )

    @property
    def test_video(self) -> SyntheticVideoConfig:
        return replace(self.video, length=TEST_LENGTH, seed=100)

    @property
    def model(self) -> ModelConfig:
        video = self.video
        return ModelConfig(
            task="detection", feature="tiny", flow="tiny", num_classes=video.num_classes, output_stride=self.output_stride,  # type: ignore[arg-type]
            class_names=SyntheticVideo(video).class_names,
        )


#: Iterations at --scale 1 (batch sizes: 8 flow pairs, 4 detection pairs).
ITERATIONS = {"flow": 1200, "frame": 1000, "pairs": 300}
LR = {"flow": 0.02, "frame": 0.02, "pairs": 0.01}
MAX_OFFSET = 9  # pairs 0 ≤ i − k ≤ 9 (Section 5.1: k random in [i − 9, i])
SEEDS = (0, 1, 2)
#: Variants trained on pairs from Frame's N and the pre-trained F: the parts each keeps fixed.
N_PARTS = ("feature_net", "task_net")
PAIR_VARIANTS = {"DFF": (), "DFF fix N": N_PARTS, "DFF fix F": ("flow_net",)}


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


def training_videos(setup: SetUp) -> list[SyntheticVideo]:
    return [SyntheticVideo(replace(setup.video, seed=s)) for s in range(TRAINING_VIDEOS)]


def pretrain_flow(setup: SetUp, output: Path, iterations: int) -> Path:
    """F alone on :class:`VideoFlowPairs` with the end-point error (``dff train-flow``'s objective)."""
    torch.manual_seed(0)
    config = setup.model
    model = build_model(config)
    for part in ("feature_net", "task_net"):
        getattr(model, part).requires_grad_(False)
    run = RunConfig(
        iterations=iterations, output_dir=str(output), optimiser=OptimiserConfig(lr=LR["flow"]), batch_size=8, checkpoint_every=10**6,
        device="cpu", threads=THREADS,
    )
    group = start(run.device)
    try:
        return run_training(
            objective=FlowObjective(flow_net=model.flow_net, normalizer=FrameNormalizer(mean=config.mean, std=config.std)),
            model=model, model_config=config, dataset=FlowPairDataset(VideoFlowPairs(training_videos(setup))),  # type: ignore[arg-type]
            settings=run, group=group, resume=False, run_description=run.run_description(), collate=collate_flow,
        )
    finally:
        stop(group)


def held_out_videos(setup: SetUp) -> list[SyntheticVideo]:
    test = setup.test_video
    return [SyntheticVideo(replace(test, seed=test.seed + v)) for v in range(TEST_VIDEOS)]


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


def train_frame(setup: SetUp, seed: int, out: Path, iterations: int) -> Path:
    """*Frame*: N alone on single frames of the training videos (F fixed); the model's path."""

    def train() -> Path:
        torch.manual_seed(seed)
        return train_detector(
            build_detection_model(setup.model), sequences=[SyntheticBoxes(v) for v in training_videos(setup)],
            settings=settings(out / "frame", iterations, LR["frame"], seed), model_config=setup.model, max_offset=0,
            frozen_parts=("flow_net",),
        )

    return run_stage(f"seed {seed} Frame", out / "frame", train)


def evaluate(setup: SetUp, model: torch.nn.Module, label: str, *, mode: str, key_interval: int) -> dict:
    """One row of the table on the held-out videos, printed as it comes."""
    test = [AnnotatedFrames(SyntheticBoxes(v), TEST_FRAMES) for v in held_out_videos(setup)]
    start = time.perf_counter()
    r = evaluate_detection(model, test, mode=mode, key_interval=key_interval, mean=setup.model.mean, std=setup.model.std)  # type: ignore[arg-type]
    print(f"[{label}] l={key_interval}: mAP {100 * r.mean_ap:.1f} ({time.perf_counter() - start:.0f} s)", flush=True)
    return asdict(r)


def scale_gradients(model: torch.nn.Module, parts: Sequence[str], factor: float) -> torch.nn.Module:
    """``model`` with the gradients of ``parts`` multiplied by ``factor`` (about ``factor`` times their learning rate
    under SGD with momentum): N trained slower than F on pairs keeps more of what it learnt on single frames."""
    if factor != 1.0:
        for part in parts:
            for parameter in getattr(model, part).parameters():
                parameter.register_hook(lambda gradient: gradient * factor)
    return model


def run_seed(setup: SetUp, seed: int, out: Path, flow: Path, iterations: dict[str, int], *, task_gradient_scale: float = 1.0) -> dict:
    """Train and evaluate every variant for one seed; the seed's results (cached in ``out/results.json``).
    ``task_gradient_scale``: N's gradients in *DFF* (:func:`scale_gradients`)."""
    cached = out / "results.json"
    if cached.is_file():
        print(f"[seed {seed}] reusing {cached}", flush=True)
        return json.loads(cached.read_text())
    config = setup.model
    train_videos = [SyntheticBoxes(v) for v in training_videos(setup)]
    frame = train_frame(setup, seed, out, iterations["frame"])

    def from_frame() -> torch.nn.Module:
        model, _ = load_detector(frame)
        load_parts(model, config, flow, FLOW_PARTS)
        return model

    models = {"Frame": load_detector(frame)[0], "DFF separate": from_frame().eval()}
    for name, fixed in PAIR_VARIANTS.items():
        folder = out / name.lower().replace(" ", "_")
        path = run_stage(
            f"seed {seed} {name}", folder,
            lambda: train_detector(
                scale_gradients(from_frame(), N_PARTS if name == "DFF" else (), task_gradient_scale), sequences=train_videos,
                settings=settings(folder, iterations["pairs"], LR["pairs"], seed),
                model_config=config, max_offset=MAX_OFFSET, frozen_parts=fixed,
            ),
        )
        models[name] = load_detector(path)[0]

    runs = [("Frame", "Frame", "frame", 1)] + [
        (method, trained, mode, l)
        for l in KEY_INTERVALS
        for method, trained, mode in [("copy", "Frame", "copy"), ("DFF separate", "DFF separate", "dff")]
        + [(name, name, "dff") for name in PAIR_VARIANTS]
    ]
    results = [
        {"method": method, **evaluate(setup, models[trained], f"seed {seed} eval {method}", mode=mode, key_interval=l)}
        for method, trained, mode, l in runs
    ]
    normalizer = FrameNormalizer(mean=config.mean, std=config.std)
    flows = [
        {"model": name, **asdict(flow_on_objects(models[name], held_out_videos(setup), offset=l - 1, frames=TEST_FRAMES, normalizer=normalizer))}
        for name in ("DFF separate", *[n for n in PAIR_VARIANTS if n != "DFF fix F"])
        for l in KEY_INTERVALS
    ]
    report = {"seed": seed, "iterations": iterations, "task_gradient_scale": task_gradient_scale, "results": results, "flow": flows}
    out.mkdir(parents=True, exist_ok=True)
    write_json(cached, report)
    return report


def exact_flow_results(setup: SetUp, out: Path, seeds: Sequence[int]) -> list[dict]:
    """Frame's N with the exact flow of the test videos, S = 1 (what perfect motion gives without joint training), per seed and l."""
    config = setup.model
    rows = []
    for seed in seeds:
        model, _ = load_detector(out / f"seed{seed}" / "frame" / MODEL_NAME)
        model.flow_net = ExactFlow(
            held_out_videos(setup), normalizer=FrameNormalizer(mean=config.mean, std=config.std), channels=config.channels,
            feature_stride=config.output_stride,
        )
        for l in KEY_INTERVALS:
            r = evaluate(setup, model, f"seed {seed} eval Frame's N + exact flow", mode="dff", key_interval=l)
            rows.append({"seed": seed, "key_interval": l, "mean_ap": r["mean_ap"]})
    return rows


def stale_shares(setup: SetUp, *, follow_motion: bool = False) -> dict[int, float]:
    """Per i − k = l − 1, the share of objects whose key-frame box misses (:func:`stale_box_share`), over the test videos."""
    videos = held_out_videos(setup)
    return {
        l - 1: float(np.mean([stale_box_share(v, offset=l - 1, frames=TEST_FRAMES, follow_motion=follow_motion) for v in videos]))
        for l in KEY_INTERVALS
    }


def bound(setup: SetUp, out: Path, seed: int, iterations: int) -> dict:
    """The cheap check of a set-up: Frame alone, then Frame, copy and Frame's N + exact flow per l (no F, no pairs)."""
    model, _ = load_detector(train_frame(setup, seed, out / f"seed{seed}", iterations))
    rows = {"Frame": evaluate(setup, model, f"seed {seed} bound Frame", mode="frame", key_interval=1)["mean_ap"]}
    for l in KEY_INTERVALS:
        rows[f"copy l={l}"] = evaluate(setup, model, f"seed {seed} bound copy", mode="copy", key_interval=l)["mean_ap"]
    for row in exact_flow_results(setup, out, [seed]):
        rows[f"exact flow l={row['key_interval']}"] = row["mean_ap"]
    return {"size": setup.size, "output_stride": setup.output_stride, "seed": seed, "frame_iterations": iterations, "mean_ap": rows,
            "stale_box_share": stale_shares(setup), "moved_box_share": stale_shares(setup, follow_motion=True)}


def spread(values: Sequence[float]) -> str:
    return f"{np.mean(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


def markdown(setup: SetUp, reports: Sequence[dict], stale: dict[int, float], moved: dict[int, float], exact: Sequence[dict]) -> str:
    seeds = [r["seed"] for r in reports]
    methods = ["Frame", "DFF", "DFF fix N", "DFF fix F", "DFF separate", "copy"]
    lines = [
        f"### Detection, synthetic videos {setup.size}x{setup.size}, output stride {setup.output_stride}, seeds {seeds}: "
        "mAP@0.5 (%), mean [min, max] over seeds",
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
        "",
        "Stale even after moving each key-frame box by its object's exact mean flow (occlusion, the border, objects not yet "
        "in the key frame): " + ", ".join(f"{100 * share:.0f}% at i − k = {d}" for d, share in moved.items()),
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
    parser.add_argument("--size", type=int, default=SetUp.size, help="frame side in pixels (a multiple of 16)")
    parser.add_argument("--output-stride", type=int, choices=(8, 16), default=SetUp.output_stride, help="N_feat's output stride")
    parser.add_argument("--objects", type=int, default=SetUp.objects, help="objects per video")
    parser.add_argument("--max-speed", type=float, default=SetUp.speed, help="fastest object's pixels per frame at 128 px")
    parser.add_argument("--pair-steps", type=int, help=f"iterations of the pair variants (default {ITERATIONS['pairs']}, times --scale)")
    parser.add_argument(
        "--task-gradient-scale", type=float, default=1.0, help="multiply N's gradients in DFF's pair training (0.1: N learns 10x slower than F)"
    )
    parser.add_argument(
        "--bound", action="store_true", help="only the cheap check of the set-up: Frame, copy and Frame's N + exact flow (first seed)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    setup = SetUp(size=args.size, output_stride=args.output_stride, objects=args.objects, speed=args.max_speed)
    torch.set_num_threads(THREADS)
    iterations = {name: max(1, round(n * args.scale)) for name, n in ITERATIONS.items()}
    if args.pair_steps is not None:
        iterations["pairs"] = args.pair_steps
    if args.bound:
        report = bound(setup, out, args.seeds[0], iterations["frame"])
        write_json(out / "bound.json", report)
        print(json.dumps(report, indent=2))
        return 0
    flow = run_stage("flow pre-training", out / "video_flow", lambda: pretrain_flow(setup, out / "video_flow", iterations["flow"]))
    reports = [
        run_seed(setup, seed, out / f"seed{seed}", flow, iterations, task_gradient_scale=args.task_gradient_scale) for seed in args.seeds
    ]
    stale, moved = stale_shares(setup), stale_shares(setup, follow_motion=True)
    exact = exact_flow_results(setup, out, args.seeds)
    write_json(out / "results.json", {"reports": reports, "stale_box_share": stale, "moved_box_share": moved, "exact_flow": exact})
    print(markdown(setup, reports, stale, moved, exact))
    return 0


if __name__ == "__main__":
    sys.exit(main())
