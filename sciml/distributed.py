"""Small helpers for data-parallel training under ``torchrun``.

``torchrun --nproc_per_node N`` starts N processes with the environment variables
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. :func:`setup` joins them into one
process group (NCCL on CUDA, Gloo on CPU); every helper falls back to single-process
behaviour when ``WORLD_SIZE`` is unset or 1.

Examples
--------
>>> import torch
>>> from sciml import distributed
>>> distributed.is_distributed(), distributed.rank(), distributed.world_size()
(False, 0, 1)
>>> distributed.all_reduce_mean(torch.tensor([1.0, 3.0])).tolist()
[1.0, 3.0]
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether this process was started as one of several (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if _active() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if _active() else int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """Rank of this process on its machine, which picks its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process writes files and shows progress (rank 0)."""
    return rank() == 0


def setup(device: torch.device) -> bool:
    """Join the process group when distributed; return whether this call created it.

    Uses NCCL for CUDA devices and Gloo otherwise, and binds this process to its GPU.
    """
    if not is_distributed() or _active():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        dist.init_process_group(backend="gloo")
    return True


def teardown() -> None:
    """Leave the process group, if one is active."""
    if _active():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if _active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over the processes (a new tensor; the input when not distributed)."""
    if not _active():
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over the processes (the input when not distributed)."""
    if not _active():
        return tensor
    return all_reduce_sum(tensor) / world_size()
