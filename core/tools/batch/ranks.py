"""Where this process stands among torchrun's: ``torchrun --nproc-per-node N -m stylefw batch ...`` starts N
processes, each a rank, which plan the same job list and share it out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Ranks", "WAIT"]

# how long a rank waits for the others at the end: jobs are uneven, and a long one must not time the group out
WAIT = timedelta(hours=72)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among torchrun's: its rank, how many there are, and those on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_environment(cls) -> "Ranks":
        value = lambda name, default: int(os.environ.get(name, default))
        return cls(value("RANK", 0), value("WORLD_SIZE", 1), value("LOCAL_RANK", 0), value("LOCAL_WORLD_SIZE", 1))

    def __enter__(self) -> "Ranks":
        if self.world > 1:
            dist.init_process_group("gloo", timeout=WAIT)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.world > 1:
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def device(self, given: str) -> str:
        """``cuda:LOCAL_RANK`` for a job whose device is ``auto`` when GPUs are present and there are ranks."""
        if given == "auto" and self.world > 1 and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return given

    def threads(self, given: int | None) -> int | None:
        """The CPU threads this process uses: ``given``, or with several ranks on this machine its share of the
        cores. torchrun sets OMP_NUM_THREADS=1 for its processes; that default is overridden here on purpose."""
        if given is not None:
            return given
        if self.local_world > 1:
            return max(1, len(os.sched_getaffinity(0)) // self.local_world)
        return None
