"""torchrun / DistributedDataParallel helpers: one code path for 1 process and for N."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1


def setup(device_arg="auto"):
    """Read torchrun's environment, pick the device, start the process group when there are >1 ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    if device_arg.startswith("cuda"):
        if not torch.cuda.is_available():
            from utils.errors import UserError
            raise UserError("--device cuda: no CUDA device available")
        device = torch.device("cuda", local if world > 1 else (torch.device(device_arg).index or 0))
        torch.cuda.set_device(device)
    else:
        device = torch.device(device_arg)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def all_reduce_sum(tensor, info):
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module, info, src=0):
    """Copy rank ``src``'s buffers (BN running statistics) to every rank."""
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, src)


def barrier(info):
    if info.enabled:
        dist.barrier()


def cleanup(info):
    if info.enabled and dist.is_initialized():
        # every rank reaches the end before any tears the group down: a rank destroying its gloo context while
        # another still talks to it aborts ("terminate called without an active exception") under load
        dist.barrier()
        dist.destroy_process_group()
