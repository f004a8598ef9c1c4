"""Training: steps lower the loss, Table 3's variants train the right parts, checkpoints resume exactly, configs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dff.checkpoint import read_checkpoint, save_checkpoint
from dff.cli import main
from dff.config import ModelConfig, load_config
from dff.data.flying_shapes import FlyingShapesConfig
from dff.data.synthetic import SyntheticVideoConfig
from dff.errors import CheckpointError, ConfigError
from dff.models import build_model
from dff.models.preprocess import FrameNormalizer
from dff.train.config import FlowTrainConfig, TrainConfig
from dff.train.data import TrainDataConfig, collate_pairs
from dff.train.flow import train_flow
from dff.train.loop import CHECKPOINT_NAME, ITERATION_KEY, MOMENTUM_PREFIX, run_training
from dff.train.objectives import SegmentationObjective
from dff.train.schedule import OptimiserConfig, make_sgd
from dff.train.segmentation import build_variant, train
from dff.train.variants import VARIANTS

#: Tiny models train and run faster on one thread (a second one mostly waits for a busy core).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
DATA = TrainDataConfig(synthetic=SyntheticVideoConfig(height=64, width=64, length=12, max_speed=2.0, seed=0), max_offset=3)


def config(tmp_path: Path, variant: str = "frame", **changes) -> TrainConfig:
    values = dict(
        variant=variant,
        iterations=2,
        output_dir=str(tmp_path / variant),
        model=MODEL,
        data=DATA,
        batch_size=2,
        device="cpu",
        threads=1,
        optimiser=OptimiserConfig(lr=0.01),
    )
    return TrainConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def starts(tmp_path_factory) -> dict[str, str]:
    """Random but distinct checkpoints standing in for the Frame model and for F's pre-training."""
    folder = tmp_path_factory.mktemp("starts")
    paths = {}
    for seed, name in ((1, "network"), (2, "flow")):
        torch.manual_seed(seed)
        paths[name] = str(save_checkpoint(folder / f"{name}.safetensors", build_model(MODEL), MODEL))
    return paths


def part_state(model: torch.nn.Module, part: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in getattr(model, part).state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class TestSteps:
    @pytest.mark.parametrize("variant", ["frame", "dff"])
    def test_sgd_steps_lower_the_loss(self, variant):
        torch.manual_seed(0)
        dataset = DATA.pairs(single_frames=variant == "frame")
        batch = collate_pairs([dataset[n] for n in (2, 5, 8, 11)])
        model = build_model(MODEL)
        objective = SegmentationObjective(model=model, normalizer=FrameNormalizer(mean=MODEL.mean, std=MODEL.std))
        optimizer = make_sgd([p for p in model.parameters() if p.requires_grad], OptimiserConfig(lr=0.05))
        losses = []
        for _ in range(25):
            loss = objective(*batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0], losses

    def test_learning_rate_drops_tenfold_at_the_step(self):
        schedule = OptimiserConfig(lr=1e-3)  # Section 5.1: 10^-3 for 15K iterations, then 10^-4 for 5K
        assert schedule.learning_rate(14_999, 20_000) == 1e-3
        assert schedule.learning_rate(15_000, 20_000) == pytest.approx(1e-4)
        assert OptimiserConfig(lr=1e-3, lr_step=10).learning_rate(10, 20_000) == pytest.approx(1e-4)


class TestVariants:
    @pytest.mark.parametrize("variant", ["frame", "dff", "dff-fix-n", "dff-fix-f", "dff-separate"])
    def test_variant_trains_exactly_its_parts(self, tmp_path, starts, variant):
        spec = VARIANTS[variant]
        inits = {
            "init_network": starts["network"] if spec.network_init != "unused" else None,
            "init_flow": starts["flow"] if spec.flow_init != "unused" else None,
        }
        cfg = config(tmp_path, variant, iterations=0 if not spec.trains else 2, **inits)
        torch.manual_seed(cfg.seed)  # as train() does: the same random start
        before, frozen = build_variant(cfg)
        initial = {part: part_state(before, part) for part in ("feature_net", "task_net", "flow_net")}
        # The starts were loaded: N from the "Frame" checkpoint, F from the "flow" one.
        if inits["init_network"]:
            assert same(initial["feature_net"], part_state(read_model(starts["network"]), "feature_net"))
        if inits["init_flow"]:
            assert same(initial["flow_net"], part_state(read_model(starts["flow"]), "flow_net"))
        assert {id(m) for m in frozen} == {
            id(getattr(before, p))
            for p, trained in (("feature_net", spec.train_network), ("task_net", spec.train_network), ("flow_net", spec.train_flow))
            if not trained
        }

        after = read_model(train(cfg))
        changed = {part: not same(initial[part], part_state(after, part)) for part in initial}
        assert changed == {"feature_net": spec.train_network, "task_net": spec.train_network, "flow_net": spec.train_flow}

    def test_frozen_parts_stay_in_eval_mode(self, tmp_path, starts):
        model, frozen = build_variant(config(tmp_path, "dff-fix-n", init_network=starts["network"]))
        objective = SegmentationObjective(model=model, normalizer=FrameNormalizer(mean=MODEL.mean, std=MODEL.std), frozen=frozen)
        objective.train()
        assert not model.feature_net.training and model.flow_net.training
        assert not any(p.requires_grad for p in model.feature_net.parameters())

    def test_flow_pretraining_trains_flow_but_not_its_scale(self, tmp_path):
        torch.manual_seed(0)
        initial = build_model(MODEL)
        cfg = FlowTrainConfig(
            model=MODEL,
            data=FlyingShapesConfig(height=64, width=64, length=16),
            iterations=3,
            batch_size=2,
            output_dir=str(tmp_path / "flow"),
            device="cpu",
            threads=1,
        )
        after = read_model(train_flow(cfg))
        assert not same(part_state(initial, "flow_net"), part_state(after, "flow_net"))
        assert torch.equal(after.flow_net.scale.bias, torch.ones_like(after.flow_net.scale.bias))  # S stays at 1
        assert same(part_state(initial, "feature_net"), part_state(after, "feature_net"))


def read_model(path) -> torch.nn.Module:
    checkpoint = read_checkpoint(path)
    model = build_model(checkpoint.config)
    model.load_state_dict(checkpoint.weights)
    return model


class Interrupting(torch.utils.data.Dataset):
    """The real pair dataset, interrupted (as by Ctrl-C) when item ``stop_at`` is requested."""

    def __init__(self, dataset, stop_at: int) -> None:
        self.dataset, self.stop_at, self.requested = dataset, stop_at, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, n):
        self.requested += 1
        if self.requested > self.stop_at:
            raise KeyboardInterrupt
        return self.dataset[n]


