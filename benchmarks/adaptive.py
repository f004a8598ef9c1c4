"""Adaptive key frames against a fixed interval at equal cost (issue 16), on held-out videos with exact labels.

Exports the shipped demo model (4 classes, trained on synthetic video), calibrates
:class:`~dff.runtime.adaptive.AdaptiveInterval` on training episodic videos (seeds 1000-1003), then on held-out
episodic videos (still stretches, fast motion, hard cuts; seeds from 2000, ``--seeds`` sets of ``--videos``
each) runs the real runtime (ONNX Runtime, one thread) with fixed l = 1 … 10 and with the adaptive scheduler
at several rates, deciding before F and after F, and reports for each: measured key-frame share, share of
frames that ran F, ms per frame, mIoU over all frames and the 5th percentile of per-frame mIoU, mean and
spread over the seed sets. Adaptive is compared with the fixed curve interpolated at the same measured key
share (and at the same measured ms per frame): Δ mIoU, Δ p5, and the key frames it saves at equal mIoU.
``--camvid`` adds CamVid 0016E5 (labels on every frame) with a model trained there for the purpose.

    nice python benchmarks/adaptive.py                       # synthetic part, ~15 min on a shared 2-core CPU
    nice python benchmarks/adaptive.py --plot benchmarks/adaptive.png --json adaptive.json
    nice python benchmarks/adaptive.py --part cost --size 240 320   # the scheduler's cost alone, and per piece, ~3 min
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dff.data.camvid import camvid_sequences  # noqa: E402
from dff.data.episodes import EpisodicVideo, EpisodicVideoConfig  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.manifest import load_manifest  # noqa: E402
from dff.eval.scheduled import ScheduleScore, run_in_order  # noqa: E402
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend  # noqa: E402
from dff.runtime.adaptive import AdaptiveInterval, Calibration  # noqa: E402
from dff.runtime.scheduler import KeyFrameScheduler  # noqa: E402
from dff.runtime.adaptive_calibration import calibrate  # noqa: E402
from dff.runtime.adaptive_signals import cut_score, thumbnail  # noqa: E402

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"
CAMVID = REPO.parent / "shared" / "data" / "camvid_0016E5"
CAMVID_SIZE = (240, 320)  # as benchmarks/table4.py trains it
FIXED = tuple(range(1, 11))  # l = 1 (every frame a key frame) is the ceiling of any schedule
RATES = (0.1, 0.125, 0.15, 0.2, 0.25, 0.3)
#: The calibration's pairs span up to MAX_INTERVAL frames; the adaptive schedules' own limit is --max-interval (default
#: the same).
MAX_INTERVAL = 20
MakeScheduler = Callable[[], KeyFrameScheduler]


@dataclass(frozen=True)
class Clip:
    """A labelled video held in memory (frames rendered or read once, shared by every run)."""

    images: list[np.ndarray]
    labels: list[np.ndarray]
    cuts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.images)

    def image(self, t: int) -> np.ndarray:
        return self.images[t]

    def label(self, t: int) -> np.ndarray:
        return self.labels[t]


@dataclass(frozen=True)
class Run:
    """One schedule over one seed's clips."""

    schedule: str
    seed: int
    key_share: float
    flow_share: float
    ms_per_frame: float
    miou: float
    p5_frame_miou: float
    cut_keys_late: int  # cuts whose key frame came later than the cut frame itself


def run_schedule(backend, clips: list[Clip], make: MakeScheduler, num_classes: int) -> tuple[float, float, float, float, float, int]:
    score = ScheduleScore(num_classes=num_classes)
    late = 0
    for clip in clips:
        keys = run_in_order(DeepFeatureFlowRuntime(backend=backend, scheduler=make()), clip.images, clip.labels, score)
        late += sum(not keys[c] for c in clip.cuts)
    return score.key_share, score.flow_share, score.ms_per_frame, 100 * score.miou, 100 * score.p5_frame_miou, late


