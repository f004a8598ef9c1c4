"""AdaptiveInterval through the real runtime on a real export: max interval, scene cuts, budget, decide modes, calibration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import REPO

from dff.data.episodes import EpisodicVideo, EpisodicVideoConfig, Shot, Stretch
from dff.data.synthetic import SyntheticVideoConfig
from dff.errors import ConfigError
from dff.export import ExportOptions, export_checkpoint
from dff.runtime import DeepFeatureFlowRuntime, open_backend
from dff.runtime.adaptive import AdaptiveInterval, Calibration, load_calibration, save_calibration
from dff.runtime.adaptive_calibration import calibrate
from dff.runtime.adaptive_signals import cut_score, thumbnail
from dff.runtime.streams import MultiStreamRuntime

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"
SIZE = (128, 128)
MAX_INTERVAL = 8


def episodic(seed: int, length: int) -> EpisodicVideo:
    return EpisodicVideo.random(
        EpisodicVideoConfig(length=length, height=SIZE[0], width=SIZE[1], num_classes=4, shot_frames=(30, 70), seed=seed)
    )


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """The shipped demo model (trained: its staleness has something to say), at 128 × 128 as trained."""
    out = tmp_path_factory.mktemp("export") / "demo"
    export_checkpoint(DEMO, out, ExportOptions(min_size=SIZE, max_size=SIZE))
    return out


@pytest.fixture(scope="module")
def backend(export_dir):
    with open_backend("onnxruntime", model=export_dir, threads=1) as backend:
        yield backend


@pytest.fixture(scope="module")
def calibration(backend) -> Calibration:
    """Measured on training videos (seeds 1000, 1001), never on the test videos (seeds from 2000)."""
    training = [episodic(1000 + j, 120) for j in range(2)]
    report = calibrate(backend, training, max_interval=MAX_INTERVAL, key_stride=6, sweep=8)
    assert report.samples > 50 and report.cuts >= 2
    return report.calibration


def run(backend, scheduler, images) -> list[bool]:
    runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler)
    return [runtime(image).key for image in images]


def frames(video: EpisodicVideo) -> list[np.ndarray]:
    return [video.image(t) for t in range(len(video))]


class TestInvariants:
    @pytest.mark.parametrize("decide", ["before", "after"])
    def test_max_interval_and_cuts(self, backend, calibration, decide):
        for seed in (2000, 2001):
            video = episodic(seed, 200)
            keys = run(backend, AdaptiveInterval(rate=0.15, max_interval=MAX_INTERVAL, calibration=calibration, decide=decide), frames(video))
            positions = np.flatnonzero(keys)
            assert positions[0] == 0 and np.diff(positions).max() <= MAX_INTERVAL
            assert len(video.cuts) >= 2
            # The cut frame itself is a key frame (so the next key frame after a cut comes within one frame).
            assert all(keys[c] for c in video.cuts), [c for c in video.cuts if not keys[c]]

    def test_every_cut_of_many_held_out_videos_is_a_key_frame(self, calibration):
        """The frame test alone (no F: every frame non-key unless the rules say so), over 8 more test videos."""
        for seed in range(2100, 2108):
            video = episodic(seed, 200)
            scheduler = AdaptiveInterval(rate=0.1, max_interval=10**6, calibration=calibration)
            keys = [scheduler.is_key(video.image(t)) for t in range(len(video))]
            assert all(keys[c] for c in video.cuts), (seed, [c for c in video.cuts if not keys[c]])
            assert sum(keys) <= len(video.cuts) + 1 + 2  # the first frame, the cuts, at most two false cuts

    def test_budget_over_a_long_run(self, backend, calibration):
        video = episodic(2002, 600)
        for rate in (0.15, 0.25):
            scheduler = AdaptiveInterval(rate=rate, max_interval=MAX_INTERVAL, calibration=calibration)
            keys = run(backend, scheduler, frames(video))
            assert scheduler.keys == sum(keys) and scheduler.frames == len(keys)
            assert abs(np.mean(keys) - rate) <= 0.15 * rate, (rate, np.mean(keys))

    def test_still_scene_waits_for_the_max_interval(self, backend, calibration):
        still = EpisodicVideo((Shot(scene_seed=5, stretches=(Stretch(frames=60, speed=0.0),)),), scene=SyntheticVideoConfig(height=128, width=128, num_classes=4))
        keys = run(backend, AdaptiveInterval(rate=0.2, max_interval=MAX_INTERVAL, calibration=calibration), frames(still))
        assert np.flatnonzero(keys).tolist() == list(range(0, 60, MAX_INTERVAL))

    def test_after_promotes_and_pays_for_f(self, backend, calibration):
        video = episodic(2003, 150)
        runtime = DeepFeatureFlowRuntime(
            backend=backend, scheduler=AdaptiveInterval(rate=0.2, max_interval=MAX_INTERVAL, calibration=calibration, decide="after")
        )
        results = [runtime(image) for image in frames(video)]
        promoted = [r for r in results if r.key and r.timing.ran_flow]
        assert promoted and all(r.timing.ran_feature for r in promoted)
        before = run(backend, AdaptiveInterval(rate=0.2, max_interval=MAX_INTERVAL, calibration=calibration), frames(video))
        assert before != [r.key for r in results]

    def test_reset_starts_over(self, backend, calibration):
        scheduler = AdaptiveInterval(rate=0.2, max_interval=MAX_INTERVAL, calibration=calibration)
        images = frames(episodic(2004, 30))
        run(backend, scheduler, images)
        scheduler.reset()
        assert (scheduler.frames, scheduler.keys, scheduler.threshold) == (0, 0, calibration.threshold(0.2))
        assert run(backend, scheduler, images[5:7])[0]


class TestStreams:
    @pytest.mark.parametrize("fused", [True, False], ids=["fused", "stages"])
    def test_each_stream_adapts_as_if_alone(self, backend, calibration, fused):
        """Three streams batched on one backend, each with its own scheduler (one deciding after F, so that promotions
        happen inside a batch), take the key frames and labels each takes alone."""
        videos = [frames(episodic(2010 + j, 80)) for j in range(3)]

        def schedulers():
            return [AdaptiveInterval(rate=0.2, max_interval=MAX_INTERVAL, calibration=calibration, decide=d) for d in ("before", "before", "after")]

        runtime = MultiStreamRuntime(backend=backend, schedulers=schedulers(), fused=fused)
        assert runtime.fused == fused  # the export has the fused graphs
        batched = [runtime({j: video[i] for j, video in enumerate(videos)}) for i in range(80)]
        for j, (video, scheduler) in enumerate(zip(videos, schedulers())):
            alone = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler)
            expected = [alone(image) for image in video]
            assert [b[j].key for b in batched] == [e.key for e in expected], j
            for b, e in zip(batched, expected):
                np.testing.assert_array_equal(b[j].labels, e.labels)
            assert 0.1 < np.mean([e.key for e in expected]) < 0.4
        # A promoted frame paid F (alone or inside the fused non-key path) and then the key path.
        flowed, keyed = ("propagate", "key_path") if runtime.fused else ("flow", "feature")
        promoted = [b[2] for b in batched if b[2].key and flowed in b[2].timing.stages_ms]
        assert promoted and all(keyed in r.timing.stages_ms for r in promoted)


class TestOldExports:
    def test_flow_calibration_needs_statistics(self, tmp_path, calibration):
        old = tmp_path / "old"
        export_checkpoint(DEMO, old, ExportOptions(min_size=SIZE, max_size=SIZE, flow_statistics=False))
        images = frames(episodic(2005, 20))
        with open_backend("onnxruntime", model=old) as legacy:
            with pytest.raises(ConfigError, match="has none.*export the checkpoint again"):
                run(legacy, AdaptiveInterval(rate=0.2, max_interval=MAX_INTERVAL, calibration=calibration), images)
            frame_only = calibrate(legacy, [episodic(1000, 80)], signals="frame", max_interval=MAX_INTERVAL, key_stride=8, sweep=6)
            keys = run(legacy, AdaptiveInterval(rate=0.2, max_interval=MAX_INTERVAL, calibration=frame_only.calibration), images)
            assert keys[0] and np.diff(np.flatnonzero(keys + [True])).max() <= MAX_INTERVAL


class TestConfiguration:
    def test_bad_arguments(self, calibration):
        with pytest.raises(ValueError, match="rate must be in"):
            AdaptiveInterval(rate=0, max_interval=10, calibration=calibration)
        with pytest.raises(ValueError, match="max_interval must be an integer >= 1/rate"):
            AdaptiveInterval(rate=0.1, max_interval=5, calibration=calibration)
        with pytest.raises(ValueError, match="decide"):
            AdaptiveInterval(rate=0.2, max_interval=10, calibration=calibration, decide="later")
        with pytest.raises(ConfigError, match="weights"):
            dataclasses.replace(calibration, weights=(1.0,))

    def test_file_round_trip_and_mismatch(self, tmp_path, calibration):
        path = save_calibration(tmp_path / "keyframes.json", dataclasses.replace(calibration, flow_sha256="a" * 64))
        assert load_calibration(path, flow_sha256="a" * 64) == dataclasses.replace(calibration, flow_sha256="a" * 64)
        with pytest.raises(ConfigError, match="another flow.onnx"):
            load_calibration(path, flow_sha256="b" * 64)
        with pytest.raises(ConfigError, match="no key-frame calibration"):
            load_calibration(tmp_path / "missing.json")
        (tmp_path / "bad.json").write_text("{")
        with pytest.raises(ConfigError, match="not a key-frame calibration"):
            load_calibration(tmp_path / "bad.json")

    def test_threshold_interpolates_log_log(self, calibration):
        table = dataclasses.replace(calibration, thresholds=((0.1, 8.0), (0.4, 0.5)))
        assert table.threshold(0.2) == pytest.approx(2.0)
        assert table.threshold(0.1) == pytest.approx(8.0) and table.threshold(0.05) == pytest.approx(32.0)

    def test_cut_threshold_splits_the_training_scores(self, tmp_path, calibration):
        """Halfway between the training cuts and the other frames (0.9 × the lowest cut missed a held-out cut)."""
        scores, cuts = [], set()
        for seed in (1000, 1001):
            video = episodic(seed, 120)
            thumbs = [thumbnail(video.image(t)) for t in range(len(video))]
            cuts |= {len(scores) + t - 1 for t in video.cuts}
            scores += [cut_score(thumbs[t], thumbs[t - 1]) for t in range(1, len(video))]
        at_cuts = [s for i, s in enumerate(scores) if i in cuts]
        elsewhere = [s for i, s in enumerate(scores) if i not in cuts]
        assert calibration.cut_score == pytest.approx(min(0.9 * min(at_cuts), (min(at_cuts) + max(elsewhere)) / 2))
        assert max(elsewhere) < calibration.cut_score < min(at_cuts)
        # A calibration of the five-call cut test (thresholds on another scale) is refused, not misread.
        path = save_calibration(tmp_path / "keyframes.json", dataclasses.replace(calibration, cut_test="histogram-8"))
        with pytest.raises(ConfigError, match="earlier scene-cut test"):
            load_calibration(path)
