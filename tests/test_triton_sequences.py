"""The server-side pieces without a server: the per-sequence runtime and the model repository writer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dff.cli import main
from dff.errors import ConfigError, OutputError, VideoError
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.serve import repository
from dff.serve.repository import ModelSettings, model_config, write_repository
from dff.serve.sequences import SequenceFrame, SequenceRuntime, UnknownSequence, handle_bytes
from helpers import vtest_frames


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sequences_start_end_and_refuse_unknown_ones_alone(tiny_export: Path) -> None:
    frames = vtest_frames(5, (64, 96))
    with open_backend("onnxruntime", model=tiny_export) as backend:
        alone = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(2))
        expected = [alone(image) for image in frames]
        sequences = SequenceRuntime(backend=backend, interval=2, idle_timeout_s=10, clock=Clock())
        got = []
        for i, image in enumerate(frames):
            requests = {7: SequenceFrame(image, start=i == 0, end=i == len(frames) - 1)}
            requests[8] = SequenceFrame(image)  # never started: refused, and sequence 7 unaffected
            if i == 2:
                requests[9] = SequenceFrame(image[..., 0])  # bad frame: refused alone
            results = sequences.step(requests)
            assert isinstance(results[8], UnknownSequence) and "START" in str(results[8])
            if i == 2:
                assert isinstance(results[9], VideoError)
            got.append(results[7])
        assert [g.key for g in got] == [e.key for e in expected]
        assert all(np.array_equal(g.labels, e.labels) for g, e in zip(got, expected))
        assert sequences.held == 0  # ended with its last frame
        assert isinstance(sequences.step({7: SequenceFrame(frames[0])})[7], UnknownSequence)
        assert sequences.requests == 2 * len(frames) + 2 and sequences.largest_batch == 3


def test_idle_sequences_are_freed_and_their_memory_counted(tiny_export: Path) -> None:
    image = vtest_frames(1, (64, 96))[0]
    clock = Clock()
    with open_backend("onnxruntime", model=tiny_export) as backend:
        sequences = SequenceRuntime(backend=backend, interval=3, idle_timeout_s=5, clock=clock)
        sequences.step({1: SequenceFrame(image, start=True), 2: SequenceFrame(image, start=True)})
        two = sequences.state_bytes()
        state = sequences.streams[1]
        assert two == 2 * (handle_bytes(state.key_frame) + handle_bytes(state.key_feat)) > 0
        clock.now = 4.0
        sequences.step({1: SequenceFrame(image)})
        clock.now = 6.0  # sequence 2 idle for 6 s > 5, sequence 1 for 2 s
        assert sequences.free_idle() == 1 and sequences.held == 1 and sequences.state_bytes() == two // 2
        assert isinstance(sequences.step({2: SequenceFrame(image)})[2], UnknownSequence)
        assert sequences.step({2: SequenceFrame(image, start=True)})[2].key  # restarted: a key frame


def test_the_repository_holds_config_model_and_export(tiny_export: Path, tmp_path: Path) -> None:
    settings = ModelSettings(interval=4, max_sequences=6, idle_timeout_s=12.5, instances=2, device="gpu", gpus=(0, 1),
                             options={"provider": "cuda"})
    model = write_repository(tiny_export, tmp_path / "repo", settings)
    config = (model / "config.pbtxt").read_text()
    for text in ("max_batch_size: 6", "max_candidate_sequences: 6", "max_sequence_idle_microseconds: 12500000",
                 "CONTROL_SEQUENCE_START", "CONTROL_SEQUENCE_END", "CONTROL_SEQUENCE_CORRID", "count: 2 kind: KIND_GPU",
                 "gpus: [0, 1]", 'key: "interval" value { string_value: "4" }'):
        assert text in config
    assert (model / "1" / "model.py").read_text() == Path(repository.__file__).with_name("triton_model.py").read_text()
    assert (model / "1" / "export" / "manifest.json").is_file()
    # The model reads its settings back from config.pbtxt's parameters (protobuf text strings, JSON-escaped).
    found = re.findall(r'parameters \{ key: "(\w+)" value \{ string_value: (".*") \} \}', config)
    parameters = {key: json.loads(value) for key, value in found}
    assert json.loads(parameters["class_names"]) == ["class0", "class1", "class2"]
    assert ModelSettings.from_parameters(parameters) == ModelSettings(interval=4, idle_timeout_s=12.5, options={"provider": "cuda"})
    write_repository(tiny_export, tmp_path / "repo", settings)  # rewriting its own model is allowed
    (tmp_path / "repo" / "mine").mkdir()
    with pytest.raises(OutputError, match="not a model this wrote"):
        write_repository(tiny_export, tmp_path / "repo", ModelSettings(name="mine"))
    assert "EXECUTION_ENV_PATH" in model_config(ModelSettings(execution_env="$$TRITON_MODEL_DIRECTORY/env.tar.gz"), ())


def test_dff_triton_checks_before_writing(tiny_export: Path, tmp_path: Path, capsys) -> None:
    assert main(["triton", str(tiny_export), "--out", str(tmp_path / "repo"), "-O", "bogus=1"]) == 2
    assert "takes no option(s) ['bogus']" in capsys.readouterr().err
    assert main(["triton", str(tiny_export), "--out", str(tmp_path / "repo"), "-l", "0"]) == 2
    assert "interval must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "repo" / "dff").exists()
    assert main(["triton", str(tiny_export), "--out", str(tmp_path / "repo")]) == 0
    assert (tmp_path / "repo" / "dff" / "config.pbtxt").is_file()
    with pytest.raises(ConfigError):
        ModelSettings(idle_timeout_s=0)
