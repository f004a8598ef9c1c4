"""Two training processes under torchrun (gloo on CPU) end with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from dff.checkpoint import read_checkpoint
from dff.config import ModelConfig
from dff.models import build_model
from dff.train.distributed import weights_digest
from dff.train.loop import CHECKPOINT_NAME, MODEL_NAME, REPLICAS_KEY

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_train_identical_replicas(tmp_path):
    model = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
    config = {
        "variant": "dff",
        "iterations": 3,
        "checkpoint_every": 2,
        "batch_size": 1,
        "output_dir": str(tmp_path / "run"),
        "device": "cpu",
        "threads": 1,
        "model": {"feature": "tiny", "flow": "tiny", "num_classes": 4},
        "data": {"synthetic": {"height": 64, "width": 64, "length": 12}, "max_offset": 3},
    }
    path = tmp_path / "dff.json"
    path.write_text(json.dumps(config))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "dff.train", str(path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote") == 1  # only rank 0 reports

    for name in (CHECKPOINT_NAME, MODEL_NAME):
        checkpoint = read_checkpoint(tmp_path / "run" / name)
        digests = json.loads(checkpoint.metadata[REPLICAS_KEY])
        # Both ranks held bit-identical weights, and those are the weights written.
        assert len(digests) == 2 and digests[0] == digests[1] == weights_digest(checkpoint.weights)

    torch.manual_seed(0)
    initial = build_model(model).state_dict()
    trained = read_checkpoint(tmp_path / "run" / MODEL_NAME).weights
    assert not torch.equal(initial["task_net.score.weight"], trained["task_net.score.weight"])
