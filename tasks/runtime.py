"""Process-wide state the tasks share: the slot pool and the progress pollers.

The pool cannot be a task input (it is not serialisable, and it would break input caching), so
the flow opens it here and tasks look it up.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from model.slots import Slot, SlotPool, plan_slots

_pool: SlotPool | None = None
_lock = threading.Lock()


def open_pool(cpu_slots: int | None = None, slots: list[Slot] | None = None) -> SlotPool:
    """The process's pool: `slots` as given (a worker's own share), else planned from this machine."""
    global _pool
    with _lock:
        if _pool is None:
            # Slot processes share the terminal with the sweep's own progress bar: no per-request
            # bars from lm-eval, no per-save bars from transformers (tqdm reads this at import).
            _pool = SlotPool(slots or plan_slots(cpu_slots=cpu_slots), env={"TQDM_DISABLE": "1"})
        return _pool


def pool() -> SlotPool:
    return _pool or open_pool()


def close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown()
            _pool = None


_slot_of_index: dict[int, int] = {}


def remember_slot(index: int):
    """An on_start callback recording which slot trained an index, so its evaluation goes there too."""
    return lambda slot: _slot_of_index.__setitem__(index, slot.index)


def slot_of(index: int) -> int | None:
    return _slot_of_index.get(index)


def read_progress(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class Poller:
    """Calls `update(progress_dict)` each time a progress file changes, until stopped."""

    def __init__(self, path: Path, update, every: float = 2.0):
        self.path, self.update, self.every = Path(path), update, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        seen = None
        while not self._stop.wait(self.every):
            progress = read_progress(self.path)
            if progress and progress.get("updated") != seen:
                seen = progress.get("updated")
                try:
                    self.update(progress)
                except Exception:  # progress is best effort; never fail a training over it
                    pass


class TerminalProgress:
    """A terminal progress bar over every training step of the sweep, fed by the progress files."""

    def __init__(self, files: list[Path], steps_per_model: int, every: float = 1.0):
        from tqdm import tqdm

        self.files = [Path(f) for f in files]
        self.bar = tqdm(total=len(files) * steps_per_model, unit="step", desc="training", dynamic_ncols=True)
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        done = 0
        for f in self.files:
            progress = read_progress(f)
            if progress:
                done += progress["step"]
            elif (f.parent / "train_result.json").is_file():
                done += self.bar.total // len(self.files)
        self.bar.update(done - self.bar.n)

    def _run(self):
        while not self._stop.wait(self._every):
            self._refresh()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._refresh()
        self.bar.close()
