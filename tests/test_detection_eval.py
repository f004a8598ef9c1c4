"""``dff eval`` on a detector: mAP@0.5 per mode by the l-pairs protocol, from a briefly trained tiny R-FCN on fast synthetic video."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dff.checkpoint import load_checkpoint
from dff.cli import main
from dff.config import ModelConfig
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.detection.evaluate import evaluate_detection
from dff.detection.ground_truth import AnnotatedFrames, FrameBoxes, SyntheticBoxes
from dff.detection.model import build_detection_model
from dff.detection.train import train_detector
from dff.train.config import RunConfig
from dff.train.schedule import OptimiserConfig

#: Fast objects (5 px per frame): at l = 10 a copied key frame's boxes have mostly left their objects.
VIDEO = SyntheticVideoConfig(height=96, width=96, length=40, num_objects=3, num_classes=3, max_speed=5.0, seed=0)
MODEL = ModelConfig(task="detection", feature="tiny", flow="tiny", num_classes=3, class_names=SyntheticVideo(VIDEO).class_names)
TEST = replace(VIDEO, seed=100)
#: Annotated frames 9, 13, … 37: every l = 10 pair exists.
FRAMES, STEP = (9, 40), 4
DATA = f"dataset: synthetic\nsynthetic: {json.dumps(asdict(TEST))}\nframes: {list(FRAMES)}\nframe_step: {STEP}\n"


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    """Frame (Table 3): 300 steps on single frames of 3 training videos, F untrained (about 20 s on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        out = tmp_path_factory.mktemp("detector")
        settings = RunConfig(
            iterations=300, output_dir=str(out), optimiser=OptimiserConfig(lr=0.02), batch_size=4, checkpoint_every=10**6,
            device="cpu", threads=1, seed=0,
        )
        videos = [SyntheticBoxes(SyntheticVideo(replace(VIDEO, seed=s))) for s in range(3)]
        return train_detector(
            build_detection_model(MODEL), sequences=videos, settings=settings, model_config=MODEL, max_offset=0, frozen_parts=("flow_net",)
        )
    finally:
        torch.set_num_threads(threads)


def _held_out() -> list[AnnotatedFrames]:
    return [AnnotatedFrames(SyntheticBoxes(SyntheticVideo(TEST)), range(FRAMES[0], FRAMES[1], STEP))]


def test_eval_json_gives_map_per_mode_equal_to_the_protocol_and_frame_beats_copy(detector, tmp_path, capsys):
    from dff.model_task import task_of

    assert task_of(detector) == "detection"
    data = tmp_path / "data.yaml"
    data.write_text(DATA)
    assert main(["eval", str(detector), str(data), "--json", "--device", "cpu"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["mode"] for r in results] == ["frame", "dff", "copy", "sff"]
    labelled = len(range(FRAMES[0], FRAMES[1], STEP))
    for r in results:
        assert set(r) == {"mode", "key_interval", "mean_ap", "class_ap", "labelled_frames", "pairs", "key_ms", "non_key_ms", "fps"}
        assert list(r["class_ap"]) == list(MODEL.class_names[1:])  # the background has no AP
        # Detection's default l is ImageNet VID's 10: l pairs per annotated frame.
        assert (r["key_interval"], r["labelled_frames"], r["pairs"]) == ((1, labelled, labelled) if r["mode"] == "frame" else (10, labelled, 10 * labelled))
    model, _ = load_checkpoint(detector)
    for r in results:
        direct = evaluate_detection(model, _held_out(), mode=r["mode"], key_interval=10, mean=MODEL.mean, std=MODEL.std)
        assert r["mean_ap"] == pytest.approx(direct.mean_ap, abs=1e-9)
        assert list(r["class_ap"].values()) == pytest.approx(list(direct.class_ap), abs=1e-9)
    figures = {r["mode"]: r["mean_ap"] for r in results}
    # Measured 0.196 against 0.050: the copied features lag objects that moved up to 45 px.
    assert figures["frame"] > figures["copy"] + 0.05


def test_eval_table_names_map_and_a_short_interval_narrows_frame_and_copy(detector, tmp_path, capsys):
    data = tmp_path / "data.yaml"
    data.write_text(DATA)
    assert main(["eval", str(detector), str(data), "--modes", "copy", "-l", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mAP@0.5 (%)" in out and "copy" in out and "mIoU" not in out
    assert main(["eval", str(detector), str(data), "--modes", "copy", "-l", "2", "--json", "--device", "cpu"]) == 0
    short = json.loads(capsys.readouterr().out)["results"][0]
    model, _ = load_checkpoint(detector)
    long = evaluate_detection(model, _held_out(), mode="copy", key_interval=10, mean=MODEL.mean, std=MODEL.std)
    assert short["pairs"] == 2 * short["labelled_frames"] and short["mean_ap"] > long.mean_ap


class Doubled:
    """A boxed sequence at twice the size: every pixel repeated 2×2, boxes ×2."""

    def __init__(self, sequence: AnnotatedFrames) -> None:
        self.sequence = sequence
        self.class_names = sequence.class_names
        self.labelled_frames = sequence.labelled_frames

    def __len__(self) -> int:
        return len(self.sequence)

    def image(self, t: int) -> np.ndarray:
        return self.sequence.image(t).repeat(2, axis=0).repeat(2, axis=1)

    def boxes(self, t: int) -> FrameBoxes:
        found = self.sequence.boxes(t)
        return FrameBoxes(boxes=2 * found.boxes, classes=found.classes)


def test_boxes_of_resized_frames_are_scored_at_the_frames_own_size(detector):
    """Area-shrinking a 2×2-repeated frame gives the frame back: the same detections, scored against boxes ×2, the same AP."""
    model, _ = load_checkpoint(detector)
    common = dict(mode="frame", mean=MODEL.mean, std=MODEL.std)
    native = evaluate_detection(model, _held_out(), **common)
    resized = evaluate_detection(model, [Doubled(s) for s in _held_out()], resize=(VIDEO.height, VIDEO.width), **common)
    assert native.mean_ap > 0.05 and resized.mean_ap == pytest.approx(native.mean_ap, abs=1e-9)


def test_bad_detection_evaluations_are_one_line(detector, tmp_path, capsys):
    data = tmp_path / "data.yaml"
    data.write_text("dataset: camvid\nroot: /nowhere\n")
    assert main(["eval", str(detector), str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "camvid has per-pixel labels, not boxes" in err and "Traceback" not in err
    data.write_text(DATA)
    assert main(["eval", str(detector), str(data), "--scheduler", "adaptive", "--device", "cpu"]) == 2
    assert "is a detection checkpoint: --scheduler scores per-pixel labels" in capsys.readouterr().err
    data.write_text(DATA.replace(f"frame_step: {STEP}", "frame_step: 0"))
    assert main(["eval", str(detector), str(data), "--device", "cpu"]) == 2
    assert "data.frame_step must be >= 1" in capsys.readouterr().err


def test_the_shipped_eval_config_is_the_benchmarks_held_out_test(monkeypatch):
    import importlib.util
    import sys

    from dff.config import load_config
    from dff.detection.evaluate import detection_sequences
    from dff.train.data import VideoConfig

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("detection_benchmark", repo / "benchmarks" / "detection.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    ours = detection_sequences(load_config(VideoConfig, repo / "configs" / "detection" / "eval.yaml"))
    theirs = [AnnotatedFrames(SyntheticBoxes(v), bench.TEST_FRAMES) for v in bench.held_out_videos(bench.SetUp())]
    assert [list(s.labelled_frames) for s in ours] == [list(s.labelled_frames) for s in theirs] and len(ours) == 2
    for mine, reference in zip(ours, theirs):
        np.testing.assert_array_equal(mine.image(37), reference.image(37))
        np.testing.assert_array_equal(mine.boxes(37).boxes, reference.boxes(37).boxes)


def test_a_detector_is_not_trained_under_a_segmentation_configuration(tmp_path):
    """Its checkpoint would read as a segmenter to dff eval, export and run."""
    settings = RunConfig(iterations=1, output_dir=str(tmp_path), device="cpu")
    with pytest.raises(ValueError, match="model_config.task must be 'detection'"):
        train_detector(build_detection_model(MODEL), sequences=[], settings=settings, model_config=replace(MODEL, task="segmentation"), max_offset=0)
    assert not any(tmp_path.iterdir())
