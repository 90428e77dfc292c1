"""Device slots: the one place that decides which device a piece of work gets.

A slot is one GPU (`CUDA_VISIBLE_DEVICES=<id>`) or, on a machine without GPUs, a share of the
CPU cores (torch threads divided among the slots). Each slot owns one long-lived worker process,
so imports and caches are paid once per slot rather than once per model, and a crash or an
out-of-memory error in one model's work takes down that slot's process, never the caller: the
slot is restarted and the error is reported for that call alone. Two jobs never share a slot.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Slot:
    index: int
    device: str  # "cuda" or "cpu", as seen from inside the slot's process
    visible_devices: str  # CUDA_VISIBLE_DEVICES for the slot's process ("" hides every GPU)
    threads: int

    @property
    def name(self) -> str:
        return f"gpu{self.visible_devices.replace(',', '+')}" if self.device == "cuda" else f"cpu{self.index}"


class SlotCrashed(RuntimeError):
    """The slot's process died (killed, out of memory, segfault) while running a job."""


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else what torch counts."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def plan_slots(cpu_slots: int | None = None, use_gpus: bool = True, total_threads: int | None = None,
               gpus_per_slot: int = 1) -> list[Slot]:
    """One slot per visible GPU (or per group of `gpus_per_slot` GPUs, for a model trained with
    DDP over several); without GPUs, `cpu_slots` slots splitting the cores."""
    if not isinstance(gpus_per_slot, int) or isinstance(gpus_per_slot, bool) or gpus_per_slot < 1:
        raise ValueError(f"gpus_per_model: must be a positive integer, got {gpus_per_slot!r}")
    gpus = visible_gpus() if use_gpus else []
    cores = total_threads or os.cpu_count() or 1
    if gpus:
        if len(gpus) < gpus_per_slot:
            raise ValueError(f"gpus_per_model: {gpus_per_slot} asked, {len(gpus)} GPU(s) visible")
        groups = [gpus[i : i + gpus_per_slot] for i in range(0, len(gpus) - gpus_per_slot + 1, gpus_per_slot)]
        threads = max(1, cores // len(groups))
        return [Slot(i, "cuda", ",".join(group), threads) for i, group in enumerate(groups)]
    count = cpu_slots if cpu_slots is not None else cores
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"cpu_slots: must be a positive integer, got {cpu_slots!r}")
    threads = max(1, cores // count)
    return [Slot(i, "cpu", "", threads) for i in range(count)]


def _enter_slot(visible_devices: str, threads: int, env: dict[str, str]) -> None:
    # Runs first in the slot's process, before anything touches CUDA.
    os.environ.update(env)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["REGMIX_SLOT_THREADS"] = str(threads)
    # The orchestrator and the Prefect server share these cores: OpenMP threads that spin-wait
    # while one of them holds a core burn it (measured: a 1-slot, 2-thread flow used 33% more
    # slot CPU than direct calls; passive waiting removed that). Read when torch loads libgomp.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)


class SlotPool:
    """Runs jobs on free slots, one job per slot at a time; lower `priority` goes first."""

    def __init__(self, slots: list[Slot], env: dict[str, str] | None = None):
        if not slots:
            raise ValueError("slots: at least one slot is needed")
        self.slots = list(slots)
        self.env = dict(env or {})  # extra environment of every slot process
        self._executors: dict[int, ProcessPoolExecutor | None] = {s.index: None for s in slots}
        self._free = [s.index for s in slots]
        self._waiting: list[tuple[int, int]] = []  # (priority, ticket)
        self._ticket = 0
        self._cond = threading.Condition()
        self._ctx = multiprocessing.get_context("spawn")

    def _executor(self, slot: Slot) -> ProcessPoolExecutor:
        executor = self._executors[slot.index]
        if executor is None:
            executor = ProcessPoolExecutor(
                max_workers=1, mp_context=self._ctx, initializer=_enter_slot,
                initargs=(slot.visible_devices, slot.threads, self.env),
            )
            self._executors[slot.index] = executor
        return executor

    def _acquire(self, priority: int, prefer: int | None) -> Slot:
        with self._cond:
            self._ticket += 1
            me = (priority, self._ticket)
            self._waiting.append(me)
            while not (self._free and min(self._waiting) == me):
                self._cond.wait()
            self._waiting.remove(me)
            index = prefer if prefer in self._free else self._free[0]
            self._free.remove(index)
            self._cond.notify_all()
        return next(s for s in self.slots if s.index == index)

    def _release(self, slot: Slot) -> None:
        with self._cond:
            self._free.append(slot.index)
            self._cond.notify_all()

    def run(self, fn: Callable[..., Any], *args, priority: int = 1, prefer: int | None = None,
            on_start: Callable[[Slot], None] | None = None, **kwargs) -> Any:
        """Run `fn(slot_device, *args, **kwargs)` in a free slot's process and return its result."""
        slot = self._acquire(priority, prefer)
        try:
            if on_start:
                on_start(slot)
            future = self._executor(slot).submit(fn, slot.device, *args, **kwargs)
            try:
                return future.result()
            except BrokenProcessPool as exc:
                self._executors[slot.index] = None  # a fresh process next time
                raise SlotCrashed(f"slot {slot.name}: its worker process died while running {getattr(fn, '__name__', fn)}") from exc
        finally:
            self._release(slot)

    def shutdown(self) -> None:
        for index, executor in self._executors.items():
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
                self._executors[index] = None
