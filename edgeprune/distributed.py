"""Data-parallel runs under ``torchrun``: which rank writes, and where ranks wait for each other.

The process group is started before any rank looks at the run directory: otherwise rank 1 may
find the state rank 0 has just created and refuse the run as "unfinished" (a race seen in the
two-rank compress test). ``transformers.Trainer`` (through accelerate) adopts the started group.
"""
from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def backend() -> str | None:
    """The process-group backend of a ``torchrun`` launch (None for one process); also Trainer's ddp_backend."""
    import torch

    if world_size() <= 1:
        return None
    return "nccl" if torch.cuda.is_available() else "gloo"


def init() -> None:
    """Start the process group of a ``torchrun`` launch (no-op for one process or when already started)."""
    import torch
    import torch.distributed as dist

    name = backend()
    if name is None or not dist.is_available() or dist.is_initialized():
        return
    if name == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(name)


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
