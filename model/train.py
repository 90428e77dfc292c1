"""Training one model on one mixture, top to bottom: data, model, optimiser, loop, checkpoints.

A run lives in one folder. Checkpoints are written atomically every `checkpoint_interval` steps
and at the end; a run started again on the same folder resumes from the newest complete
checkpoint and ends exactly where an uninterrupted run would (same data, same RNG, same
optimiser state). The last thing a finished run writes is `train_result.json`; its presence is
what "done" means.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import distributed
from .fused_loss import head_cross_entropy
from .io import atomic_dir, atomic_write_json, config_hash
from .mixture import Mixture, write_train_config
from .presets import Preset, TrainHyper
from .sampler import MixtureSampler

RESULT_FILE = "train_result.json"
FINAL_DIR = "final"
CHECKPOINT_DIR = "checkpoints"
KEEP_CHECKPOINTS = 2

Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines the trained weights; its hash names the run."""

    mixture: Mixture
    preset: Preset
    seed: int = 0
    tokens_key: str = ""  # the token store's key: which corpus and tokenizer

    def to_dict(self) -> dict:
        return {
            "mixture": self.mixture.as_dict(),
            "preset": self.preset.to_dict(),
            "seed": self.seed,
            "tokens_key": self.tokens_key,
        }

    def hash(self) -> str:
        return config_hash(self.to_dict())


class TrainingInterrupted(RuntimeError):
    """Raised by `stop_after`: the run stopped on purpose, its checkpoints stay."""


