"""The setting shared by the accuracy studies on this CPU (benchmarks/figure3.py, benchmarks/table5.py).

Synthetic video with exact labels (:mod:`dff.data.synthetic`), 128×128, as benchmarks/table4.py
uses: training on one video, evaluation by the paper's protocol on another (another seed).
F is FlowNet tiny, pre-trained on flying shapes (``dff train-flow``, our Flying Chairs); feature
networks of ResNet-v1 topology and output stride 16 differ in depth and width (``FEATURE_NETS``).
Speed is timed apart from accuracy, every model in turns with the others (:func:`time_paths`), so
that the fps of models trained and evaluated minutes apart are comparable on a shared CPU. Every
run uses one CPU thread: on a CPU shared with other jobs a second thread mostly waits.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dff.checkpoint import load_weights, read_checkpoint
from dff.config import ModelConfig
from dff.data.flying_shapes import FlyingShapesConfig
from dff.data.synthetic import SyntheticVideoConfig
from dff.data.pairs import image_tensor
from dff.eval.propagation import FrameInputs
from dff.eval.protocol import ModeResult, Propagation, evaluate
from dff.models import DeepFeatureFlow, FeatureNet, FlowNet, SegmentationTaskNet, flownet_tiny, resnet_tiny
from dff.models.preprocess import FrameNormalizer
from dff.train.config import FlowTrainConfig, TrainConfig
from dff.train.data import TrainDataConfig, VideoConfig
from dff.train.flow import train_flow
from dff.train.loop import MODEL_NAME
from dff.train.schedule import OptimiserConfig

THREADS = 1
SIZE = 128
TRAIN_VIDEO = SyntheticVideoConfig(height=SIZE, width=SIZE, length=600, max_speed=3.0, seed=0)
#: Labelled frames from 9 on, so that every l ≤ 10 has all of its key frames (k ≥ 0).
TEST_VIDEO = VideoConfig(dataset="synthetic", synthetic=replace(TRAIN_VIDEO, length=60, seed=1), frames=(9, 60))
#: Normalisation and classes of every model; the networks themselves are built by the studies.
BASE_CONFIG = ModelConfig(feature="tiny", flow="tiny", num_classes=TRAIN_VIDEO.num_classes)
FLOW_DATA = FlyingShapesConfig(height=SIZE, width=SIZE, length=20000, max_displacement=16.0, seed=0)


def small_feature_net() -> FeatureNet:
    """Twice tiny's widths and two units in conv4: about 3× its MACs."""
    return FeatureNet(blocks=(1, 1, 2, 1), stem_channels=32, widths=(16, 32, 48, 64), out_channels=64)


def medium_feature_net() -> FeatureNet:
    """Four times tiny's widths and 2-2-3-2 units: about 12× its MACs."""
    return FeatureNet(blocks=(2, 2, 3, 2), stem_channels=32, widths=(32, 64, 96, 128), out_channels=128)


FEATURE_NETS: dict[str, Callable[[], FeatureNet]] = {"tiny": resnet_tiny, "small": small_feature_net, "medium": medium_feature_net}


def study_arguments(description: str, default_out: Path) -> argparse.Namespace:
    """A study's command line: ``--out``, ``--init-flow`` and ``--scale``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--init-flow", type=Path, help="a dff train-flow checkpoint of FlowNet tiny (default: pre-train one into OUT/flow)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stage's iterations (quick check: 0.02)")
    return parser.parse_args()


def scaled(iterations: int, scale: float) -> int:
    """A stage's ``iterations`` at ``--scale``, at least one."""
    return max(1, round(iterations * scale))


def study_flow(args: argparse.Namespace, flow_iterations: int) -> Path:
    """Set the studies' thread count, make OUT, and return F's checkpoint: ``--init-flow`` or one pre-trained into OUT/flow."""
    torch.set_num_threads(THREADS)
    args.out.mkdir(parents=True, exist_ok=True)
    return args.init_flow or pretrained_flow(args.out, scaled(flow_iterations, args.scale))


def study_model(feature_net: Callable[[], FeatureNet]) -> DeepFeatureFlow:
    """An untrained DFF model on ``feature_net()`` (built after seeding torch with 0): FlowNet tiny whose scale field
    is as wide as the features, and the segmentation task net."""
    torch.manual_seed(0)
    features = feature_net()
    channels = features.out_channels
    return DeepFeatureFlow(
        feature_net=features,
        flow_net=flownet_tiny(feature_channels=channels),
        task_net=SegmentationTaskNet(in_channels=channels, num_classes=BASE_CONFIG.num_classes),
    )


