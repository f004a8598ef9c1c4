"""Where the time of each path goes: ONNX Runtime's kernel profile of key_path.onnx and propagate.onnx, per op type.

    nice python benchmarks/profile_paths.py --export DIR [--repeats 30] [--as-files]

One thread, random frames at the export's (fixed) size. By default the graphs run as the CPU backend loads them (cut
before the label tail, the warp's GridSample as row gathers reading the key features' rows transposed once, F reading
the key frame's half of its conv1: ``dff.runtime.label_tail``, ``dff.runtime.gather_sample``, ``dff.runtime.key_flow_half``);
``--as-files``: the files as exported (the frame-size tail and GridSample in the graph). Printed per path: the wall
time of a run, the kernels' sum, and the op types' shares of it, largest first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dff.manifest import load_manifest  # noqa: E402
from dff.runtime.gather_sample import gather_warp, nhwc_name  # noqa: E402
from dff.runtime.key_flow_half import KEY_FLOW_HALF, split_key_half  # noqa: E402
from dff.runtime.label_tail import graph_before_tail, host_tail_outputs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="a fixed-size export")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--as-files", action="store_true", help="the graphs as exported, not as the CPU backend loads them")
    args = parser.parse_args()
    manifest = load_manifest(args.export)
    height, width = manifest.sizes.max_height, manifest.sizes.max_width
    rng = np.random.default_rng(0)
    key, frame = (rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8) for _ in range(2))
    feat = ort.InferenceSession(str(args.export / "feature.onnx"), providers=["CPUExecutionProvider"]).run(None, {"frame": key})[0]
    feeds = {"key_path": {"frame": key}, "propagate": {"key_frame": key, "frame": frame, "key_feat": feat}}
    with tempfile.TemporaryDirectory() as tmp:
        for role, feed in feeds.items():
            model = onnx.load(args.export / f"{role}.onnx")
            outputs = ["labels"]
            if not args.as_files:
                model, outputs = gather_warp(graph_before_tail(model), nhwc_inputs=True)[0], list(host_tail_outputs(outputs))
                if nhwc_name("key_feat") in {i.name for i in model.graph.input}:  # the key features' rows, transposed once
                    feed = {**feed, nhwc_name("key_feat"): feed["key_feat"].transpose(0, 2, 3, 1).copy()}
                split = split_key_half(model)
                if split is not None:  # F reads the key frame's half of conv1, computed once per key frame
                    model = split.graph
                    half = ort.InferenceSession(split.key_half.SerializeToString(), providers=["CPUExecutionProvider"])
                    feed = {**{k: v for k, v in feed.items() if k != "key_frame"}, KEY_FLOW_HALF: half.run(None, {"key_frame": key})[0]}
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / role)
            session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            for _ in range(5):
                session.run(outputs, feed)
            start = time.perf_counter()
            for _ in range(args.repeats):
                session.run(outputs, feed)
            wall_ms = (time.perf_counter() - start) / args.repeats * 1e3
            path = session.end_profiling()
            events = json.loads(Path(path).read_text())
            os.remove(path)
            per_op: dict[str, float] = collections.defaultdict(float)
            for event in events:
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    per_op[event["args"]["op_name"]] += event["dur"] / 1e3 / (args.repeats + 5)
            kernels = sum(per_op.values())
            shares = ", ".join(f"{op} {100 * ms / kernels:.1f}%" for op, ms in sorted(per_op.items(), key=lambda item: -item[1])[:9])
            print(f"{height}x{width} {role}{' (files)' if args.as_files else ''}: wall {wall_ms:.2f} ms, kernels {kernels:.2f} ms: {shares}")


if __name__ == "__main__":
    main()
