"""One or many processes: what torchrun sets up, read once, and the device each process trains on.

``torchrun --nproc_per_node N -m dff.train CONFIG`` starts N processes with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; a plain ``dff train``
has none of them and runs as the only process. Gradients are averaged by DistributedDataParallel
over gloo on CPUs and nccl on GPUs; every process draws its own batches (per-rank seeds), so N
processes with batch size B train like one with batch size N·B, as the paper's 8 GPUs with one
mini-batch each (Section 5.1).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dff.errors import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and shows the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` (a GPU where there is one), ``cpu`` or ``cuda``; each torchrun process takes GPU ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device is 'cuda' but torch sees no CUDA GPU; set device: cpu (or auto)")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")


def start(device: str) -> ProcessGroup:
    """Join torchrun's process group if there is one (gloo on CPU, nccl on GPU); otherwise a group of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return ProcessGroup(rank=rank, world_size=world_size, device=resolved)


def stop(group: ProcessGroup) -> None:
    if group.distributed and dist.is_initialized():
        # Without the barrier a rank that finishes first can tear down gloo's connections while the other still
        # uses them, and that rank aborts ("terminate called without an active exception"), seen on a loaded CPU.
        dist.barrier()
        dist.destroy_process_group()


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names and bytes: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sync_buffers(group: ProcessGroup, module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank.

    DistributedDataParallel broadcasts them at the start of each forward pass, so after the last
    step every rank still holds the statistics of its own last batch; a checkpoint takes rank 0's.
    """
    if group.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def replica_digests(group: ProcessGroup, state: dict[str, torch.Tensor]) -> list[str]:
    """Every rank's :func:`weights_digest`, in rank order; raises if the replicas have drifted apart.

    DistributedDataParallel keeps replicas identical by averaging gradients and broadcasting
    buffers; a mismatch means a bug (a parameter updated outside DDP, a rank-local buffer), and
    training on would silently average different models.
    """
    own = weights_digest(state)
    if not group.distributed:
        return [own]
    digests: list[str | None] = [None] * group.world_size
    dist.all_gather_object(digests, own)
    if len(set(digests)) != 1:
        raise RuntimeError(f"the {group.world_size} training processes hold different weights: digests {digests}")
    return [str(d) for d in digests]
