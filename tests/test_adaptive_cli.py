"""``--scheduler fixed|adaptive`` on ``dff run`` and ``dff eval``, end to end with the demo model and a calibration."""

from __future__ import annotations

import json

import pytest
from helpers import REPO, small_clip

from dff.cli import main
from dff.data.episodes import EpisodicVideo, EpisodicVideoConfig
from dff.runtime import open_backend
from dff.runtime.adaptive import CALIBRATION_NAME, save_calibration
from dff.runtime.adaptive_calibration import calibrate

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """The demo model exported, with a calibration measured on two short training videos beside its manifest."""
    out = tmp_path_factory.mktemp("export") / "demo"
    assert main(["export", str(DEMO), "--out", str(out), "--height", "128", "--width", "160"]) == 0
    training = [EpisodicVideo.random(EpisodicVideoConfig(length=60, width=160, shot_frames=(20, 40), seed=1000 + j)) for j in range(2)]
    with open_backend("onnxruntime", model=out, threads=1) as backend:
        report = calibrate(backend, training, max_interval=10, key_stride=10, sweep=6)
    save_calibration(out / CALIBRATION_NAME, report.calibration)
    return out


def test_run_adaptive(export, tmp_path, capsys):
    clip = small_clip(tmp_path / "clip.avi", 12)
    log = tmp_path / "log.jsonl"
    code = main(["run", str(export), str(clip), "--scheduler", "adaptive", "--key-rate", "0.25", "--max-interval", "6",
                 "--log", str(log), "--no-progress"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "AdaptiveInterval(rate=0.25, max_interval=6, decide='before'): " in printed and "s (Eq. 7" not in printed
    paths = [json.loads(line)["path"] for line in log.read_text().splitlines()]
    assert len(paths) == 12 and paths[0] == "key" and "non-key" in paths


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--key-rate", "0.2"], "--key-rate is an adaptive setting: add --scheduler adaptive"),
        (["--scheduler", "adaptive", "--key-rate", "0.2", "--max-interval", "3"], "max_interval must be an integer >= 1/rate"),
        (["--scheduler", "adaptive", "--calibration", "nowhere.json"], "no key-frame calibration at nowhere.json"),
    ],
)
def test_run_errors_are_one_line(export, tmp_path, capsys, flags, message):
    assert main(["run", str(export), str(tmp_path / "none.avi"), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_run_many_sources_adapts_each(export, tmp_path, capsys):
    """Two synthetic videos with cuts as batched streams, each with its own AdaptiveInterval: each stream's key frames
    are those of that video run alone."""
    from dff.sources import VideoWriter

    sources = []
    for j in range(2):
        video = EpisodicVideo.random(EpisodicVideoConfig(length=40, width=160, shot_frames=(12, 20), seed=2000 + j))
        path = tmp_path / f"video{j}.avi"
        with VideoWriter(path, fps=10, fourcc="MJPG") as writer:
            for t in range(len(video)):
                writer.write(video.image(t))
        sources.append(path)
    flags = ["--scheduler", "adaptive", "--key-rate", "0.25", "--max-interval", "6", "--no-progress"]
    assert main(["run", str(export), *map(str, sources), "--out-dir", str(tmp_path / "out"), "--no-labels", *flags]) == 0
    printed = capsys.readouterr().out
    assert printed.count("AdaptiveInterval(rate=0.25, max_interval=6, decide='before'): ") == 2
    for path in sources:
        assert main(["run", str(export), str(path), "--log", str(tmp_path / f"{path.stem}.jsonl"), *flags]) == 0
        alone = [json.loads(line)["path"] for line in (tmp_path / f"{path.stem}.jsonl").read_text().splitlines()]
        batched = [json.loads(line)["path"] for line in (tmp_path / "out" / path.stem / "timings.jsonl").read_text().splitlines()]
        assert batched == alone and len(alone) == 40 and "non-key" in alone and alone.count("key") >= 3


def test_bench_scheduled(export, capsys):
    common = ["bench", str(export), "--intervals", "1,5", "--frames", "20", "--repeats", "1", "--warmup-frames", "1", "--no-flops", "--json"]
    assert main([*common, "--scheduler", "fixed", "-l", "5"]) == 0
    fixed = json.loads(capsys.readouterr().out)["scheduled"]
    assert fixed["scheduler"] == "FixedInterval(5)" and fixed["key_share"] == 0.2 and fixed["flow_share"] == 0.8
    assert fixed["fps"] > 0 and fixed["speedup"]["median"] > 0 and 0 < fixed["r_measured"]
    assert main([*common, "--scheduler", "adaptive", "--key-rate", "0.25", "--max-interval", "6"]) == 0
    adaptive = json.loads(capsys.readouterr().out)["scheduled"]
    assert adaptive["scheduler"].startswith("AdaptiveInterval(rate=0.25, max_interval=6") and 1 / 6 <= adaptive["key_share"] < 1
    assert main([*common, "--key-rate", "0.2"]) == 2
    error = capsys.readouterr().err
    assert "--key-rate is an adaptive setting: add --scheduler adaptive" in error and error.count("\n") == 1


def test_eval_scheduled_json(export, tmp_path, capsys):
    data = tmp_path / "data.yaml"
    data.write_text("dataset: synthetic\nsynthetic: {height: 64, width: 64, length: 20, max_speed: 3.0, seed: 100}\n")
    assert main(["eval", str(DEMO), str(data), "--scheduler", "fixed", "-l", "5", "--json", "--threads", "1"]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert fixed["key_share"] == 0.2 and fixed["frames"] == 20 and 0 <= fixed["p5_frame_miou"] <= fixed["miou"] <= 1
    assert main(["eval", str(DEMO), str(data), "--scheduler", "adaptive", "--key-rate", "0.2", "--max-interval", "10",
                 "--calibration", str(export / CALIBRATION_NAME), "--json", "--threads", "1"]) == 0  # fmt: skip
    adaptive = json.loads(capsys.readouterr().out)
    assert adaptive["scheduler"].startswith("AdaptiveInterval(rate=0.2") and 0 < adaptive["key_share"] <= 0.5