def load_clips(seed: int, videos: int, length: int, size: tuple[int, int], num_classes: int) -> list[Clip]:
    clips = []
    for j in range(videos):
        video = EpisodicVideo.random(
            EpisodicVideoConfig(length=length, height=size[0], width=size[1], num_classes=num_classes, seed=seed * 10 + j)
        )
        clips.append(Clip([video.image(t) for t in range(len(video))], [video.label(t) for t in range(len(video))], video.cuts))
    return clips


def interpolate(xs: list[float], ys: list[float], x: float) -> float:
    order = np.argsort(xs)
    return float(np.interp(x, np.asarray(xs)[order], np.asarray(ys)[order]))


def summarise(runs: list[Run]) -> dict[str, dict[str, tuple[float, float]]]:
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for name in dict.fromkeys(r.schedule for r in runs):
        rows = [r for r in runs if r.schedule == name]
        table[name] = {
            field: (float(np.mean([getattr(r, field) for r in rows])), float(np.std([getattr(r, field) for r in rows])))
            for field in ("key_share", "flow_share", "ms_per_frame", "miou", "p5_frame_miou")
        }
    return table


def compare(runs: list[Run]) -> list[dict[str, float | str]]:
    """Each adaptive schedule against the fixed curve of its own seed, at equal key share and equal ms per frame."""
    rows = []
    seeds = sorted({r.seed for r in runs})
    for name in dict.fromkeys(r.schedule for r in runs if not r.schedule.startswith("fixed")):
        deltas = {k: [] for k in ("miou", "p5", "miou_time", "saved")}
        share = []
        for seed in seeds:
            fixed = [r for r in runs if r.seed == seed and r.schedule.startswith("fixed")]
            run = next(r for r in runs if r.seed == seed and r.schedule == name)
            shares, mious, p5s, times = ([getattr(r, f) for r in fixed] for f in ("key_share", "miou", "p5_frame_miou", "ms_per_frame"))
            deltas["miou"].append(run.miou - interpolate(shares, mious, run.key_share))
            deltas["p5"].append(run.p5_frame_miou - interpolate(shares, p5s, run.key_share))
            deltas["miou_time"].append(run.miou - interpolate(times, mious, run.ms_per_frame))
            # The key share fixed l needs for the adaptive mIoU (mIoU rises with the share along the curve).
            equal = interpolate(mious, shares, run.miou)
            deltas["saved"].append(100 * (1 - run.key_share / equal))
            share.append(run.key_share)
        row: dict[str, float | str] = {"schedule": name, "key_share": float(np.mean(share))}
        for k, values in deltas.items():
            row[k] = float(np.mean(values))
            row[k + "_std"] = float(np.std(values))
        rows.append(row)
    return rows


