"""Checkpoint round trip and every bad-checkpoint error."""

import json

import pytest
import torch

from dff.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from dff.cli import main
from dff.config import ModelConfig, from_dict, load_config, to_dict
from dff.errors import CheckpointError, ConfigError
from dff.models import build_model

TINY = ModelConfig(feature="tiny", flow="tiny", num_classes=5, class_names=("bg", "a", "b", "c", "d"))


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY)
    path = save_checkpoint(tmp_path / "m.safetensors", model, TINY, state={"iteration": torch.tensor(7)})
    return path, model


def test_round_trip_restores_weights_config_and_state(checkpoint):
    path, model = checkpoint
    loaded, config = load_checkpoint(path)
    assert config == TINY
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert int(read_checkpoint(path).state["iteration"]) == 7
    assert not list(path.parent.glob(".*tmp*"))  # the atomic write left no temporary file


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist.*dff init"):
        read_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_checkpoint(checkpoint):
    path, _ = checkpoint
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not written by dff"):
        read_checkpoint(path)


def test_weights_that_do_not_match_the_config(tmp_path):
    wide = ModelConfig(feature="tiny", flow="tiny", num_classes=5, feature_channels=16)
    path = save_checkpoint(tmp_path / "m.safetensors", build_model(wide), TINY)  # config says 32 channels
    with pytest.raises(CheckpointError, match="does not match its model configuration.*mis-shaped"):
        load_checkpoint(path)


def test_invalid_config_in_checkpoint(tmp_path, checkpoint):
    from safetensors.torch import load_file, save_file

    path, _ = checkpoint
    bad = dict(to_dict(TINY), flow="warp-drive")
    save_file(load_file(str(path)), str(path), metadata={"dff.format": "dff-checkpoint-1", "dff.model_config": json.dumps(bad)})
    with pytest.raises(CheckpointError, match="invalid model configuration.*warp-drive"):
        read_checkpoint(path)


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['num_clases'\]"):
        from_dict(ModelConfig, {"num_clases": 3})
    with pytest.raises(ConfigError, match="'resnet18' is not one of"):
        from_dict(ModelConfig, {"feature": "resnet18"})
    with pytest.raises(ConfigError, match="num_classes must be >= 2"):
        ModelConfig(num_classes=1)
    yaml_file = tmp_path / "m.yaml"
    yaml_file.write_text("feature: tiny\nflow: tiny\nnum_classes: 3\n")
    assert load_config(ModelConfig, yaml_file) == ModelConfig(feature="tiny", flow="tiny", num_classes=3)


def test_dff_init_writes_a_loadable_checkpoint(tmp_path, capsys):
    assert main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "5", "--out", str(tmp_path)]) == 0
    model, config = load_checkpoint(tmp_path / "model.safetensors")
    assert (config.feature, config.flow, config.num_classes, config.channels) == ("tiny", "tiny", 5, 32)
    assert "wrote" in capsys.readouterr().out


def test_cli_prints_user_errors_as_one_line(tmp_path, capsys):
    code = main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "dff init: error: num_classes must be >= 2 (C categories + background), got 1"
