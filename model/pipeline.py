"""What one model index goes through inside its slot's process: train it, then evaluate it.

These are the functions a `SlotPool` runs. They keep per-process caches (token stores,
tokenizers, the lm-eval task set, the model just trained) so a slot that handles many indices
pays for loading once, and evaluation right after training uses the model still in memory.
Progress is written to a small JSON file the orchestrator polls, which keeps this module free
of any orchestration library.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from .io import atomic_write_json

_cache: dict = {}


def quiet_libraries() -> None:
    """Only lm-eval's errors: its per-request warnings (e.g. truncated contexts) drown the sweep's log."""
    import logging

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    logging.getLogger("lm-eval").setLevel(logging.ERROR)


def _cached(key, make):
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


def token_store(path: str):
    from .tokens import TokenStore

    return _cached(("store", path), lambda: TokenStore(path))


def tokenizer(path: str):
    from .tokens import load_tokenizer

    return _cached(("tokenizer", path), lambda: load_tokenizer(path))


class ProgressFile:
    """Throttled, atomic progress reports: {step, total, loss, updated}."""

    def __init__(self, path: str | Path | None, every_seconds: float = 2.0):
        self.path = Path(path) if path else None
        self.every = every_seconds
        self.last = 0.0

    def __call__(self, step: int, total: int, record: dict) -> None:
        now = time.time()
        if self.path and (now - self.last >= self.every or step == total):
            self.last = now
            atomic_write_json(self.path, {"step": step, "total": total, "loss": record.get("loss"), "updated": now})


def check_fault(stage: str, index: int) -> None:
    """Test hook: REGMIX_FAULTS names a file of `<stage>:<index>` lines (e.g. `train:3`).

    `<stage>:<index>` raises; `kill-<stage>:<index>` SIGKILLs this process midway, as a crash
    would. Reading a file (not the environment) lets a test remove the fault before a retry.
    """
    path = os.environ.get("REGMIX_FAULTS")
    if not path or not os.path.isfile(path):
        return
    lines = {line.strip() for line in Path(path).read_text().splitlines()}
    if f"{stage}:{index}" in lines:
        raise RuntimeError(f"injected fault: {stage} of model index {index}")
    if f"kill-{stage}:{index}" in lines:
        os.kill(os.getpid(), signal.SIGKILL)


def train_index(device: str, index: int, run_dir: str, spec, tokens_dir: str, tokenizer_dir: str,
                progress_path: str | None = None) -> dict:
    from .train import train

    check_fault("train", index)
    quiet_libraries()
    progress = ProgressFile(progress_path)
    kill_at = _kill_step(index, spec.preset.train.steps)

    def report(step, total, record):
        progress(step, total, record)
        if kill_at is not None and step >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def keep(model):
        _cache["last_model"] = (str(Path(run_dir) / "final"), model)

    import torch

    if device == "cuda" and torch.cuda.device_count() > 1:  # a slot of several GPUs: DDP via torchrun
        from .distributed import launch
        from .train import read_result

        done = read_result(run_dir)
        if not done or done.get("spec_hash") != spec.hash():
            launch(torch.cuda.device_count(), run_dir, spec, tokens_dir, tokenizer_dir, progress_path)
        return read_result(run_dir)
    return train(run_dir, spec, token_store(tokens_dir), tokenizer(tokenizer_dir), device=device,
                 progress=report, keep_model=keep)


def _kill_step(index: int, steps: int) -> int | None:
    """`kill-train-midway:<index>` in the fault file: die after half the steps, once checkpointed."""
    path = os.environ.get("REGMIX_FAULTS")
    if not path or not os.path.isfile(path):
        return None
    if f"kill-train-midway:{index}" in Path(path).read_text().split():
        return max(1, steps // 2)
    return None


def load_model(model_dir: str, device: str):
    """The model just trained in this process if it is this one, else from its folder."""
    last = _cache.get("last_model")
    if last and last[0] == str(model_dir):
        return last[1].to(device).eval()
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()


def evaluator(settings, corpus_root: str, cache_root: str):
    """The lm-eval task set of a sweep, built once per process (indexing tasks costs seconds)."""
    from .corpus_tasks import prepare_corpus_tasks
    from .evaluate import Evaluator

    def make():
        include, names = [], list(settings.tasks)
        if settings.corpus_tasks:
            corpus_tasks = prepare_corpus_tasks(corpus_root, cache_root, domains=settings.corpus_tasks)
            include.append(corpus_tasks.include_path)
            names += corpus_tasks.task_names
        if not names:
            return None
        return Evaluator(names, shots=settings.shots, limit=settings.limit, include_paths=include, cache_dir=cache_root)

    return _cached(("evaluator", repr(settings), corpus_root, cache_root), make)


def evaluate_index(device: str, index: int, run_dir: str, settings, corpus_root: str, cache_root: str) -> dict:
    """Downstream scores of one trained model, plus its per-domain validation losses, in eval.json.

    A finished evaluation with the same task configuration is read back, not redone.
    """
    import json

    from .train import FINAL_DIR, read_result

    check_fault("evaluate", index)
    called_at = time.time()  # this call's wall clock, for makespan figures
    quiet_libraries()
    run_dir = Path(run_dir)
    trained = read_result(run_dir)
    if trained is None:
        raise FileNotFoundError(f"model-index-{index}: no finished training in {run_dir}")
    ev = evaluator(settings, corpus_root, cache_root)
    config_hash = ev.config_hash if ev else "validation-loss-only"
    out = run_dir / "eval.json"
    if out.is_file():
        done = json.loads(out.read_text())
        if done.get("config_hash") == config_hash:
            return done
    record = {"config_hash": config_hash, "val_loss": trained["val_loss"], "scores": {}, "tasks": {},
              "called_at": called_at}
    if ev:
        model_dir = str(run_dir / FINAL_DIR)
        report = ev.evaluate(load_model(model_dir, device), tokenizer(model_dir), device)
        record["scores"] = {name: t.score if t.status == "ok" else None for name, t in report.tasks.items()}
        record["scores"]["average"] = report.average
        record["tasks"] = {name: {"status": t.status, "reason": t.reason, "metric": t.metric,
                                  "per_shot": t.per_shot, "source": t.source} for name, t in report.tasks.items()}
        record["seconds"] = report.seconds
    record["call_seconds"] = time.time() - called_at
    atomic_write_json(out, record)
    return record
