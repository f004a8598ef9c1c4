"""The multi-stream runtime: each stream inside a batch equals that stream alone; staggered phases flatten key frames."""

from __future__ import annotations

import numpy as np
import pytest
from test_batching import frames

from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.adaptive_signals import FlowStatistics
from dff.runtime.streams import MultiStreamRuntime, PhasedInterval, phased_schedulers, stream_phases


def test_phases():
    assert stream_phases(5, 5) == [0, 1, 2, 3, 4]
    assert stream_phases(2, 10) == [0, 5]
    assert stream_phases(3, 5, "aligned") == [0, 0, 0]
    assert stream_phases(4, 2) == [0, 1, 1, 0]  # halves round up: two streams per phase
    scheduler = PhasedInterval(5, 2)
    image = np.zeros((8, 8, 3), np.uint8)
    # First frame forced, then frames 2, 7, 12 on phase.
    assert [scheduler.is_key(image) for _ in range(13)] == [i in (0, 2, 7, 12) for i in range(13)]


@pytest.mark.parametrize("count", [1, 3, 8])
def test_streams_in_a_batch_equal_each_stream_alone(tiny_export, count):
    with open_backend("onnxruntime", model=tiny_export, threads=1) as backend:
        streams = [frames(6, seed=2 * j) for j in range(count)]
        runtime = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(count, 3))
        batched = [runtime({j: streams[j][i] for j in range(count)}) for i in range(6)]
        for j, scheduler in enumerate(phased_schedulers(count, 3)):
            alone = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler)
            for i, image in enumerate(streams[j]):
                expected = alone(image)
                assert batched[i][j].key == expected.key
                np.testing.assert_array_equal(batched[i][j].labels, expected.labels)


class PromotingEvery(FixedInterval):
    """Reads F's statistics (real ones: it checks they came) and promotes every second frame it observes."""

    reads_flow = True

    def __init__(self, interval: int) -> None:
        self.observed = 0
        super().__init__(interval)

    def promote(self, statistics: FlowStatistics | None) -> bool:
        assert isinstance(statistics, FlowStatistics)
        self.observed += 1
        return self.observed % 2 == 0


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
def test_fused_ticks_give_the_staged_ticks_labels(tiny_export, backend_name):
    """One batched call per path (ONNX Runtime: the fused graphs over the stacked frames; OpenVINO: its fused call per
    frame) against the stages batched, with fixed and adaptive schedulers (promotions go through the key path)."""
    with open_backend(backend_name, model=tiny_export, threads=1) as backend:
        assert backend.fused_paths
        streams = [frames(6, seed=3 * j) for j in range(3)]
        adaptive = lambda: [PromotingEvery(4), PromotingEvery(5), FixedInterval(2)]  # noqa: E731
        for make, promotes in ((lambda: phased_schedulers(3, 3), False), (adaptive, True)):
            results = {}
            for fused in (True, False):
                runtime = MultiStreamRuntime(backend=backend, schedulers=make(), fused=fused)
                results[fused] = [runtime({j: streams[j][i] for j in range(3)}) for i in range(6)]
            for tick, staged in zip(results[True], results[False]):
                for j in range(3):
                    assert tick[j].key == staged[j].key
                    np.testing.assert_array_equal(tick[j].labels, staged[j].labels)
                    assert ("propagate" in tick[j].timing.stages_ms) == (not tick[j].key or "flow" in staged[j].timing.stages_ms)
            promoted = sum(r.key and "propagate" in r.timing.stages_ms for tick in results[True] for r in tick.values())
            assert (promoted > 0) == promotes


def test_staggered_ticks_carry_one_key_frame_each(tiny_export):
    with open_backend("onnxruntime", model=tiny_export, threads=1) as backend:
        image = frames(1)[0]
        for phase, per_tick in (("aligned", [0, 0, 0, 0, 5, 0, 0, 0, 0]), ("staggered", [1] * 9)):
            runtime = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(5, 5, phase))
            runtime({j: image for j in range(5)})  # the first tick: every stream needs a key frame
            keys = [sum(r.key for r in runtime({j: image for j in range(5)}).values()) for _ in range(9)]
            assert keys == per_tick, phase
        # Frame 10 is stream 0's key frame; a restart adds one for stream 2 on this tick, and the others are untouched.
        runtime.reset(2)
        assert sorted(j for j, r in runtime({j: image for j in range(5)}).items() if r.key) == [0, 2]


@pytest.mark.parametrize("fused", [True, False])
def test_stage_shares_add_up_to_the_tick(tiny_export, fused):
    """Each frame's stages_ms are its share of the batched calls: key frames feature (or the fused key path), the others
    flow and warp (or the fused propagation), and the shares of one tick add up to (nearly all of) the tick's wall time."""
    import time

    paths = {True: ({"key_path"}, {"propagate"}), False: ({"feature", "task"}, {"flow", "warp", "task"})}[fused]
    with open_backend("onnxruntime", model=tiny_export, threads=1) as backend:
        runtime = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(4, 2), fused=fused)
        assert runtime.fused == fused
        images = frames(3)
        runtime({j: images[0] for j in range(4)})  # every stream's first key frame (and first runs allocate)
        for image in images[1:]:
            start = time.perf_counter()
            results = runtime({j: image for j in range(4)})
            wall_ms = (time.perf_counter() - start) * 1e3
            assert sorted(r.key for r in results.values()) == [False, False, True, True]
            for result in results.values():
                expected = {"preprocess", "postprocess"} | paths[0 if result.key else 1]
                assert set(result.timing.stages_ms) == expected and min(result.timing.stages_ms.values()) > 0
            shares_ms = sum(r.timing.total_ms for r in results.values())
            assert 0.8 * wall_ms <= shares_ms <= wall_ms


def test_bench_streams_json(tiny_export, capsys):
    """``dff bench --streams 1,3 --json``: a row per S with aggregate fps, latency, tick spread and labels equal to alone."""
    import json

    from dff.cli import main

    status = main(["bench", str(tiny_export), "-O", "threads=1", "--height", "64", "--width", "96", "--intervals", "1,2",
                   "--frames", "4", "--repeats", "1", "--warmup-frames", "1", "--no-flops", "--streams", "1,3",
                   "--stream-frames", "5", "--stream-interval", "2", "--json"])
    assert status == 0
    figures = json.loads(capsys.readouterr().out)
    assert [row["streams"] for row in figures["streams"]] == [1, 3]
    for row in figures["streams"]:
        assert row["fps"] > 0 and row["one_by_one_fps"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["tick_max_over_mean"] >= 1 and row["same_labels"] == 1.0
        assert abs(row["stream_fps"] * row["streams"] - row["fps"]) < 1e-3 * row["fps"]
    assert figures["rows"]  # the l sweep is still there