def plot(runs: list[Run], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dff.benchmark.plot import save_figure

    table = summarise(runs)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, field, label in ((axes[0], "miou", "mIoU (%)"), (axes[1], "p5_frame_miou", "5th percentile of per-frame mIoU (%)")):
        for family, style in (("fixed", "o-"), ("adaptive-before", "s-"), ("adaptive-after", "^-")):
            names = [n for n in table if n.startswith(family)]
            if not names:
                continue
            xs = [table[n]["key_share"][0] for n in names]
            ys = [table[n][field][0] for n in names]
            errors = [table[n][field][1] for n in names]
            order = np.argsort(xs)
            axis.errorbar(np.asarray(xs)[order], np.asarray(ys)[order], yerr=np.asarray(errors)[order], fmt=style, capsize=3, label=family)
        axis.set_xlabel("measured key-frame share")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(title)
    save_figure(figure, path)


def schedules(calibration: Calibration, max_interval: int = MAX_INTERVAL) -> dict[str, MakeScheduler]:
    made: dict[str, MakeScheduler] = {f"fixed l={l}": (lambda l=l: FixedInterval(l)) for l in FIXED}
    for decide in ("before", "after"):
        for rate in RATES:
            made[f"adaptive-{decide} rate={rate:g}"] = lambda rate=rate, decide=decide: AdaptiveInterval(
                rate=rate, max_interval=max_interval, calibration=calibration, decide=decide
            )
    return made


def longest_shot(clip: Clip, frames: int = 60) -> list[np.ndarray]:
    """Up to ``frames`` frames of the clip's longest stretch without a cut."""
    bounds = [0, *clip.cuts, len(clip)]
    start, stop = max(zip(bounds, bounds[1:]), key=lambda b: b[1] - b[0])
    return clip.images[start : min(stop, start + frames)]


def scheduler_cost(backend, clip: Clip, calibration, repeats: int = 5) -> tuple[float, float]:
    """Median µs per frame of the adaptive scheduler's own work (thumbnail, cut test, reading the statistics,
    decision) and median ms of a non-key frame with a fixed interval (upload, F, W, N_task, download).

    Both are whole runtime frames, so the scheduler works where the runtime calls it (after the upload, next to
    F): the same frames of one shot go through a runtime with ``FixedInterval`` and one with ``AdaptiveInterval``,
    both held to non-key frames after the first (thresholds out of reach, no budget controller, no interval limit), frame by frame in turns so that machine load hits both alike; the cost is the median of the
    per-frame differences."""
    images = longest_shot(clip)
    fixed = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(10**9))
    # Thresholds no staleness and no cut score reach (the test still runs): every frame after the first stays non-key.
    held = replace(calibration, thresholds=((1.0, 1e9),), cut_score=float("inf"))
    adaptive = DeepFeatureFlowRuntime(backend=backend, scheduler=AdaptiveInterval(rate=1e-6, max_interval=10**6, calibration=held, gain=0.0))
    differences, frame_s = [], []
    for _ in range(repeats):
        fixed.reset()
        adaptive.reset()
        for i, image in enumerate(images):
            start = time.perf_counter()
            fixed(image)
            middle = time.perf_counter()
            if adaptive(image).key != (i == 0):
                raise RuntimeError("the adaptive runtime took a key frame in a shot: the cost comparison needs non-key frames")
            end = time.perf_counter()
            if i:
                frame_s.append(middle - start)
                differences.append((end - middle) - (middle - start))
    return 1e6 * float(np.median(differences)), 1e3 * float(np.median(frame_s))


class _StatisticsOnly(FixedInterval):
    """A fixed interval that has F's statistics read (and ignores them): the cost of fetching them alone."""

    reads_flow = True


class _CutTestOnly(FixedInterval):
    """A fixed interval that runs the cut test (thumbnail and score) on every frame and ignores it."""

    def __init__(self, interval: int) -> None:
        super().__init__(interval)
        self._previous = None

    def choose(self, image: np.ndarray) -> bool:
        current = thumbnail(image)
        if self._previous is not None:
            cut_score(current, self._previous)
        self._previous = current
        return super().choose(image)


def scheduler_pieces(backend, clip: Clip, calibration, repeats: int = 5) -> dict[str, float]:
    """The marginal CPU µs per non-key frame (``time.process_time_ns``: another job's preemption does not count) of
    reading F's statistics, of the cut test, and of the whole adaptive scheduler, each against ``FixedInterval``,
    all runtimes taking turns frame by frame (the order flipping every frame); medians of per-frame differences."""
    held = replace(calibration, thresholds=((1.0, 1e9),), cut_score=float("inf"))
    never = 10**9
    makers = {
        "fixed": lambda: FixedInterval(never),
        "statistics": lambda: _StatisticsOnly(never),
        "cut test": lambda: _CutTestOnly(never),
        "scheduler": lambda: AdaptiveInterval(rate=1e-6, max_interval=never, calibration=held, gain=0.0),
    }
    runtimes = {name: DeepFeatureFlowRuntime(backend=backend, scheduler=make()) for name, make in makers.items()}
    seconds: dict[str, list[int]] = {name: [] for name in runtimes}
    images = longest_shot(clip)
    for repeat in range(repeats):
        for runtime in runtimes.values():
            runtime.reset()
        for i, image in enumerate(images):
            order = list(runtimes.items())
            for name, runtime in order if (i + repeat) % 2 == 0 else order[::-1]:
                start = time.process_time_ns()
                runtime(image)
                if i:
                    seconds[name].append(time.process_time_ns() - start)
    fixed = np.asarray(seconds.pop("fixed"))
    pieces = {name: float(np.median(np.asarray(values) - fixed)) / 1e3 for name, values in seconds.items()}
    return {**pieces, "non_key_ms": float(np.median(fixed)) / 1e6}


