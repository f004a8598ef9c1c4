"""The CPU fast path: float32 ONNX Runtime against OpenVINO f32/bf16 and int8 (ONNX Runtime, OpenVINO), stage by stage and
through the fused graphs (one call per frame), each with its accuracy.

    nice .venv/bin/python benchmarks/bench_cpu_fastpath.py [--export DIR] [--int8 DIR] [--before DIR] [--frames 60] [-l 5]
                                                          [--height 256 --width 320] [--threads 1] [--only NAME,...] [--bare]

Without ``--export`` the shipped demo model is exported (float32, fixed at the benchmark's frame size) and, without
``--int8``, quantized with ``dff quantize`` on 32 frames of the real vtest.avi (never the evaluation video).
``--before``: an export written by an earlier dff (say the commit before a graph change), run stage by stage
as "before". For every configuration two runtimes run over the same held-out synthetic video (exact
labels, seed 1): DFF with a key frame every l frames and per-frame (l = 1). All of them take turns
frame by frame in one process, so the load of this shared machine hits them alike, and every ratio
comes from that one run. Printed per configuration: mean ms per stage (a fused configuration's calls
are the ``key_path`` and ``propagate`` columns), key and non-key frame, measured r (Eq. 5) and the
FLOP r (Eq. 6, counted from the float graphs), DFF's measured speed-up over per-frame against Eq. 7's,
the mIoU of DFF against the exact labels and its label agreement with the reference's (float32 ONNX
Runtime, stage by stage) DFF labels; then each configuration's key and non-key frame against the reference's. "whole F":
the fused paths with F's conv1 on both frames every frame (``key_flow_half=False``); "old": that, with the graph's label
tail and (ONNX Runtime) GridSample as well, as before the key half, the host tail and the gathers.
``--bare`` times only the graphs themselves in bare ONNX Runtime sessions (best of 15, interleaved): the
stages against the fused graphs, and the ``--before`` export's stages.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dff.benchmark.complexity import dimension_values, export_macs, onnx_graph_macs  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.manifest import load_manifest  # noqa: E402
from dff.metrics import SegmentationScore  # noqa: E402
from dff.quantize import QuantizeOptions, quantize_export  # noqa: E402
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, TimingSummary, open_backend  # noqa: E402
from dff.runtime.key_flow_half import KEY_FLOW_HALF, split_key_half  # noqa: E402
from dff.runtime.timing import predicted_speedup  # noqa: E402
from demo_clip import DEMO_MODEL, add_clip_arguments, synthetic_clip  # noqa: E402

CALIBRATION = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"
STAGES = ("feature", "flow", "warp", "task", "key_path", "propagate")
STAGED = {"fused_graphs": False}
#: name → (which export, backend, options); the first is the reference every other is compared with.
CONFIGS = {
    "ORT f32": ("float", "onnxruntime", STAGED),
    "ORT f32 fused": ("float", "onnxruntime", {}),
    "OV f32": ("float", "openvino", STAGED),
    "OV f32 fused": ("float", "openvino", {}),
    # The fused paths without the key frame's half of F's conv1 computed once (dff.runtime.key_flow_half) and, "old", as
    # they ran before the host label tail and the warp's row gathers as well (issue 19, items 3 and 4).
    "ORT fused whole F": ("float", "onnxruntime", {"key_flow_half": False}),
    "OV fused whole F": ("float", "openvino", {"key_flow_half": False}),
    "ORT fused old": ("float", "onnxruntime", {"label_tail": "graph", "gather_warp": False, "key_flow_half": False}),
    "OV fused old": ("float", "openvino", {"label_tail": "graph", "key_flow_half": False}),
    "OV bf16 fused": ("float", "openvino", {"precision": "bf16"}),
    "ORT int8 fused": ("int8", "onnxruntime", {}),
    "OV int8 fused": ("int8", "openvino", {}),
    "OV i8+bf16 fused": ("int8", "openvino", {"precision": "bf16"}),
}
BEFORE = {"before": ("before", "onnxruntime", STAGED)}


def bare_graphs(exports: dict[str, Path], size: tuple[int, int], threads: int, repeats: int = 15) -> None:
    """Each export's graphs in bare ONNX Runtime sessions, interleaved, best of ``repeats`` (robust to a loaded machine):
    the stages one after another against the fused graphs, per path, and r from either."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    rng = np.random.default_rng(0)
    key, frame = (rng.integers(0, 256, (1, *size, 3), dtype=np.uint8) for _ in range(2))
    runs, splits = {}, {}
    for name, directory in exports.items():
        roles = [r for r in ("feature", "flow", "warp", "task", "key_path", "propagate") if (directory / f"{r}.onnx").exists()]
        sessions = {r: ort.InferenceSession(str(directory / f"{r}.onnx"), options, providers=["CPUExecutionProvider"]) for r in roles}
        feat = sessions["feature"].run(None, {"frame": key})[0]
        flow, scale = sessions["flow"].run(None, {"key_frame": key, "frame": frame})[:2]
        feeds = {
            "feature": {"frame": key},
            "flow": {"key_frame": key, "frame": frame},
            "warp": {"key_feat": feat, "flow": flow, "scale": scale},
            "task": {"feat": feat},
            "key_path": {"frame": key},
            "propagate": {"key_frame": key, "frame": frame, "key_feat": feat},
        }
        for role in roles:
            runs[name, role] = (sessions[role], feeds[role])
        split = splits[name] = split_key_half(onnx.load(directory / "flow.onnx"))
        if split is not None:  # F as the CPU backends run it: the key frame's half of conv1 computed once per key frame
            half_session, split_session = (ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                                           for m in (split.key_half, split.graph))
            half = half_session.run(None, {"key_frame": key})[0]
            runs[name, "key half"] = (half_session, {"key_frame": key})
            runs[name, "flow split"] = (split_session, {KEY_FLOW_HALF: half, "frame": frame})
    best = dict.fromkeys(runs, np.inf)
    for _ in range(repeats):
        for item, (session, feed) in runs.items():
            start = time.perf_counter()
            session.run(None, feed)
            best[item] = min(best[item], (time.perf_counter() - start) * 1e3)
    print(f"bare ONNX Runtime graphs at {size[0]}x{size[1]}, {threads} thread(s), best of {repeats} ms (random frames):")
    for name in exports:
        ms = {role: best[n, role] for n, role in best if n == name}
        key_ms, non_key_ms = ms["feature"] + ms["task"], ms["flow"] + ms["warp"] + ms["task"]
        line = (f"  {name:7s} feature {ms['feature']:.2f}, flow {ms['flow']:.2f}, warp {ms['warp']:.2f}, task {ms['task']:.2f}: "
                f"key {key_ms:.2f}, non-key {non_key_ms:.2f}, r {non_key_ms / key_ms:.3f}")
        if "propagate" in ms:
            line += (f"; fused key_path {ms['key_path']:.2f} ({key_ms / ms['key_path']:.2f}x), propagate {ms['propagate']:.2f} "
                     f"({non_key_ms / ms['propagate']:.2f}x), r {ms['propagate'] / ms['key_path']:.3f}")
        print(line)
        macs = export_macs(exports[name], height=size[0], width=size[1])
        rates = f"feature {macs.feature / ms['feature'] / 1e6:.1f}, flow {macs.flow / ms['flow'] / 1e6:.1f}"
        if "flow split" in ms:
            # The split graph's MACs: F's less the key frame's half of conv1, which the key half graph computes once.
            stride = load_manifest(exports[name], verify=False).feature_stride
            split_macs = macs.flow - onnx_graph_macs(splits[name].key_half, dimension_values(*size, stride))
            rates += (f"; flow with the key half once per key frame {ms['flow split']:.2f} ms (+ {ms['key half']:.2f} once), "
                      f"{split_macs / ms['flow split'] / 1e6:.1f} GMAC/s")
            measured = (ms["flow split"] + ms["warp"] + ms["task"]) / key_ms
            rates += f", r {measured:.3f} = {measured / macs.r_flops:.2f}x FLOP r {macs.r_flops:.4f}"
        print(f"    GMAC/s: {rates}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="float32 export (default: the demo model, exported)")
    parser.add_argument("--int8", type=Path, help="its int8 export (default: dff quantize on vtest.avi)")
    parser.add_argument("--before", type=Path, help="an export by an earlier dff, run stage by stage on ONNX Runtime")
    parser.add_argument("--only", help=f"comma-separated configurations (default: all of {', '.join(CONFIGS)})")
    parser.add_argument("--bare", action="store_true", help="only the bare ONNX Runtime graphs (before, and the float export)")
    add_clip_arguments(parser)
    args = parser.parse_args()
    size = (args.height, args.width)
    configs = {**CONFIGS, **(BEFORE if args.before else {})}
    if args.only:
        chosen = ["ORT f32", *(name.strip() for name in args.only.split(",")), *(BEFORE if args.before else {})]
        configs = {name: configs[name] for name in dict.fromkeys(chosen)}

    with tempfile.TemporaryDirectory() as tmp:
        exports = {"float": args.export, "int8": args.int8, "before": args.before}
        if exports["float"] is None:
            exports["float"] = Path(tmp) / "float"
            export_checkpoint(DEMO_MODEL, exports["float"], ExportOptions(height=size[0], width=size[1]))
        if args.bare:
            bare_graphs({name: exports[name] for name in ("before", "float") if exports[name]}, size, args.threads)
            return
        if exports["int8"] is None and any(which == "int8" for which, _, _ in configs.values()):
            exports["int8"] = Path(tmp) / "int8"
            quantize_export(exports["float"], CALIBRATION, exports["int8"], QuantizeOptions(size=size))
        num_classes = load_manifest(exports["float"]).model.num_classes
        clip = synthetic_clip(args, num_classes)
        macs = export_macs(exports["float"], height=size[0], width=size[1])
        backends = {name: open_backend(kind, model=exports[which], threads=args.threads, **opts) for name, (which, kind, opts) in configs.items()}
        runtimes = {
            name: {
                l: DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(l)) for l in (args.key_interval, 1)
            }
            for name, backend in backends.items()
        }
        for pair in runtimes.values():
            pair[1].warmup(*size)
        timings = {name: {l: [] for l in pair} for name, pair in runtimes.items()}
        labels: dict[str, list[np.ndarray]] = {name: [] for name in runtimes}
        order = [(name, l) for name in runtimes for l in runtimes[name]]
        for index, (image, _) in enumerate(clip):
            shift = index % len(order)  # the turn order rotates, so no configuration always goes first
            for name, l in order[shift:] + order[:shift]:
                result = runtimes[name][l](image)
                timings[name][l].append(result.timing)
                if l != 1:
                    labels[name].append(result.labels)
        for backend in backends.values():
            backend.close()

    l = args.key_interval
    print(f"{exports['float']}, its int8 {exports['int8']}, before {exports['before']}; held-out synthetic video {args.frames} frames {size[0]}x{size[1]}, "
          f"l = {l}, {args.threads} thread(s); FLOP r = {macs.r_flops:.4f} (N_feat {macs.feature / 1e9:.3f} GMACs, F {macs.flow / 1e9:.3f})")
    header = f"{'configuration':17s}" + "".join(f"{s:>10s}" for s in STAGES)
    header += f"{'key ms':>9s}{'non-key':>9s}{'r':>7s}{'r/FLOP r':>9s}{'s meas':>8s}{'s Eq.7':>8s}{'meas/7':>8s}{'mIoU':>7s}{'agree':>9s}"
    print(header)
    summaries = {}
    for name in runtimes:
        dff, per_frame = TimingSummary.of(timings[name][l], interval=l), TimingSummary.of(timings[name][1], interval=1)
        summaries[name] = dff
        every = timings[name][l] + timings[name][1]
        stage = {s: np.mean([t.stages_ms[s] for t in every if s in t.stages_ms]) if any(s in t.stages_ms for t in every) else np.nan
                 for s in STAGES}
        r = dff.ratio
        measured, predicted = dff.fps / per_frame.fps, predicted_speedup(l, r)
        score = SegmentationScore(num_classes)
        for prediction, (_, truth) in zip(labels[name], clip):
            score.update(prediction, truth)
        agreement = np.mean([(a == b).mean() for a, b in zip(labels[name], labels["ORT f32"])])
        print(f"{name:17s}" + "".join(f"{stage[s]:10.2f}" for s in STAGES)
              + f"{dff.key.mean_ms:9.2f}{dff.non_key.mean_ms:9.2f}{r:7.3f}{r / macs.r_flops:9.2f}{measured:8.2f}{predicted:8.2f}"
              f"{100 * measured / predicted:7.1f}%{100 * score.miou:7.2f}{100 * agreement:8.3f}%")
    print("time against float32 ONNX Runtime's (lower is faster):")
    reference = summaries["ORT f32"]
    for name, summary in summaries.items():
        print(f"  {name:17s} key frame {summary.key.mean_ms / reference.key.mean_ms:5.2f}x "
              f"({reference.key.mean_ms / summary.key.mean_ms:4.2f}x faster), non-key {summary.non_key.mean_ms / reference.non_key.mean_ms:5.2f}x, "
              f"DFF per frame {reference.fps / summary.fps:5.2f}x")


if __name__ == "__main__":
    main()
