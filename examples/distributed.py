"""Data-parallel training for the examples: ``torchrun --nproc_per_node=N example.py``.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything here is a
no-op and the examples run in one process. Under ``torchrun`` each process
joins the group (NCCL on GPUs, gloo on CPUs), takes its own GPU, wraps the
model in :class:`~torch.nn.parallel.DistributedDataParallel` and trains on its
share of every batch: all ranks draw the same batch indices from the same seed
and rank ``r`` keeps entries ``r, r + N, ...`` (of a batch of point clouds: whole
graphs, ``segment_cortex.PosedCloudsTask.shard``), so the global batch is the
single-process one. On GPUs batch norms become
:class:`~torch.nn.SyncBatchNorm` (PyTorch's SyncBatchNorm runs only on CUDA),
so their statistics are those of the global batch too.
"""
from __future__ import annotations

import os
from typing import Tuple

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def setup() -> Tuple[int, int, torch.device]:
    """Join the process group if launched by torchrun: ``(rank, world_size, device)``."""
    if not is_distributed():
        return 0, 1, torch.device('cpu')
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group('nccl' if cuda else 'gloo')
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = torch.device('cuda', local_rank) if cuda else torch.device('cpu')
    if cuda:
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` and wrap it for data-parallel training when distributed."""
    model = model.to(device)
    if not is_distributed():
        return model
    if device.type == 'cuda':
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shard(index: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share of a batch's indices (the batch size must divide evenly)."""
    if index.numel() % world_size:
        raise ValueError(f"the batch size ({index.numel()}) must be a multiple of the number "
                         f"of processes ({world_size})")
    return index[rank::world_size]


def is_main() -> bool:
    """Whether this process speaks for the run: rank 0, or the only process."""
    return setup()[0] == 0


def say(*args, **kwargs) -> None:
    """``print`` on the main process only (one voice under torchrun)."""
    if is_main():
        print(*args, **kwargs)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