def statistics_cost(checkpoint: str, size: tuple[int, int], scratch: Path, clip: Clip, repeats: int = 5) -> tuple[float, float]:
    """Median ms of F with and without the statistics in flow.onnx (the same model exported both ways), in turns."""
    backends = {}
    for name, statistics in (("with", True), ("without", False)):
        export_checkpoint(checkpoint, scratch / f"flow-{name}", ExportOptions(height=size[0], width=size[1], flow_statistics=statistics))
        backends[name] = open_backend("onnxruntime", model=scratch / f"flow-{name}", threads=1)
    times: dict[str, list[float]] = {name: [] for name in backends}
    # One key frame for all: F then computes the key frame's half of conv1 once, as in a run (dff.runtime.key_flow_half).
    keys = {name: backend.upload(clip.images[0]) for name, backend in backends.items()}
    for _ in range(repeats):
        for image in clip.images[:40]:
            for name, backend in backends.items():
                key, frame = keys[name], backend.upload(image)
                start = time.perf_counter()
                backend.flow(key, frame)
                times[name].append(time.perf_counter() - start)
    for backend in backends.values():
        backend.close()
    return 1e3 * float(np.median(times["with"])), 1e3 * float(np.median(times["without"]))


def study(backend, calibration, clip_sets: dict[int, list[Clip]], num_classes: int, max_interval: int = MAX_INTERVAL) -> list[Run]:
    """Every schedule over every set of clips."""
    runs = []
    for seed, clips in clip_sets.items():
        for name, make in schedules(calibration, max_interval).items():
            runs.append(Run(name, seed, *run_schedule(backend, clips, make, num_classes)))
    return runs


def report(runs: list[Run], title: str, scheduler_us: float, non_key_ms: float) -> list[dict[str, float | str]]:
    """Print the table and the comparison; returns the comparison rows."""
    print(f"\n## {title}\n")
    print(f"{'schedule':28s} {'key share':>10s} {'F share':>8s} {'ms/frame':>9s} {'mIoU':>12s} {'p5 frame mIoU':>14s}")
    for name, row in summarise(runs).items():
        print(
            f"{name:28s} {row['key_share'][0]:10.3f} {row['flow_share'][0]:8.3f} {row['ms_per_frame'][0]:9.2f} "
            f"{row['miou'][0]:6.2f} ± {row['miou'][1]:4.2f} {row['p5_frame_miou'][0]:7.2f} ± {row['p5_frame_miou'][1]:4.2f}"
        )
    late = sum(r.cut_keys_late for r in runs if r.schedule.startswith("adaptive"))
    print(f"\ncuts whose frame was not a key frame, over all adaptive runs: {late}")
    print("\nadaptive against fixed l interpolated at the same measured key share, per set, mean ± std over sets:")
    comparison = compare(runs)
    for row in comparison:
        print(
            f"{row['schedule']:28s} share {row['key_share']:.3f}: Δ mIoU {row['miou']:+.2f} ± {row['miou_std']:.2f}, "
            f"Δ p5 {row['p5']:+.2f} ± {row['p5_std']:.2f}, key frames saved at equal mIoU {row['saved']:+.1f}% ± {row['saved_std']:.1f}, "
            f"Δ mIoU at equal ms/frame {row['miou_time']:+.2f} ± {row['miou_time_std']:.2f}"
        )
    print(
        f"\nscheduler cost (medians, timed in turns with the frames): {scheduler_us:.1f} µs per frame = "
        f"{100 * scheduler_us / 1e3 / non_key_ms:.2f}% of a non-key frame ({non_key_ms:.2f} ms)"
    )
    return comparison