def pretrained_flow(out: Path, iterations: int) -> Path:
    """``OUT/flow/model.safetensors``: FlowNet tiny pre-trained on flying shapes (reused when it exists)."""
    path = out / "flow" / MODEL_NAME
    if path.is_file():
        return path
    config = FlowTrainConfig(
        model=BASE_CONFIG,
        data=FLOW_DATA,
        iterations=iterations,
        batch_size=8,
        optimiser=OptimiserConfig(lr=0.01),
        checkpoint_every=iterations,
        output_dir=str(out / "flow"),
        device="cpu",
        threads=THREADS,
    )
    return train_flow(config)


def load_pretrained_flow(flow_net: FlowNet, checkpoint: Path) -> None:
    """F's weights from a ``dff train-flow`` checkpoint of FlowNet tiny, whatever ``flow_net``'s scale width.

    Pre-training leaves the scale layer at its initial zeros and ones (FlowObjective fixes it), so an
    F of any feature width takes the pre-trained weights, its scale layer as built.
    """
    weights = {k[len("flow_net.") :]: v for k, v in read_checkpoint(checkpoint).weights.items() if k.startswith("flow_net.")}
    weights.update({k: v for k, v in flow_net.state_dict().items() if k.startswith("scale.")})
    load_weights(flow_net, weights, checkpoint)


def training_config(variant: str, *, iterations: int, lr: float, output_dir: str) -> TrainConfig:
    """One stage on the training video: ``frame`` (single frames) or ``dff`` (pairs, 0 ≤ i − k ≤ 9), batch 4."""
    return TrainConfig(
        variant=variant,  # type: ignore[arg-type]
        model=BASE_CONFIG,
        data=TrainDataConfig(dataset="synthetic", synthetic=TRAIN_VIDEO, max_offset=9),
        iterations=iterations,
        batch_size=4,
        optimiser=OptimiserConfig(lr=lr),
        checkpoint_every=iterations,
        output_dir=output_dir,
        device="cpu",
        threads=THREADS,
    )


def evaluate_intervals(model: DeepFeatureFlow, mode: str, intervals: tuple[int, ...]) -> list[ModeResult]:
    """The paper's protocol on the test video for each l (:func:`dff.eval.protocol.evaluate`); the studies take its mIoU."""
    sequences = TEST_VIDEO.sequences()
    return [
        evaluate(
            model, sequences, mode=mode, key_interval=l,  # type: ignore[arg-type]
            num_classes=BASE_CONFIG.num_classes, mean=BASE_CONFIG.mean, std=BASE_CONFIG.std,
        )
        for l in intervals
    ]


@dataclass(frozen=True)
class PathTimes:
    """Median ms of a model's key path, N_task(N_feat(I_k)), and non-key path, N_task(propagated f_k)."""

    key_ms: float
    non_key_ms: float

    def fps(self, interval: int) -> float:
        """Algorithm 1's throughput with one key frame in every ``interval``: l / (t_key + (l - 1) t_non_key)."""
        return 1e3 * interval / (self.key_ms + (interval - 1) * self.non_key_ms)


def time_paths(candidates: Mapping[str, tuple[DeepFeatureFlow, Propagation]], *, frames: int = 16, rounds: int = 3) -> dict[str, PathTimes]:
    """Both paths of every candidate (a model and how its non-key frames get features), timed in turns.

    The protocol (:func:`dff.eval.protocol.evaluate`) times each model while evaluating it, and on a
    shared CPU models evaluated minutes apart see different machines. Here every candidate runs
    its key path on frame i - 1 and its non-key path from i - 1 to i, then the next candidate, for
    consecutive frames of the test video, the turn order rotating: all see the same load. The
    paths are those the protocol times, from normalised frames to score maps.
    """
    sequence = TEST_VIDEO.sequences()[0]
    normalizer = FrameNormalizer(mean=BASE_CONFIG.mean, std=BASE_CONFIG.std)
    images = [sequence.image(t) for t in range(frames)]
    inputs = [FrameInputs(tensor=normalizer(image_tensor(image)[None]), image=image) for image in images]
    names = list(candidates)
    key_ms: dict[str, list[float]] = {name: [] for name in names}
    non_key_ms: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(rounds):
            for i in range(1, frames):
                for turn in range(len(names)):
                    name = names[(turn + i) % len(names)]
                    model, propagation = candidates[name]
                    start = time.perf_counter()
                    key_feat = model.key(inputs[i - 1].tensor)
                    model.task(key_feat)
                    middle = time.perf_counter()
                    model.task(propagation(key_feat, inputs[i - 1], inputs[i]))
                    end = time.perf_counter()
                    key_ms[name].append((middle - start) * 1e3)
                    non_key_ms[name].append((end - middle) * 1e3)
    return {name: PathTimes(key_ms=float(np.median(key_ms[name])), non_key_ms=float(np.median(non_key_ms[name]))) for name in names}
