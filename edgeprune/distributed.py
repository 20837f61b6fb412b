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


def init() -> None:
    """Start the process group of a ``torchrun`` launch (no-op for one process or when already started)."""
    import torch
    import torch.distributed as dist

    if world_size() <= 1 or not dist.is_available() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
