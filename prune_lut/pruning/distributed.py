"""Multi-process data parallelism under torchrun: process group set-up and the collectives training needs.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything here is a no-op for one
process. Backend: NCCL with one GPU per process, gloo on CPU. :func:`spawn` starts such a group of
local processes from inside a command, as ``torchrun --standalone`` would.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from ..errors import ParamError, UserError

log = logging.getLogger(__name__)
_BN_GROUP = None


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_equal(self, value: str) -> list[str]:
        """Every rank's ``value`` (a short string), gathered on every rank."""
        if not self.enabled:
            return [value]
        out: list = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The all-rank mean of ``t`` (no gradient)."""
        if not self.enabled:
            return t
        t = t.detach().clone()
        dist.all_reduce(t)
        return t / self.world


DEVICES = "auto, cpu or cuda"


def check_device(device: str) -> str:
    """``device`` when this host can train on it: ``auto``, ``cpu``, or ``cuda`` (``cuda:N``) with a GPU."""
    if device in ("auto", "cpu"):
        return device
    kind, _, index = str(device).partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ParamError("device", f"must be {DEVICES}, got {device!r}")
    if not torch.cuda.is_available():
        raise ParamError("device", f"{device}: torch {torch.__version__} sees no CUDA GPU on this host; "
                                   "use --device cpu (or auto)")
    if index and int(index) >= torch.cuda.device_count():
        raise ParamError("device", f"{device}: this host has {torch.cuda.device_count()} CUDA GPU(s) (cuda:0.."
                                   f"cuda:{torch.cuda.device_count() - 1})")
    return device


def setup(device: str = "auto") -> Dist:
    """Join the torchrun process group if there is one, and pick this process's device."""
    check_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        global _BN_GROUP
        _BN_GROUP = dist.new_group()  # BatchNorm statistics travel apart from DDP's gradient buckets
        log.info("process %d of %d on %s (%s)", rank, world, dev, dist.get_backend())
    return Dist(rank, world, dev)


def sync_batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``x`` (N, C, H, W) over the batches of every process,
    differentiably: BatchNorm over the global batch, so N processes compute what one would.
    Two passes (mean, then squared deviations), as a single-process BatchNorm does: the one-pass
    E[x^2] - E[x]^2 loses digits where the mean is large against the spread."""
    import torch.distributed.nn.functional as dfn

    group = _BN_GROUP if _BN_GROUP is not None else dist.group.WORLD
    c = x.shape[1]
    total = dfn.all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), x.new_full((1,), x.numel() / c)]), group=group)
    n = total[c]
    mean = total[:c] / n
    dev = x - mean.view(1, -1, 1, 1)
    var = dfn.all_reduce((dev * dev).sum(dim=(0, 2, 3)), group=group) / n
    return mean, var, n


def in_process_group() -> bool:
    """Whether this process is one rank of several (torchrun's environment, or :func:`spawn`'s)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or (dist.is_available() and dist.is_initialized())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, fn: Callable, args: tuple, world: int, port: int, queue) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)  # one core per process: small nets' time is per-operator overhead
    try:
        value = fn(*args, say=lambda m: queue.put(("say", m)))
        if rank == 0:
            queue.put(("return", value))
    except UserError as e:  # the command's one line, not a child's traceback
        queue.put(("error", str(e)))
        raise SystemExit(2) from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(fn: Callable[..., Any], args: tuple, processes: int, say: Callable[[str], None] | None = None) -> Any:
    """Run ``fn(*args, say=...)`` in ``processes`` fresh local processes, one torch thread each, joined
    as one gloo group on loopback (``fn`` calls :func:`setup` as under torchrun); returns rank 0's value.

    ``say`` receives the lines the processes pass to their ``say`` (rank 0's progress, typically).
    A :class:`UserError` in any process is raised here, as its one line.
    """
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    got: dict[str, Any] = {}

    def relay() -> None:
        while (item := queue.get()) is not None:
            kind, value = item
            if kind == "say" and say is not None:
                say(value)
            else:
                got.setdefault(kind, value)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        try:
            mp.start_processes(_rank, args=(fn, args, processes, _free_port(), queue), nprocs=processes,
                               start_method="spawn")
        finally:
            queue.put(None)  # after every process's last put (SimpleQueue writes at once)
            thread.join()
    except mp.ProcessExitedException:
        if "error" in got:
            raise UserError(got["error"]) from None
        raise
    return got.get("return")
