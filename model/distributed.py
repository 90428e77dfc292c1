"""Data parallelism for one model on several devices, kept apart from the training loop.

A model that needs more than one GPU (the 1.1B preset trained in a sensible time) runs as
`torchrun --nproc_per_node=K -m model.launch ...`: K processes, one per device, each a rank of
a DDP group. Every rank draws the same global batch from the same seeded sampler and takes its
own rows, so the data read, the checkpoints and a resume are the same as in one process; rank 0
alone writes. On one device, or on CPU, training runs in-process and none of this is used.
DDP (not FSDP): the 1.1B model with its AdamW state (~18 GB) fits on one 80-141 GB GPU, so
sharding would only add communication.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .io import atomic_write_bytes


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "DistContext":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))


def setup(ctx: DistContext, device: str) -> str:
    """Join the process group; returns this rank's device."""
    if not ctx.enabled:
        return device
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(ctx.local_rank)
        device = f"cuda:{ctx.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device


def wrap(model: torch.nn.Module, ctx: DistContext, device: str) -> torch.nn.Module:
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


def no_sync(model: torch.nn.Module, last_micro: bool):
    """Skip DDP's gradient all-reduce on every micro batch but the last of a step."""
    if hasattr(model, "no_sync") and not last_micro:
        return model.no_sync()
    return contextlib.nullcontext()


def mean_over_ranks(value: float, ctx: DistContext, device: str) -> float:
    if not ctx.enabled:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def teardown(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


# --- launching: one torchrun per model when its slot holds several devices -----------------


def launch(nproc: int, run_dir: str | Path, spec, tokens_dir: str, tokenizer_dir: str,
           progress_path: str | None = None) -> None:
    """Train one model on `nproc` devices through torchrun and wait for it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    request = run_dir / "launch.pkl"
    atomic_write_bytes(request, pickle.dumps({"spec": spec, "tokens_dir": tokens_dir, "tokenizer_dir": tokenizer_dir,
                                      "progress_path": progress_path}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "model.launch", str(run_dir)]
    subprocess.run(command, check=True)
