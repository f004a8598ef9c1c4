"""Shared fixtures: paths to the real data beside the repository, a tiny export, one torch thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dff.quiet_openvino import import_openvino

# First, so that the test modules' own `import openvino` finds it imported without its telemetry (dff.quiet_openvino).
import_openvino()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real frames, videos, flow and labels); tests skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of a tiny randomly initialised model, frames 64x64 to 128x160 (one per test module)."""
    import torch

    from dff.checkpoint import save_checkpoint
    from dff.config import ModelConfig
    from dff.export import ExportOptions, export_checkpoint
    from dff.models import build_model

    root = tmp_path_factory.mktemp("tiny_export")
    config = ModelConfig(feature="tiny", flow="tiny", num_classes=3)
    torch.manual_seed(0)
    save_checkpoint(root / "model.safetensors", build_model(config), config)
    export_checkpoint(
        root / "model.safetensors", root / "export", ExportOptions(min_size=(64, 64), max_size=(128, 160))
    )
    return root / "export"


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped demo model exported for frames 64x64 to 256x320 (one per test module): trained weights, so F's flow
    depends on both frames (a fresh F outputs M = 0 and S = 1 whatever it sees)."""
    from dff.commands.demo import DEMO_MODEL
    from dff.export import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("demo") / "export"
    export_checkpoint(DEMO_MODEL, out, ExportOptions(min_size=(64, 64), max_size=(256, 320)))
    return out


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One thread for tiny models (a second one mostly waits for a busy core); other tests get theirs back."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
