"""Data-parallel training on torch.distributed (launched by torchrun).

Every rank holds the whole model and the whole dataset on its device, draws the same
permutation each epoch, and takes its shard of every global batch: with ``W`` ranks and
``task.batch_size = B`` per rank, global batch ``k`` is ``order[k·W·B : (k+1)·W·B]`` and
rank ``r`` takes ``[r·B : (r+1)·B]`` of it (DistributedSampler's semantics, per-epoch
seed). After the rule has written its local updates, one all-reduce over a single flat
buffer (every ``.grad``, weighted by the rank's sample count, plus a stop flag) makes
each rank apply the update of the global batch, so ``W`` processes × batch ``B`` equal one
process × batch ``W·B``. Evaluation statistics are summed across ranks. Only rank 0
writes the run directory, the recording, checkpoints and logs.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Optional

import torch
import torch.distributed as dist


class Single:
    """The one-process case: every collective is the identity."""

    rank, world, local_rank = 0, 1, 0
    is_main = True

    def sync_grads(self, params: Iterable[torch.nn.Parameter], n_local: int, stop: bool) -> bool:
        return stop

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def broadcast(self, obj: Any) -> Any:
        return obj

    def close(self) -> None:
        pass


class DataParallel(Single):
    """Collectives over the default process group."""

    def __init__(self):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.is_main = self.rank == 0
        self._buffer: Optional[torch.Tensor] = None

    def sync_grads(self, params, n_local: int, stop: bool) -> bool:
        """Replace every ``.grad`` by the sample-weighted mean over all ranks, in one
        all-reduce; returns True when any rank asked to stop."""
        grads = [p.grad for p in params if p.grad is not None]
        sizes = [g.numel() for g in grads]
        total = sum(sizes) + 2
        if self._buffer is None or self._buffer.numel() != total or self._buffer.device != grads[0].device:
            self._buffer = torch.empty(total, dtype=grads[0].dtype, device=grads[0].device)
        buf = self._buffer
        torch.cat([g.reshape(-1) for g in grads], out=buf[:-2])
        buf[:-2].mul_(n_local)
        buf[-2] = n_local
        buf[-1] = float(stop)
        dist.all_reduce(buf)
        n = buf[-2]
        offset = 0
        for g, size in zip(grads, sizes):
            g.copy_(buf[offset:offset + size].view_as(g)).div_(n)
            offset += size
        return bool(buf[-1].item() > 0)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor)
        return tensor

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the group together (a rank tearing gloo down alone can abort its peer)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def from_environment(device: str) -> Single:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else the one-process case.

    Backend: nccl when training on CUDA, gloo on CPU. On CUDA each rank uses the GPU of
    its LOCAL_RANK.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Single()
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DataParallel()
