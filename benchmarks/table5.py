"""Table 5 on this CPU: the split point of N_task, accuracy and speed with 0, 1 and more layers after it.

The feature network is the ``small`` one of :mod:`dff.benchmark.study` (two units in conv4, so
the split can move back to conv4's second unit). N = N_task ∘ N_feat is trained once on single
frames (*Frame*); then for each split point (:mod:`dff.models.split`: ``task_blocks`` blocks of
N after it) a DFF model starts from that N and the pre-trained FlowNet tiny (its scale field as
wide as the propagated tensor) and is trained end to end on frame pairs (Table 3's *DFF*):

    task_blocks  0: score maps propagated (0 layers)   1: the default, the 1×1 score conv
                 2: + the dilated 3×3 head            3: + conv5's unit   4: + conv4's last unit

Each is evaluated by the paper's protocol on another video at l = 5 (the paper's Cityscapes
column) and l = 10 (its ImageNet VID column) for mIoU; fps is Algorithm 1's throughput from the
key and non-key path times of all split models measured in turns after training
(:func:`dff.benchmark.study.time_paths`; PyTorch, one CPU thread, a shared machine; see
benchmarks/README.md).

    nice python benchmarks/table5.py                   # into runs/table5
    nice python benchmarks/table5.py --scale 0.02      # a quick check of the whole pipeline
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

from dff.benchmark.study import (  # noqa: E402
    evaluate_intervals,
    load_pretrained_flow,
    scaled,
    small_feature_net,
    study_arguments,
    study_flow,
    study_model,
    time_paths,
    training_config,
)
from dff.benchmark.training import train_built_model  # noqa: E402
from dff.eval.propagation import FlowNetPropagation  # noqa: E402
from dff.models import flownet_tiny  # noqa: E402
from dff.models.split import DEFAULT_TASK_BLOCKS, split_channels, split_model, task_layers  # noqa: E402

SPLITS = (0, 1, 2, 3, 4)
INTERVALS = (5, 10)
#: Iterations at --scale 1.
FLOW_ITERATIONS, FRAME_ITERATIONS, DFF_ITERATIONS = 1500, 1500, 800


def main() -> int:
    args = study_arguments(__doc__.split("\n")[0], REPO / "runs" / "table5")
    start = time.perf_counter()
    flow = study_flow(args, FLOW_ITERATIONS)
    frame = study_model(small_feature_net)
    rows, candidates = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        train_built_model(frame, training_config("frame", iterations=scaled(FRAME_ITERATIONS, args.scale), lr=0.01, output_dir=scratch))
        print(f"Frame trained at {time.perf_counter() - start:.0f} s", flush=True)
        for task_blocks in SPLITS:
            network = copy.deepcopy(frame)
            flow_net = flownet_tiny(feature_channels=split_channels(network.feature_net, network.task_net, task_blocks))
            load_pretrained_flow(flow_net, flow)
            model = split_model(feature_net=network.feature_net, flow_net=flow_net, task_net=network.task_net, task_blocks=task_blocks)
            stage = training_config("dff", iterations=scaled(DFF_ITERATIONS, args.scale), lr=0.005, output_dir=scratch)
            began = time.perf_counter()
            train_built_model(model, stage)
            candidates[str(task_blocks)] = (model, FlowNetPropagation(model))
            rows.append(
                {
                    "task_blocks": task_blocks,
                    "task_layers": task_layers(model.task_net),
                    "propagated_channels": model.feature_net.out_channels,
                    "training_seconds": time.perf_counter() - began,
                    "miou": {l: r.miou for l, r in zip(INTERVALS, evaluate_intervals(model, "dff", INTERVALS))},
                }
            )
            print(f"[task_blocks {task_blocks}] done at {time.perf_counter() - start:.0f} s", flush=True)
    times = time_paths(candidates)
    for row in rows:
        path_times = times[str(row["task_blocks"])]
        row.update(key_ms=path_times.key_ms, non_key_ms=path_times.non_key_ms, fps={l: path_times.fps(l) for l in INTERVALS})
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "total_seconds": time.perf_counter() - start}, indent=2))
    header = " | ".join(f"mIoU (%) l={l} | fps l={l}" for l in INTERVALS)
    print(f"| # layers in N_task | task_blocks | propagated channels | {header} | key ms | non-key ms |")
    print("|---|---|---|" + "---|---|" * len(INTERVALS) + "---|---|")
    for row in sorted(rows, key=lambda r: -r["task_layers"]):
        label = f"{row['task_layers']}" + (" (default)" if row["task_blocks"] == DEFAULT_TASK_BLOCKS else "")
        cells = " | ".join(f"{100 * row['miou'][l]:.1f} | {row['fps'][l]:.0f}" for l in INTERVALS)
        print(f"| {label} | {row['task_blocks']} | {row['propagated_channels']} | {cells} | {row['key_ms']:.2f} | {row['non_key_ms']:.2f} |")
    print(f"wrote {args.out / 'results.json'} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