class TestCheckpoints:
    def run(self, cfg: TrainConfig, dataset, resume: bool = False):
        from dff.train.distributed import start

        torch.manual_seed(cfg.seed)
        model, frozen = build_variant(cfg)
        objective = SegmentationObjective(model=model, normalizer=FrameNormalizer(mean=MODEL.mean, std=MODEL.std), frozen=frozen)
        return run_training(
            objective=objective,
            model=model,
            model_config=cfg.model,
            dataset=dataset,
            settings=cfg,
            group=start("cpu"),
            resume=resume,
            run_description=cfg.run_description(),
            collate=collate_pairs,
        )

    def test_interrupted_run_resumes_where_its_last_checkpoint_left_off(self, tmp_path):
        base = config(tmp_path, "dff", iterations=6, checkpoint_every=2, optimiser=OptimiserConfig(lr=0.01, lr_step=4))
        dataset = DATA.pairs(single_frames=False)
        straight = read_checkpoint(self.run(replace(base, output_dir=str(tmp_path / "straight")), dataset))
        straight_state = read_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME)

        # Interrupted during iteration 5 (items 9-10 of batch size 2): the checkpoint after iteration 4 survives.
        broken = replace(base, output_dir=str(tmp_path / "broken"))
        with pytest.raises(KeyboardInterrupt):
            self.run(broken, Interrupting(dataset, stop_at=9))
        survivor = read_checkpoint(tmp_path / "broken" / CHECKPOINT_NAME)
        assert survivor.metadata[ITERATION_KEY] == "4"
        assert any(k.startswith(MOMENTUM_PREFIX) for k in survivor.state)
        assert not list((tmp_path / "broken").glob(".*.tmp"))

        resumed = read_checkpoint(self.run(broken, dataset, resume=True))
        for name, tensor in straight.weights.items():
            assert torch.equal(tensor, resumed.weights[name]), name
        resumed_state = read_checkpoint(tmp_path / "broken" / CHECKPOINT_NAME)
        assert resumed_state.metadata[ITERATION_KEY] == "6"
        for name, tensor in straight_state.state.items():
            assert torch.equal(tensor, resumed_state.state[name]), name

    def test_resume_refuses_a_checkpoint_of_another_run(self, tmp_path):
        cfg = config(tmp_path, "frame", iterations=2, checkpoint_every=1)
        train(cfg)
        with pytest.raises(CheckpointError, match="different run"):
            train(replace(cfg, optimiser=OptimiserConfig(lr=0.5)), resume=True)

    def test_resume_without_checkpoint_names_the_file(self, tmp_path):
        with pytest.raises(CheckpointError, match=CHECKPOINT_NAME):
            train(config(tmp_path), resume=True)


