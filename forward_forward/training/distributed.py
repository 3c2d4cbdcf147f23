"""Data-parallel training on torch.distributed: every rank a shard of every batch.

A run launched by `torchrun --nproc-per-node N -m forward_forward.cli train ...` (or `ff train
--nproc N`, which launches exactly that) finds RANK and WORLD_SIZE in its environment and joins the
process group: gloo on CPU, NCCL on GPUs. Every rank builds the same network from the same seed
and draws the same order of images; step s gives rank r the r-th of N equal slices of the batch.
`DistributedDataParallel` averages the gradients, so with equal slices each step is the step of
one process on the whole batch. Peer normalisation takes the batch mean across the ranks. Other
buffers are averaged after every step; for batchnorm, which normalises each slice by its own
statistics, that makes the running mean the batch's but not the running variance (the spread
between slices is left out).
Rank 0 alone writes the run directory, logs and validates.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import FFError

# a hung peer ends the run after this long; rank 0's validation must fit in it (the others wait meanwhile),
# and on CPU its end-of-run scoring too (the others wait in `leave`)
TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("FF_DIST_TIMEOUT", "1800")))


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run: rank `rank` of `world`."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The rank that writes the run directory, the progress bar and the log."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a batch (images, labels or indices): the r-th of `world` equal slices."""
        if not self.parallel:
            return batch
        if len(batch) % self.world:
            raise FFError(f"a batch of {len(batch)} images does not split into {self.world} equal shards: make "
                          f"optim.batch_size (and optim.chunk_size) a multiple of the number of processes.")
        return batch.chunk(self.world)[self.rank]


ALONE = Ranks()  # one process, no process group


def join(device: torch.device) -> Ranks:
    """The process group this process was launched into (torchrun's RANK, WORLD_SIZE), joined; one
    process alone when there is none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        except (RuntimeError, ValueError) as e:
            raise FFError(f"joining the process group failed ({str(e).splitlines()[0]}); launch with `ff train "
                          "--nproc N` or `torchrun --nproc-per-node N -m forward_forward.cli train`.") from None
    return Ranks(dist.get_rank(), dist.get_world_size())


def device_for(ranks: Ranks, device: torch.device) -> torch.device:
    """Each rank on its own GPU (LOCAL_RANK) when the run is on CUDA."""
    if ranks.parallel and device.type == "cuda" and device.index is not None:
        raise FFError(f"run.device = {device} would put every process on one GPU: set run.device = cuda (each "
                      "process takes the GPU of its LOCAL_RANK).")
    if ranks.parallel and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def wrap(model: nn.Module, ranks: Ranks, device: torch.device, some_losses_idle: bool) -> nn.Module:
    """The module a training step calls: DDP over `model` in parallel runs, else `model` itself.
    some_losses_idle: a schedule whose steps leave some losses out (greedy, sleep phases)."""
    if not ranks.parallel:
        return model
    from ..layers import FFLayer

    for module in model.modules():  # peer normalisation's running means: of the whole batch, not a slice
        if isinstance(module, FFLayer):
            module.mean_over_processes = True
    ddp = nn.parallel.DistributedDataParallel
    # buffers are averaged after each step instead (average_buffers); the flag's name changed in torch 2.12
    renamed = "forward_sync_buffers" in inspect.signature(ddp).parameters
    no_sync: dict[str, Any] = {"forward_sync_buffers": False} if renamed else {"broadcast_buffers": False}
    return ddp(model, device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=some_losses_idle, **no_sync)


@torch.no_grad()
def average_buffers(model: nn.Module, ranks: Ranks) -> None:
    """Every floating-point buffer set to its mean over the ranks."""
    if not ranks.parallel:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(ranks.world)


def is_peer_error(error: RuntimeError) -> bool:
    """Whether `error` is torch.distributed's: a connection dropped or a collective timed out."""
    words = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe", "timed out")
    return isinstance(error, getattr(dist, "DistError", ())) or any(w in str(error).lower() for w in words)


def lost_peer(error: BaseException, ranks: Ranks, run_dir) -> FFError:
    """The error a rank raises when another rank died or stopped answering."""
    return FFError(f"process {ranks.rank} of {ranks.world} lost contact with the others ({type(error).__name__}: "
                   f"{str(error).splitlines()[0][:160]}): one of them died or hung. Continue from the last "
                   f"checkpoint in {run_dir}, if it has one: `ff train --resume {run_dir} --nproc {ranks.world}`.")


def leave(ranks: Ranks, finished: bool) -> None:
    """Leave the process group. On CPU a rank that finished waits for the others first: gloo, torn
    down while a peer still held its connections, could abort that peer at exit. (NCCL's watchdog
    would kill a rank that waited longer than TIMEOUT for rank 0's scoring, so there it does not wait.)"""
    if not (ranks.parallel and dist.is_initialized()):
        return
    if finished and dist.get_backend() == "gloo":
        try:
            dist.barrier()
        except RuntimeError:  # a peer failed after this rank finished; its own error says what happened
            pass
    dist.destroy_process_group()
