"""Many processes, one run: the process group that torchrun (or srun) describes in the
environment, BatchNorm synchronised over it, DDP wrappers, and the few collectives the runner
needs (stop agreement, averaged stats, barriers).

Distributed training is a wrapper around the same step, not a second loop: every rank builds the
same models from the same seed, takes its contiguous shard of the step's global batch
(`draw.shard`), and DDP averages gradients, so N ranks train the model one process trains with
the global batch, up to float reduction order. Rank 0 owns every file.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .errors import DcganError, UsageError


class DistributedError(DcganError):
    """Another rank died or stopped answering: this rank cannot go on."""


def launched_world_size() -> int:
    """WORLD_SIZE from the environment (torchrun, srun with the variables set), 1 when absent."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UsageError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from None


@dataclass
class ProcessGroup:
    """This process's place in a multi-process run (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            _collective(dist.barrier)

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any rank (one small all-reduce)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._device)
        _collective(dist.all_reduce, t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (the logged losses of the global batch)."""
        if self.world == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self._device)
        _collective(dist.all_reduce, t)
        return dict(zip(keys, (t / self.world).tolist()))

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (a picklable Python object made by this program)."""
        if self.world == 1:
            return obj
        box = [obj]
        _collective(dist.broadcast_object_list, box, src=0)
        return box[0]

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            import gc

            # DDP's wrappers sit in reference cycles and hold the gloo group; left to the
            # interpreter's exit, the group's threads were torn down there and a rank aborted
            # ("terminate called without an active exception", SIGABRT) after a finished run:
            # 1 torchrun in ~8 here, 0 in 40 with the cycles collected first
            gc.collect()
            dist.destroy_process_group()

    @property
    def _device(self) -> torch.device:
        # NCCL only reduces CUDA tensors; gloo CPU ones
        if dist.is_initialized() and dist.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def init_from_env(device_type: str) -> ProcessGroup:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT): NCCL on CUDA, gloo on the CPU. DCGAN_DIST_TIMEOUT (seconds, default 600) bounds
    how long a rank waits for the others in one collective before it gives up."""
    world = launched_world_size()
    if world <= 1:
        return ProcessGroup()
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise UsageError(
            "WORLD_SIZE > 1 needs RANK and LOCAL_RANK (launch with torchrun)"
        ) from None
    timeout = datetime.timedelta(seconds=float(os.environ.get("DCGAN_DIST_TIMEOUT", "600")))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    except (RuntimeError, ValueError) as e:
        raise DistributedError(f"could not join the process group ({_first_line(e)})") from None
    return ProcessGroup(rank=rank, world=world, local_rank=local_rank)


def is_comm_error(e: BaseException) -> bool:
    """Whether `e` is a failed collective (a peer died, a timeout), not a bug of ours."""
    kinds = tuple(
        k for k in (getattr(dist, "DistError", None), getattr(dist, "DistBackendError", None)) if k
    )
    if kinds and isinstance(e, kinds):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("gloo", "Gloo", "NCCL", "Connection closed", "Connection reset")
    )


def lost_peer(e: BaseException) -> DistributedError:
    return DistributedError(
        f"lost contact with another rank ({_first_line(e)}); the newest checkpoint in the run "
        "is the last good one"
    )


def _collective(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        if is_comm_error(e):
            raise lost_peer(e) from None
        raise


def _first_line(e: BaseException) -> str:
    import re

    lines = [line for line in str(e).splitlines() if line.strip()]
    text = re.sub(r"\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", lines[0] if lines else type(e).__name__)
    return text.split(". This is typically")[0][:160]


# ---------------------------------------------------------------------------------------------
# models under DDP


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all ranks, on
    any device: torch's SyncBatchNorm only runs on GPUs, so this one serves gloo CPU runs.

    Two differentiable all-reduces per call (the mean, then the centred second moment: the
    two-pass variance that BatchNorm itself computes), so gradients flow through the global
    statistics exactly as they do through one process's BatchNorm with the global batch. The
    state-dict keys are BatchNorm2d's, so checkpoints are interchangeable.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # the statistics in fp32, as BatchNorm computes them: a bf16 input (autocast) summed in
        # bf16 would lose most of its digits, and the running buffers are fp32
        dtype, x = x.dtype, x.float()
        all_reduce = _AllReduceSum.apply
        world = dist.get_world_size()
        count = x.shape[0] * x.shape[2] * x.shape[3] * world
        mean = all_reduce(x.sum(dim=(0, 2, 3))) / count
        centred = x - mean[None, :, None, None]
        var = all_reduce(centred.pow(2).sum(dim=(0, 2, 3))) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = (
                self.momentum
                if self.momentum is not None
                else 1.0 / float(self.num_batches_tracked)
            )
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * count / max(count - 1, 1), m)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (centred * scale[None, :, None, None] + self.bias[None, :, None, None]).to(dtype)


class _AllReduceSum(torch.autograd.Function):
    """A differentiable sum over the ranks: every rank's output depends on every rank's input,
    so the gradient of the local input is the sum of the output gradients over the ranks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # through the same Function, so a double backward (the gradient penalty) stays exact
        return _AllReduceSum.apply(grad)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers synchronised over the ranks: torch's SyncBatchNorm on CUDA, ours
    elsewhere (BatchNorm1d of the MLP included, through the same statistics)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new.to(child.weight.device))
        elif isinstance(child, nn.BatchNorm1d):
            setattr(module, name, _GlobalBatchNorm1d(child))
        else:
            sync_batchnorm(child, device)
    return module


class _GlobalBatchNorm1d(nn.BatchNorm1d):
    """The MLP's BatchNorm1d over (N, C) with global statistics (see GlobalBatchNorm)."""

    def __init__(self, child: nn.BatchNorm1d):
        super().__init__(child.num_features, child.eps, child.momentum)
        self.load_state_dict(child.state_dict())
        self.to(child.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        y = GlobalBatchNorm.forward(self, x[:, :, None, None])  # same arithmetic, as (N, C, 1, 1)
        return y[:, :, 0, 0]


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around a module whose BatchNorm is already synchronised. Buffers are not broadcast:
    synchronised BatchNorm keeps the running statistics equal on every rank by itself."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    # newer torch renamed the option; at init both ranks hold the same buffers anyway
    if "forward_sync_buffers" in inspect.signature(DDP).parameters:
        return DDP(module, device_ids=ids, forward_sync_buffers=False)
    return DDP(module, device_ids=ids, broadcast_buffers=False)
