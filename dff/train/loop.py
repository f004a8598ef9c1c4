"""The SGD loop shared by ``dff train`` and ``dff train-flow``: steps, progress, checkpoints, resume.

Every ``checkpoint_every`` iterations (and at the end) rank 0 writes ``checkpoint.safetensors``
in the output folder: weights, the SGD momentum buffers of the trained parameters (``state``),
and in the metadata the number of completed iterations, the run's configuration and every
rank's weight digest. The write is atomic, so an interrupted run leaves the last complete
checkpoint; ``resume`` continues from it at the next iteration, with the batches the
uninterrupted run would have drawn. At the end rank 0 writes ``model.safetensors``: the weights
and configuration only, what ``dff eval``, ``dff export`` and ``dff demo`` load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dff.checkpoint import load_weights, read_checkpoint, save_checkpoint
from dff.config import ModelConfig
from dff.errors import CheckpointError, DFFError
from dff.train.distributed import ProcessGroup, replica_digests, sync_buffers
from dff.train.config import RunConfig
from dff.train.data import IterationDraws, SeededDraws
from dff.train.schedule import make_sgd

CHECKPOINT_NAME = "checkpoint.safetensors"
MODEL_NAME = "model.safetensors"
ITERATION_KEY = "dff.train.iteration"
RUN_KEY = "dff.train.run"
REPLICAS_KEY = "dff.train.replica_sha256"
MOMENTUM_PREFIX = "momentum."
#: Weight of the newest loss in the progress bar's running loss (an exponential moving average).
RUNNING_LOSS_WEIGHT = 0.05


class TrainingDivergedError(DFFError):
    """The loss became NaN or infinite."""


def run_training(
    *,
    objective: nn.Module,
    model: nn.Module,
    model_config: ModelConfig,
    dataset: Dataset,
    settings: RunConfig,
    group: ProcessGroup,
    resume: bool,
    run_description: dict[str, Any],
    collate: Callable[[list[Any]], Sequence[torch.Tensor]] | None = None,
) -> Path:
    """Minimise ``objective(*batch)`` over ``model``'s trainable parameters; returns the final model's path.

    ``objective`` holds ``model`` and maps a collated batch of ``dataset`` items to a scalar loss.
    ``run_description`` (JSON-ready) is stored in the checkpoints; a resumed run must have the same.
    A model without trainable parameters (*DFF separate*) takes 0 iterations and is written as it is.
    """
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    output_dir = Path(settings.output_dir)
    checkpoint_path = output_dir / CHECKPOINT_NAME
    model.to(group.device)
    objective.to(group.device)
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not (trained or settings.iterations == 0):
        raise ValueError(f"nothing to train in {settings.iterations} iterations: every parameter is frozen")
    optimizer = make_sgd([p for _, p in trained], settings.optimiser) if trained else None
    description = json.dumps(run_description, sort_keys=True)
    start = _resume(checkpoint_path, model, optimizer, trained, description, group.device) if resume else 0
    if not (start <= settings.iterations):
        raise CheckpointError(
            f"checkpoint {checkpoint_path} has {start} iterations done but the run has only {settings.iterations}"
        )

    def save(path: Path, iterations_done: int, *, with_state: bool) -> None:
        # Every rank joins the digest exchange; only rank 0 writes.
        sync_buffers(group, model)
        digests = replica_digests(group, model.state_dict())
        if group.is_main:
            state = {MOMENTUM_PREFIX + name: optimizer.state[p]["momentum_buffer"] for name, p in trained if p in optimizer.state}  # type: ignore[union-attr]
            metadata = {ITERATION_KEY: str(iterations_done), RUN_KEY: description, REPLICAS_KEY: json.dumps(digests)}
            save_checkpoint(path, model, model_config, state=state if with_state else None, metadata=metadata)

    trainer: nn.Module = objective
    if group.distributed and trained:
        trainer = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[group.device.index] if group.device.type == "cuda" else None,
        )
    draws = IterationDraws(
        size=len(dataset), batch_size=settings.batch_size, seed=settings.seed, rank=group.rank, start=start, stop=settings.iterations
    )
    loader = DataLoader(
        SeededDraws(dataset), batch_sampler=draws, num_workers=settings.workers, collate_fn=collate, pin_memory=group.device.type == "cuda"
    )
    from tqdm import tqdm

    progress = tqdm(total=settings.iterations, initial=start, disable=not group.is_main, desc="train", unit="it", dynamic_ncols=True)
    running = math.nan
    objective.train()
    for iteration, batch in enumerate(loader, start):
        lr = settings.optimiser.learning_rate(iteration, settings.iterations)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        loss = trainer(*(t.to(group.device, non_blocking=True) for t in batch))
        value = loss.item()
        if not math.isfinite(value):  # checked before the step, so the model keeps its last finite weights
            raise TrainingDivergedError(
                f"the loss is {value} at iteration {iteration}: training diverged; lower optimiser.lr"
                f" (now {settings.optimiser.lr}) and start again"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running = value if math.isnan(running) else (1 - RUNNING_LOSS_WEIGHT) * running + RUNNING_LOSS_WEIGHT * value
        progress.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.1e}", refresh=False)
        progress.update()
        done = iteration + 1
        if done % settings.checkpoint_every == 0 or done == settings.iterations:
            save(checkpoint_path, done, with_state=True)
    progress.close()
    model_path = output_dir / MODEL_NAME
    save(model_path, settings.iterations, with_state=False)
    return model_path


def _resume(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    trained: list[tuple[str, nn.Parameter]],
    description: str,
    device: torch.device,
) -> int:
    """Load weights and momentum buffers from a checkpoint of this run; the number of iterations it has done."""
    checkpoint = read_checkpoint(path)
    if ITERATION_KEY not in checkpoint.metadata:
        raise CheckpointError(f"{path} is not a training checkpoint (no {ITERATION_KEY} in its metadata): cannot resume from it")
    saved = json.loads(checkpoint.metadata.get(RUN_KEY, "null"))
    if saved != json.loads(description):
        raise CheckpointError(
            f"{path} was written by a different run; resume needs the same configuration apart from iterations "
            f"and checkpoint_every. Checkpoint: {saved}; now: {json.loads(description)}"
        )
    load_weights(model, checkpoint.weights, path)
    for name, p in trained:
        buffer = checkpoint.state.get(MOMENTUM_PREFIX + name)
        if buffer is not None and optimizer is not None:
            optimizer.state[p]["momentum_buffer"] = buffer.to(device)
    return int(checkpoint.metadata[ITERATION_KEY])
