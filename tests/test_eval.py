"""The evaluation protocol and its modes on a tiny model, SFF's flow convention, and ``dff eval``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dff.checkpoint import save_checkpoint
from dff.cli import main
from dff.config import ModelConfig
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.eval.propagation import OpticalFlowPropagation
from dff.eval.protocol import MODES, evaluate, evaluate_modes
from dff.models import build_model
from dff.train.data import VideoConfig
from dff.train.feature_flow import feature_flow

#: Tiny models train and run faster on one thread (a second one mostly waits for a busy core).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
VIDEO = SyntheticVideoConfig(height=64, width=64, length=8, max_speed=3.0, seed=4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(MODEL).eval()


def run(model, mode, key_interval=3, sequences=None):
    return evaluate(
        model,
        sequences or [SyntheticVideo(VIDEO)],
        mode=mode,
        key_interval=key_interval,
        num_classes=MODEL.num_classes,
        mean=MODEL.mean,
        std=MODEL.std,
    )


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_scores_in_range_over_the_paper_s_pairs(model, mode):
    result = run(model, mode, key_interval=3)
    assert 0.0 <= result.miou <= 1.0
    assert result.fps > 0 and result.key_ms > 0
    assert result.labelled_frames == VIDEO.length
    # l = 3: frame i is evaluated from keys max(0, i-2) … i → 1 + 2 + 3·6 pairs; frame mode only (i, i).
    assert result.pairs == (VIDEO.length if mode == "frame" else 1 + 2 + 3 * (VIDEO.length - 2))
    assert (result.non_key_ms is None) == (mode == "frame")


def test_dff_with_zero_flow_and_unit_scale_is_copy(model):
    """A fresh F predicts M = 0 and S = 1 (Section 3's initialisation): propagation is then the identity."""
    frames = torch.randn(2, 3, 64, 64)
    flow, scale = model.flow_net(frames, frames.flip(0))
    assert torch.count_nonzero(flow) == 0 and torch.all(scale == 1)
    dff, copy = run(model, "dff"), run(model, "copy")
    assert dff.miou == copy.miou and dff.class_iou == copy.class_iou


def test_frame_mode_is_any_mode_with_key_interval_one(model):
    frame = run(model, "frame")
    for mode in ("dff", "copy", "sff"):
        assert run(model, mode, key_interval=1).miou == frame.miou


def test_sff_flow_points_from_the_current_frame_into_the_key_frame():
    """DIS's flow must follow the paper's convention, M_{i→k}, which the synthetic video gives exactly."""
    video = SyntheticVideo(SyntheticVideoConfig(height=128, width=128, length=6, max_speed=3.0, seed=2))
    k, i = 0, 4
    exact = video.flow(current=i, key=k)
    estimated = OpticalFlowPropagation(preset="medium").image_flow(video.image(k), video.image(i))
    error = np.linalg.norm(estimated - exact, axis=2)
    # Occlusions spoil the mean; most pixels are matched well.
    assert np.median(error) < 0.2 * np.linalg.norm(exact, axis=2).mean()
    assert error.mean() < 0.5 * np.linalg.norm(-estimated - exact, axis=2).mean()  # not the forward flow


def test_feature_flow_is_image_flow_over_sixteen_on_the_feature_grid():
    flow = torch.zeros(1, 2, 32, 64)
    flow[:, 0] = 16.0
    flow[:, 1, :16] = -8.0
    out = feature_flow(flow, stride=16)
    assert out.shape == (1, 2, 2, 4)
    assert torch.all(out[:, 0] == 1.0) and out[0, 1, 0].tolist() == [-0.5] * 4 and out[0, 1, 1].tolist() == [0.0] * 4


def test_labels_outside_the_selected_frames_are_not_evaluated(model):
    selected = VideoConfig(synthetic=VIDEO, frames=(5, 8))
    (result,) = evaluate_modes(model, MODEL, selected, modes=["dff"], key_interval=3)
    assert result.labelled_frames == 3 and result.pairs == 9  # keys 3 and 4 are used as key frames only


def test_eval_cli_prints_json_with_class_names(tmp_path, capsys):
    torch.manual_seed(0)
    named = ModelConfig(feature="tiny", flow="tiny", num_classes=4, class_names=("background", "disc", "box", "triangle"))
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", build_model(named), named)
    data = tmp_path / "data.yaml"
    data.write_text("dataset: synthetic\nsynthetic: {height: 64, width: 64, length: 6, seed: 3}\n")
    assert main(["eval", str(checkpoint), str(data), "--modes", "frame", "copy", "--key-interval", "2", "--json", "--device", "cpu"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["mode"] for r in results] == ["frame", "copy"]
    assert set(results[0]["class_iou"]) == {"background", "disc", "box", "triangle"}


def test_eval_cli_table_and_bad_frame_size(tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "m.safetensors", build_model(MODEL), MODEL)
    data = tmp_path / "data.yaml"
    data.write_text("dataset: synthetic\nsynthetic: {height: 72, width: 64, length: 3}\n")
    assert main(["eval", str(checkpoint), str(data), "--modes", "frame", "--device", "cpu"]) == 2
    assert "72x64" in capsys.readouterr().err  # the frame size, and the fix, in one line
    data.write_text("dataset: synthetic\nsynthetic: {height: 72, width: 64, length: 3}\nresize: [64, 64]\n")
    assert main(["eval", str(checkpoint), str(data), "--modes", "frame", "dff", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mIoU (%)" in out and "DFF" in out


def test_class_count_mismatch_is_named(model, tmp_path):
    other = ModelConfig(feature="tiny", flow="tiny", num_classes=6)
    with pytest.raises(ValueError, match="model has 6 classes but the synthetic data has 4"):
        evaluate_modes(build_model(other), other, VideoConfig(synthetic=VIDEO), modes=["frame"])