def synthetic_part(args, scratch: Path) -> tuple[list[Run], list[dict[str, float | str]]]:
    export = scratch / "synthetic"
    export_checkpoint(args.checkpoint, export, ExportOptions(height=args.size[0], width=args.size[1]))
    manifest = load_manifest(export)
    num_classes = manifest.model.num_classes
    with open_backend("onnxruntime", model=export, threads=1) as backend:
        training = [
            EpisodicVideo.random(
                EpisodicVideoConfig(length=args.length, height=args.size[0], width=args.size[1], num_classes=num_classes, seed=1000 + j)
            )
            for j in range(4)
        ]
        start = time.perf_counter()
        calibration_report = calibrate(backend, training, max_interval=MAX_INTERVAL, flow_sha256=manifest.models.flow.sha256)
        calibration = calibration_report.calibration
        print(
            f"calibrated on 4 training videos (seeds 1000-1003) in {time.perf_counter() - start:.0f} s: staleness R² "
            f"{calibration_report.r_squared:.2f} over {calibration_report.samples} pairs, cut threshold {calibration.cut_score:.3f} "
            f"({calibration_report.cuts} cuts; false cuts on {100 * calibration_report.false_cut_share:.2f}% of other frames)",
            flush=True,
        )
        clip_sets = {}
        for s in range(args.seeds):
            seed = 2000 + s
            clips = clip_sets[seed] = load_clips(seed, args.videos, args.length, tuple(args.size), num_classes)
            cuts = [cut_score(thumbnail(c.images[t]), thumbnail(c.images[t - 1])) for c in clips for t in c.cuts]
            print(f"seed {seed}: {sum(len(c) for c in clips)} frames, {len(cuts)} cuts (lowest cut score {min(cuts):.3f})", flush=True)
        runs = study(backend, calibration, clip_sets, num_classes, args.max_interval)
        cost = scheduler_cost(backend, clip_sets[2000][0], calibration)
    title = f"demo model, {args.size[0]}x{args.size[1]} episodic synthetic videos, {args.seeds} seed sets of {args.videos} x {args.length} frames"
    comparison = report(runs, title, *cost)
    with_ms, without_ms = statistics_cost(args.checkpoint, tuple(args.size), scratch, clip_sets[2000][0])
    print(f"F with the statistics in flow.onnx {with_ms:.3f} ms, without {without_ms:.3f} ms: {with_ms / without_ms:.3f}x (medians, in turns)")
    if args.plot:
        plot(runs, args.plot, title)
        print(f"wrote {args.plot}")
    return runs, comparison


def cost_part(args, scratch: Path) -> dict[str, float]:
    """The scheduler's cost alone at ``--size`` (calibrated on two short training videos: the cost does not depend on
    how well), and F with the statistics against F without, each median timed in turns."""
    export = scratch / "cost"
    export_checkpoint(args.checkpoint, export, ExportOptions(height=args.size[0], width=args.size[1]))
    num_classes = load_manifest(export).model.num_classes
    config = EpisodicVideoConfig(length=120, height=args.size[0], width=args.size[1], num_classes=num_classes)
    with open_backend("onnxruntime", model=export, threads=1) as backend:
        training = [EpisodicVideo.random(replace(config, seed=1000 + j)) for j in range(2)]
        calibration = calibrate(backend, training, max_interval=MAX_INTERVAL, key_stride=6, sweep=8).calibration
        clip = load_clips(2000, 1, 300, tuple(args.size), num_classes)[0]
        scheduler_us, non_key_ms = scheduler_cost(backend, clip, calibration)
        pieces = scheduler_pieces(backend, clip, calibration)
    with_ms, without_ms = statistics_cost(args.checkpoint, tuple(args.size), scratch, clip)
    share = 100 * scheduler_us / 1e3 / non_key_ms
    print(
        f"{args.size[0]}x{args.size[1]}: scheduler {scheduler_us:.1f} µs per frame = {share:.2f}% of a non-key frame "
        f"({non_key_ms:.2f} ms); F with the statistics {with_ms:.3f} ms, without {without_ms:.3f} ms: {with_ms / without_ms:.3f}x"
    )
    cpu_ms = pieces["non_key_ms"]
    print(
        f"  CPU time per non-key frame ({cpu_ms:.2f} ms), marginal: reading F's statistics {pieces['statistics']:.1f} µs, "
        f"cut test {pieces['cut test']:.1f} µs, whole scheduler {pieces['scheduler']:.1f} µs = "
        f"{100 * pieces['scheduler'] / 1e3 / cpu_ms:.2f}%"
    )
    return {
        "scheduler_us": scheduler_us, "non_key_ms": non_key_ms, "share_percent": share, "flow_with_ms": with_ms,
        "flow_without_ms": without_ms, "cpu_pieces_us": pieces,
    }