class TestConfig:
    def write(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "train.yaml"
        path.write_text(text)
        return path

    def test_yaml_config_loads(self, tmp_path):
        path = self.write(
            tmp_path,
            "variant: frame\niterations: 5\noutput_dir: out\nmodel: {feature: tiny, flow: tiny, num_classes: 4}\n"
            "data: {dataset: synthetic, synthetic: {height: 64, width: 64}, max_offset: 4}\noptimiser: {lr: 0.002, lr_step: 3}\n",
        )
        cfg = load_config(TrainConfig, path)
        assert (cfg.data.max_offset, cfg.data.synthetic.height, cfg.optimiser.lr, cfg.optimiser.momentum) == (4, 64, 0.002, 0.9)

    @pytest.mark.parametrize(
        "text, message",
        [
            ("variant: frame\niterations: 5\noutput_dir: o\nmodel: {feature: tiny}\nlearning_rate: 1\n", r"unknown key\(s\) \['learning_rate'\]"),
            ("variant: frame\niterations: 5\noutput_dir: o\nmodel: {feature: tiny}\ndata: {max_ofset: 3}\n", "max_ofset"),
            ("variant: dff-fix-n\niterations: 5\noutput_dir: o\nmodel: {feature: tiny}\n", "needs init_network"),
            ("variant: dff-separate\niterations: 5\noutput_dir: o\nmodel: {feature: tiny}\ninit_network: a\ninit_flow: b\n", "iterations: 0"),
            ("variant: frame\niterations: 5\noutput_dir: o\nmodel: {feature: tiny}\ninit_flow: f\n", "does not use init_flow"),
            ("variant: frame\niterations: 5\noutput_dir: o\nmodel: {feature: tiny}\nbatch_size: 0\n", "batch_size=0"),
            ("variant: fast\niterations: 5\noutput_dir: o\nmodel: {feature: tiny}\n", "'fast' is not one of"),
        ],
    )
    def test_bad_config_is_a_clear_error(self, tmp_path, text, message):
        with pytest.raises(ConfigError, match=message):
            load_config(TrainConfig, self.write(tmp_path, text))

    def test_several_synthetic_videos_have_consecutive_seeds(self):
        sequences = replace(DATA, videos=3, frames=(2, 5)).sequences()
        assert [str(s) for s in sequences] == [f"synthetic video (seed {n})" for n in range(3)]
        assert all(s.labelled_frames == [2, 3, 4] for s in sequences)
        with pytest.raises(ConfigError, match="only the synthetic dataset"):
            TrainDataConfig(dataset="camvid", root="x", videos=2)

    def test_class_count_must_match_the_data(self, tmp_path):
        with pytest.raises(ConfigError, match="num_classes is 7 but the synthetic data has 4 classes"):
            train(config(tmp_path, model=replace(MODEL, num_classes=7)))

    def test_flow_start_of_another_architecture_is_refused(self, tmp_path):
        other = ModelConfig(feature="tiny", flow="tiny", num_classes=4, feature_channels=16)
        path = save_checkpoint(tmp_path / "f.safetensors", build_model(other), other)
        with pytest.raises(CheckpointError, match="cannot start flow_net.*channels"):
            build_variant(config(tmp_path, "dff", init_flow=str(path)))


def test_cli_trains_and_names_the_model(tmp_path, capsys):
    path = tmp_path / "frame.json"
    settings = {
        "variant": "frame",
        "iterations": 2,
        "batch_size": 1,
        "output_dir": str(tmp_path / "run"),
        "device": "cpu",
        "threads": 1,
        "model": {"feature": "tiny", "flow": "tiny", "num_classes": 4},
        "data": {"synthetic": {"height": 64, "width": 64, "length": 4}},
    }
    path.write_text(json.dumps(settings))
    assert main(["train", str(path)]) == 0
    model = tmp_path / "run" / "model.safetensors"
    assert f"wrote {model}" in capsys.readouterr().out
    checkpoint = read_checkpoint(model)
    assert checkpoint.config.class_names == ("background", "disc", "box", "triangle")  # the data's names, for the runtime
    assert checkpoint.state == {}  # the final model carries no optimizer state
