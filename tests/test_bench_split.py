"""The split point of N (Table 5): split models build for every k, compute N exactly on key frames, k = 1 is the
default, and dff train's loop trains them (dff.benchmark.training)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from dff.benchmark.training import train_built_model
from dff.config import ModelConfig
from dff.data.synthetic import SyntheticVideoConfig
from dff.errors import ConfigError
from dff.models import SegmentationTaskNet, build_model, flownet_tiny, resnet101
from dff.models.split import build_split_model, network_blocks, split_channels, split_model, task_layers
from dff.train.config import TrainConfig
from dff.train.data import TrainDataConfig

CONFIG = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
#: The tiny net has one unit per stage: N_task can take the score conv, the head and conv5's unit (k = 0 … 3).
TINY_SPLITS = (0, 1, 2, 3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def frames() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 64, 96, generator=generator), torch.randn(2, 3, 64, 96, generator=generator)


def perturb_flow(model: torch.nn.Module) -> None:
    """A non-zero M and S ≠ 1: an untrained F propagates features unchanged, which would hide a wrong split."""
    with torch.no_grad():
        model.flow_net.decoder[-1].predict_flow.weight.normal_(std=0.05)
        model.flow_net.scale.weight.normal_(std=0.05)


class TestSplitModel:
    @pytest.mark.parametrize("task_blocks", TINY_SPLITS)
    def test_builds_and_computes_n_on_key_frames(self, task_blocks: int) -> None:
        torch.manual_seed(0)
        default = build_model(CONFIG).eval()
        torch.manual_seed(0)
        model = build_split_model(CONFIG, task_blocks=task_blocks).eval()
        key, current = frames()
        channels = split_channels(default.feature_net, default.task_net, task_blocks)
        with torch.no_grad():
            feat = model.key(key)
            assert feat.shape == (2, channels, 4, 6)
            assert model.flow_net(key, current)[1].shape == (2, channels, 4, 6)
            # The blocks are N's own: the key-frame path is N whatever the split.
            assert torch.equal(model.task(feat), default.task(default.key(key)))
            assert model(key, current).shape == (2, CONFIG.num_classes, 4, 6)
        assert task_layers(model.task_net) == [0, 1, 2, 6][task_blocks]  # conv5's tiny unit has a projection shortcut

    def test_one_block_is_the_default_model(self) -> None:
        torch.manual_seed(0)
        default = build_model(CONFIG).eval()
        perturb_flow(default)
        split = split_model(
            feature_net=default.feature_net, flow_net=default.flow_net, task_net=default.task_net, task_blocks=1
        ).eval()
        key, current = frames()
        with torch.no_grad():
            assert torch.equal(split(key, current), default(key, current))
            assert torch.equal(split.task_net.probabilities(split.key(key), (64, 96)), default.task_net.probabilities(default.key(key), (64, 96)))

    def test_split_models_train(self) -> None:
        model = build_split_model(CONFIG, task_blocks=0)
        key, current = frames()
        model(key, current).square().mean().backward()
        assert model.flow_net.scale.weight.grad is not None and model.feature_net.score.weight.grad is not None

    @pytest.mark.parametrize("task_blocks", [-1, 4, 1.0])
    def test_rejects_split_off_the_stride_16_grid(self, task_blocks: object) -> None:
        with pytest.raises(ValueError, match="task_blocks must be an integer in 0..3"):
            build_split_model(CONFIG, task_blocks=task_blocks)  # type: ignore[arg-type]

    def test_rejects_a_flow_net_of_the_wrong_width(self) -> None:
        default = build_model(CONFIG)
        with pytest.raises(ValueError, match="F's scale field needs 4; flow_net gives 32"):
            split_model(feature_net=default.feature_net, flow_net=default.flow_net, task_net=default.task_net, task_blocks=0)

    def test_table5_layer_counts_for_resnet101(self) -> None:
        # Table 5: N_task with 0, 1, 5, 12 and 21 weight layers (5 = head + conv5c; 12 = + conv5a, b; 21 = + 3 conv4 units).
        with torch.device("meta"):
            feature_net, task_net = resnet101(), SegmentationTaskNet(in_channels=1024, num_classes=19)
            layers = {}
            for task_blocks in (0, 1, 2, 3, 5, 8):
                model = split_model(
                    feature_net=feature_net,
                    flow_net=flownet_tiny(feature_channels=split_channels(feature_net, task_net, task_blocks)),
                    task_net=task_net,
                    task_blocks=task_blocks,
                )
                layers[task_blocks] = task_layers(model.task_net)
        assert layers == {0: 0, 1: 1, 2: 2, 3: 5, 5: 12, 8: 21}
        assert [name for name, _, _ in network_blocks(feature_net, task_net)[-4:]] == ["conv5_1", "conv5_2", "head", "score"]


class TestTrainBuiltModel:
    """dff train's loop on a model no ModelConfig describes: a split model, two real SGD steps on the synthetic video."""

    @staticmethod
    def config(variant: str, output_dir: Path) -> TrainConfig:
        video = SyntheticVideoConfig(height=64, width=64, length=12, num_classes=CONFIG.num_classes)
        return TrainConfig(
            variant=variant,
            model=CONFIG,
            data=TrainDataConfig(dataset="synthetic", synthetic=video, max_offset=3),
            iterations=2,
            batch_size=2,
            output_dir=str(output_dir),
            device="cpu",
            threads=1,
        )

    def test_frame_trains_n_and_keeps_f(self, tmp_path: Path) -> None:
        torch.manual_seed(0)
        model = build_split_model(CONFIG, task_blocks=0)
        before = copy.deepcopy(model.state_dict())
        train_built_model(model, self.config("frame", tmp_path))
        after = model.state_dict()
        assert not torch.equal(before["feature_net.score.weight"], after["feature_net.score.weight"])
        assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("flow_net."))
        # The frozen F is trainable again for the next stage.
        assert all(p.requires_grad for p in model.parameters())

    def test_rejects_init_checkpoints(self, tmp_path: Path) -> None:
        config = dataclasses.replace(self.config("dff", tmp_path), init_flow=str(tmp_path / "flow.safetensors"))
        with pytest.raises(ConfigError, match="leave init_network and init_flow unset"):
            train_built_model(build_split_model(CONFIG, task_blocks=1), config)
