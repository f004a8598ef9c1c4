"""Figure 3 on this CPU: accuracy (mIoU) against speed (fps) for l = 1 … 10, across feature networks and flow choices.

The paper varies N_feat (ResNet-50/101) and F (FlowNet, Half, Inception) on Cityscapes. Here, in
the setting of :mod:`dff.benchmark.study` (synthetic video, exact labels), three feature networks
that differ in depth and width (tiny, small, medium) and two flow choices:

* DFF: F = FlowNet tiny, pre-trained on flying shapes, then trained with N end to end on frame
  pairs (Table 3's *DFF*), starting from the *Frame* N;
* SFF: DIS optical flow (OpenCV) in F's place, with the *Frame* N and no training (Section 3).

Per feature network, *Frame* (N on single frames) and *DFF* are trained by the training code
(:mod:`dff.train`'s loop, through :func:`dff.benchmark.training.train_built_model`), then evaluated by
the paper's protocol (:func:`dff.eval.protocol.evaluate`) on another video for l = 1 … 10; l = 1
is the *Frame* point. fps is Algorithm 1's throughput l / (t_key + (l - 1) t_non_key) with the
key and non-key path times of all six models measured in turns after training
(:func:`dff.benchmark.study.time_paths`): PyTorch on this CPU, one thread, a shared machine (see
benchmarks/README.md).

    nice python benchmarks/figure3.py                    # into runs/figure3 (about 20 min here)
    nice python benchmarks/figure3.py --scale 0.02       # a quick check of the whole pipeline

Writes ``OUT/figure3.png``, ``OUT/results.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from dff.benchmark.plot import save_figure  # noqa: E402
from dff.benchmark.study import (  # noqa: E402
    FEATURE_NETS,
    SIZE,
    PathTimes,
    evaluate_intervals,
    load_pretrained_flow,
    scaled,
    study_arguments,
    study_flow,
    study_model,
    time_paths,
    training_config,
)
from dff.benchmark.training import train_built_model  # noqa: E402
from dff.eval.propagation import FlowNetPropagation, OpticalFlowPropagation  # noqa: E402
from dff.eval.protocol import ModeResult  # noqa: E402
from dff.flops import count_macs  # noqa: E402
from dff.models import DeepFeatureFlow  # noqa: E402

INTERVALS = tuple(range(1, 11))
#: Iterations at --scale 1.
FLOW_ITERATIONS, FRAME_ITERATIONS, DFF_ITERATIONS = 1500, 1500, 1000
FLOWS = {"dff": "FlowNet tiny (DFF)", "sff": "DIS flow (SFF)"}


def train_models(name: str, flow: Path, scale: float) -> tuple[DeepFeatureFlow, DeepFeatureFlow, dict[str, float]]:
    """*Frame* and *DFF* for feature network ``name``, and the seconds each took to train."""
    model = study_model(FEATURE_NETS[name])
    load_pretrained_flow(model.flow_net, flow)
    seconds = {}
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        frame = train_built_model(model, training_config("frame", iterations=scaled(FRAME_ITERATIONS, scale), lr=0.01, output_dir=scratch))
        seconds["frame"] = time.perf_counter() - start
        start = time.perf_counter()
        stage = training_config("dff", iterations=scaled(DFF_ITERATIONS, scale), lr=0.005, output_dir=scratch)
        dff = train_built_model(copy.deepcopy(frame), stage)
        seconds["dff"] = time.perf_counter() - start
    return frame, dff, seconds


def plot(results: dict[str, dict[str, list[ModeResult]]], times: dict[str, PathTimes], path: Path) -> None:
    """mIoU against fps, one curve per feature network and flow choice, l marked at 1, 5 and 10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.8))
    colours = dict(zip(FEATURE_NETS, ("tab:blue", "tab:orange", "tab:green")))
    for name, by_flow in results.items():
        for flow, rows in by_flow.items():
            fps = [times[f"{name}+{flow}"].fps(r.key_interval) for r in rows]
            axes.plot(
                fps,
                [100 * r.miou for r in rows],
                marker="o" if flow == "dff" else "s",
                linestyle="-" if flow == "dff" else "--",
                color=colours[name],
                markersize=4,
                label=f"{name} + {FLOWS[flow]}",
            )
            for r, x in zip(rows, fps):
                if r.key_interval in (1, 5, 10):
                    axes.annotate(f"l={r.key_interval}", (x, 100 * r.miou), fontsize=6, xytext=(3, 3), textcoords="offset points")
    axes.set_xscale("log")
    axes.set_xlabel("frames per second (PyTorch, one CPU thread; log scale)")
    axes.set_ylabel("mIoU (%)")
    axes.set_title("Accuracy against speed for l = 1 ... 10, synthetic video (cf. the paper's Figure 3)", fontsize=10)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7)
    save_figure(figure, path)


def main() -> int:
    args = study_arguments(__doc__.split("\n")[0], REPO / "runs" / "figure3")
    start = time.perf_counter()
    flow = study_flow(args, FLOW_ITERATIONS)
    print(f"F pre-trained: {flow} ({time.perf_counter() - start:.0f} s)", flush=True)
    frame_input = torch.zeros(1, 3, SIZE, SIZE)
    results: dict[str, dict[str, list[ModeResult]]] = {}
    candidates = {}
    report: dict[str, dict] = {}
    for name in FEATURE_NETS:
        frame_model, dff_model, seconds = train_models(name, flow, args.scale)
        results[name] = {"dff": evaluate_intervals(dff_model, "dff", INTERVALS), "sff": evaluate_intervals(frame_model, "sff", INTERVALS)}
        candidates[f"{name}+dff"] = (dff_model, FlowNetPropagation(dff_model))
        candidates[f"{name}+sff"] = (frame_model, OpticalFlowPropagation())
        macs = {"feature": count_macs(dff_model.feature_net, frame_input).total, "flow": count_macs(dff_model.flow_net, frame_input, frame_input).total}
        report[name] = {"training_seconds": seconds, "macs_per_frame": macs}
        print(f"[{name}] trained in {sum(seconds.values()):.0f} s; done at {time.perf_counter() - start:.0f} s", flush=True)
    times = time_paths(candidates)
    for name, by_flow in results.items():
        for flow, rows in by_flow.items():
            path_times = times[f"{name}+{flow}"]
            report[name][flow] = {
                "key_ms": path_times.key_ms,
                "non_key_ms": path_times.non_key_ms,
                "rows": [{"l": r.key_interval, "miou": r.miou, "fps": path_times.fps(r.key_interval), "pairs": r.pairs} for r in rows],
            }
    plot(results, times, args.out / "figure3.png")
    total = time.perf_counter() - start
    (args.out / "results.json").write_text(json.dumps({"models": report, "total_seconds": total}, indent=2))
    print("| feature net | N_feat GMACs | flow | " + " | ".join(f"l={l}" for l in INTERVALS) + " |")
    print("|---|---|---|" + "---|" * len(INTERVALS))
    for name, by_flow in results.items():
        gmacs = report[name]["macs_per_frame"]["feature"] / 1e9
        for flow, rows in by_flow.items():
            cells = " | ".join(f"{100 * r.miou:.1f} @ {times[f'{name}+{flow}'].fps(r.key_interval):.0f}" for r in rows)
            print(f"| {name} | {gmacs:.3f} | {FLOWS[flow]} | {cells} |")
    print(f"cells: mIoU (%) @ fps. Wrote {args.out / 'figure3.png'} and {args.out / 'results.json'} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