def learning_rate(step: int, hyper: TrainHyper) -> float:
    """Linear warm-up over `warmup_steps`, then constant or cosine down to `min_lr`."""
    if step < hyper.warmup_steps:
        return hyper.lr * (step + 1) / hyper.warmup_steps
    if hyper.schedule == "constant":
        return hyper.lr
    if hyper.schedule != "cosine":
        raise ValueError(f"schedule: unknown schedule {hyper.schedule!r} (cosine or constant)")
    progress = (step - hyper.warmup_steps) / max(1, hyper.steps - hyper.warmup_steps)
    return hyper.min_lr + 0.5 * (hyper.lr - hyper.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def build_model(preset: Preset, vocab_size: int, seed: int):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    config = preset.model.llama_config(vocab_size, attn_implementation="sdpa")
    return LlamaForCausalLM(config)


def build_optimizer(model: torch.nn.Module, hyper: TrainHyper) -> torch.optim.Optimizer:
    # Decay matrices (projections, embeddings), not norms' gains: the usual split.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": hyper.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel over all tensors, on CPU too (9x faster than the per-tensor loop for the
    # 1M preset's 26M-parameter embedding + head; same updates to float rounding).
    return torch.optim.AdamW(groups, lr=hyper.lr, betas=hyper.betas, fused=True)


class CausalLMLoss(torch.nn.Module):
    """The model's body, then the fused output head + mean cross-entropy: the module that
    training calls (and DDP wraps), so the (tokens x vocab) logits never materialise."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hidden = self.model.base_model(input_ids=input_ids).last_hidden_state
        head = self.model.get_output_embeddings().weight
        return head_cross_entropy(hidden.flatten(0, 1), head, targets.flatten())


def _autocast(device: str):
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()  # fp32 on CPU


class _WriteErrors:
    """A file for torch.save that keeps the OSError (a full disk) torch turns into a vague RuntimeError."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self):
        return self.file.flush()


def _save_checkpoint(folder: Path, step: int, state: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:07d}.pt"
    for leftover in folder.glob(".step-*.tmp"):  # from a writer killed mid-write; one writer per run
        leftover.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            writer = _WriteErrors(f)
            try:
                torch.save(state, writer)
                f.flush()
                os.fsync(f.fileno())
            except (OSError, RuntimeError) as exc:
                cause = exc if isinstance(exc, OSError) else writer.error
                if cause is None:
                    raise
                raise OSError(cause.errno, f"{cause.strerror} while writing a checkpoint", str(path)) from exc
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    for old in sorted(folder.glob("step-*.pt"))[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: Path, spec_hash: str) -> dict | None:
    """The newest checkpoint that loads whole and belongs to this run; older ones as fallback."""
    for path in sorted(Path(folder).glob("step-*.pt"), reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # a truncated file from a crash mid-write: fall back to the previous one
            continue
        if state.get("spec_hash") != spec_hash:
            raise ValueError(f"checkpoint {path}: written by run {state.get('spec_hash')!r}, not {spec_hash!r}")
        return state
    return None


def read_result(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def train(
    run_dir: str | Path,
    spec: TrainSpec,
    store,
    tokenizer,
    device: str | None = None,
    progress: Progress | None = None,
    stop_after: int | None = None,
    keep_model: Callable[[torch.nn.Module], None] | None = None,
) -> dict:
    """Train (or resume, or return the finished result of) the run in `run_dir`.

    `keep_model` receives the trained model, so evaluation in the same process needs no reload.
    """
    called_at = time.time()  # this call's wall clock, for makespan figures (not the loop's own time)
    run_dir = Path(run_dir)
    spec_hash = spec.hash()
    done = read_result(run_dir)
    if done and done.get("spec_hash") == spec_hash:
        return done
    ctx = distributed.DistContext.from_env()  # a torchrun rank, or the one process
    hyper = spec.preset.train
    if hyper.batch_sequences % (hyper.micro_batch * ctx.world):
        raise ValueError(
            f"preset {spec.preset.name}: batch_sequences {hyper.batch_sequences} is not a multiple "
            f"of micro_batch {hyper.micro_batch}" + (f" x {ctx.world} ranks" if ctx.enabled else "")
        )
    device = distributed.setup(ctx, device or default_device())
    accumulation = hyper.batch_sequences // (hyper.micro_batch * ctx.world)
    run_dir.mkdir(parents=True, exist_ok=True)

    model = build_model(spec.preset, store.vocab_size, spec.seed).to(device)
    optimizer = build_optimizer(model, hyper)
    trained = distributed.wrap(CausalLMLoss(model), ctx, device)  # the module that runs forward/backward
    sampler = MixtureSampler(store, spec.mixture, hyper.seq_len, spec.seed)
    start_step, elapsed, history = 0, 0.0, []
    checkpoint = latest_checkpoint(run_dir / CHECKPOINT_DIR, spec_hash)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        sampler.load_state_dict(checkpoint["sampler"])
        torch.set_rng_state(checkpoint["torch_rng"])
        start_step, elapsed, history = checkpoint["step"], checkpoint["elapsed"], checkpoint["history"]

    from .evaluate import validation_losses

    def evaluate_now() -> dict[str, float]:
        return validation_losses(
            model, store, seq_len=hyper.seq_len, max_tokens=hyper.eval_tokens,
            batch_size=hyper.micro_batch, device=device,
        )

    trained.train()
    began = time.perf_counter() - elapsed
    for step in range(start_step, hyper.steps):
        lr = learning_rate(step, hyper)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Every rank draws the same global batch (same seeded sampler) and trains on its rows.
        batch = sampler.next_batch(hyper.batch_sequences)[ctx.rank :: ctx.world]
        micros = torch.from_numpy(batch).to(device).split(hyper.micro_batch)
        loss_sum = 0.0
        for i, micro in enumerate(micros):
            with distributed.no_sync(trained, last_micro=i == len(micros) - 1):
                with _autocast(device):
                    loss = trained(micro[:, :-1], micro[:, 1:])
                (loss / accumulation).backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), hyper.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done_steps = step + 1
        loss_mean = distributed.mean_over_ranks(loss_sum / accumulation, ctx, device)
        record = {"step": done_steps, "loss": loss_mean, "lr": lr, "grad_norm": float(grad_norm)}
        if hyper.eval_interval and done_steps % hyper.eval_interval == 0 and done_steps < hyper.steps:
            if ctx.is_main:
                record["val_loss"] = evaluate_now()
            distributed.barrier(ctx)
            trained.train()
        history.append(record)
        at_interval = hyper.checkpoint_interval and done_steps % hyper.checkpoint_interval == 0
        if ctx.is_main and (at_interval or done_steps == hyper.steps):
            _save_checkpoint(run_dir / CHECKPOINT_DIR, done_steps, {
                "spec_hash": spec_hash, "step": done_steps, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "sampler": sampler.state_dict(),
                "torch_rng": torch.get_rng_state(), "history": history,
                "elapsed": time.perf_counter() - began,
            })
        if progress and ctx.is_main:  # after the checkpoint: a reported step survives a crash
            progress(done_steps, hyper.steps, record)
        if stop_after is not None and done_steps >= stop_after and done_steps < hyper.steps:
            raise TrainingInterrupted(f"stopped after step {done_steps} as asked")

    train_seconds = time.perf_counter() - began
    if not ctx.is_main:  # rank 0 evaluates and writes; the others wait for its result
        distributed.barrier(ctx)
        distributed.teardown(ctx)
        return read_result(run_dir)
    val_loss = evaluate_now()
    export_model(run_dir / FINAL_DIR, model, tokenizer, spec)
    result = {
        "spec_hash": spec_hash,
        "spec": spec.to_dict(),
        "steps": hyper.steps,
        "tokens": hyper.total_tokens,
        "train_seconds": train_seconds,
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
        "val_loss": val_loss,
        "device": device if not ctx.enabled else f"{ctx.world} x {device.split(':')[0]} (DDP)",
        "resumed_from_step": start_step,
        "called_at": called_at,  # this call: model build, loop, validation, export
        "call_seconds": time.time() - called_at,
        "model_dir": str(run_dir / FINAL_DIR),
        "history": history,
    }
    atomic_write_json(run_dir / RESULT_FILE, result)
    distributed.barrier(ctx)
    distributed.teardown(ctx)
    result = read_result(run_dir)  # exactly what a later call returns from disk
    if keep_model:
        keep_model(model)
    return result


def export_model(folder: Path, model, tokenizer, spec: TrainSpec) -> Path:
    """A Hub-native folder: model.safetensors, config.json, tokenizer files, train_config.yaml."""
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_train_config(tmp / "train_config.yaml", spec.mixture, spec.preset.name)
    return folder


def param_count(model: torch.nn.Module, non_embedding: bool = True) -> int:
    total = sum(p.numel() for p in model.parameters())
    if non_embedding:
        total -= model.get_input_embeddings().weight.numel()
    return total