def camvid_part(args, scratch: Path, cut_threshold: float) -> tuple[list[Run], list[dict[str, float | str]]]:
    """CamVid 0016E5: a model trained on frames 0-69 (benchmarks/table4.py --part camvid), calibrated on the same
    frames, tested on frames 70-100 from five start offsets."""
    sequence = camvid_sequences(CAMVID)[0]
    size = CAMVID_SIZE[::-1]  # as the model was trained and is scored in benchmarks/table4.py
    frames = [
        (cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.resize(label, size, interpolation=cv2.INTER_NEAREST))
        for image, label in (sequence.image_and_label(t) for t in range(len(sequence)))
    ]
    training = Clip([f[0] for f in frames[:70]], [f[1] for f in frames[:70]], ())
    export = scratch / "camvid"
    export_checkpoint(args.camvid_checkpoint, export, ExportOptions(height=CAMVID_SIZE[0], width=CAMVID_SIZE[1]))
    manifest = load_manifest(export)
    num_classes = manifest.model.num_classes
    with open_backend("onnxruntime", model=export, threads=1) as backend:
        calibration = calibrate(
            backend, [training], max_interval=MAX_INTERVAL, flow_sha256=manifest.models.flow.sha256, cut_threshold=cut_threshold
        ).calibration
        clip_sets = {o: [Clip([f[0] for f in frames[70 + o :]], [f[1] for f in frames[70 + o :]], ())] for o in range(5)}
        runs = study(backend, calibration, clip_sets, num_classes)
        cost = scheduler_cost(backend, clip_sets[0][0], calibration)
    title = f"CamVid 0016E5 frames 70-100 (5 start offsets), model trained and calibrated on frames 0-69, {CAMVID_SIZE[0]}x{CAMVID_SIZE[1]}"
    return runs, report(runs, title, *cost)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(DEMO))
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--seeds", type=int, default=3, help="held-out seed sets (seeds 2000, 2001, ...)")
    parser.add_argument("--videos", type=int, default=2, help="videos per seed set")
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--max-interval", type=int, default=MAX_INTERVAL, help="the adaptive schedules' maximum interval")
    parser.add_argument("--camvid-checkpoint", type=Path, help="a CamVid model trained on frames 0-69: adds the CamVid part")
    parser.add_argument(
        "--camvid-cut-score", type=float, default=0.30, help="cut threshold for CamVid (no cuts to calibrate on): the synthetic calibration's"
    )
    parser.add_argument("--part", choices=("synthetic", "camvid", "both", "cost"), default="both", help="cost: the scheduler's cost alone")
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        if args.part == "cost":
            results["cost"] = cost_part(args, Path(scratch))
        if args.part in ("synthetic", "both"):
            runs, comparison = synthetic_part(args, Path(scratch))
            results["synthetic"] = {"runs": [asdict(r) for r in runs], "comparison": comparison}
        if args.camvid_checkpoint is not None and args.part in ("camvid", "both"):
            runs, comparison = camvid_part(args, Path(scratch), args.camvid_cut_score)
            results["camvid"] = {"runs": [asdict(r) for r in runs], "comparison": comparison}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
