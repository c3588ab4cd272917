"""Data-parallel training across processes with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node 2 -m sasim train ...`` starts two processes, each with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and a rendezvous in its environment. :func:`init_from_env` joins them into one process group
(gloo on CPU, nccl on GPU); :func:`current` then tells every training job which share of the work is its own:

* the batch of independent streams is split across ranks (rank ``r`` trains on streams
  ``r*B/W .. (r+1)*B/W - 1`` of the global batch ``B``), and DistributedDataParallel averages the gradients,
  so one optimizer step sees the same gradient as one process with the whole batch: the global batch and the
  learning-rate schedule mean the same at any process count;
* validation splits its streams the same way and sums the losses over ranks (the same bpc as one process);
* rank 0 alone writes checkpoints, curves, JSON and progress bars; resume state is read on rank 0 and
  broadcast, so only rank 0 needs the file (no shared file system is needed to resume);
* pruning events, masks and groups are computed by every rank from the same (synchronized) weights, and
  :meth:`Ranks.check_same` proves they agree.

A single process (no ``torchrun``) is a world of one, and every helper here is then a no-op.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sasim.errors import SasimError


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1

    def shard(self, data: torch.Tensor, exact: bool = True) -> torch.Tensor:
        """This rank's streams (columns) of a batchified split ``(T, B)``.

        ``exact`` (training) requires ``B`` to divide evenly, so that averaging the ranks' gradients equals
        the gradient of the whole batch; evaluation (``exact`` False) takes uneven shares and sums losses.
        """
        if not self.active:
            return data
        batch = data.size(1)
        if exact and batch % self.world_size:
            raise SasimError(f"the batch of {batch} streams does not split evenly over {self.world_size} "
                             f"processes; use a process count that divides {batch}", param="nproc_per_node")
        if batch < self.world_size:
            raise SasimError(f"{batch} streams cannot be shared by {self.world_size} processes; use at most {batch}",
                             param="nproc_per_node")
        return torch.tensor_split(data, self.world_size, dim=1)[self.rank]

    def sum(self, *values: float) -> list[float]:
        """Each value summed over all ranks (float64)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return t.tolist()

    def mean(self, value: float) -> float:
        """``value`` averaged over all ranks."""
        return self.sum(value)[0] / self.world_size if self.active else value

    def broadcast(self, obj):
        """Rank 0's ``obj``, on every rank (a picklable value, passed between this job's own processes)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def check_same(self, what: str, tensors) -> None:
        """Raise unless ``tensors`` (an iterable of tensors) are bitwise the same on every rank."""
        if not self.active:
            return
        digest = hashlib.sha256()
        for t in tensors:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        digests = self.gather(digest.hexdigest())
        if len(set(digests)) != 1:
            raise SasimError(f"{what} differ between ranks ({', '.join(d[:8] for d in digests)}); the ranks' weights "
                             "were not synchronized: a bug, please report it with the command that shows it")

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def current() -> Ranks:
    """The process group this process belongs to (a world of one when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return Ranks()


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` (or another launcher) set up more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str | None = "cpu") -> Ranks:
    """Join the process group ``torchrun`` describes in the environment; a world of one without it.

    Parameters
    ----------
    device : str
        The training device: nccl joins GPU processes (each on ``cuda:LOCAL_RANK``), gloo CPU ones.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return current()
    if not dist.is_available():
        raise SasimError("this torch build has no torch.distributed; run in one process (without torchrun)")
    gpu = str(device or "cpu").startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if gpu else "gloo")
    return current()


def finish() -> None:
    """Leave the process group (after the job's last collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device, ranks: Ranks) -> torch.device:
    """``device`` as this rank uses it: each rank of a node on its own GPU (``cuda:LOCAL_RANK``)."""
    if ranks.active and device.type == "cuda":
        return torch.device("cuda", ranks.local_rank)
    return device


def _collective_device() -> torch.device:
    """nccl reduces tensors on the GPU, gloo on the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def data_parallel(model: torch.nn.Module, ranks: Ranks) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when there are several ranks (its forward then averages
    gradients over ranks in backward); ``model`` itself otherwise. Rank 0's weights are broadcast to all."""
    if not ranks.active:
        return model

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    # masks are buffers computed alike on every rank; they are not rebroadcast on every forward
    try:
        return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)
    except TypeError:  # torch before forward_sync_buffers
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
