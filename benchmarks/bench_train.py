"""Training throughput of model.train.train() against transformers.Trainer, and MFU on this CPU.

    python benchmarks/bench_train.py --preset demo
    python benchmarks/bench_train.py --preset tinyllama_1M --seq-len 256 --batch 4 --steps 12
    python benchmarks/bench_train.py --preset tinyllama_60M --seq-len 256 --batch 4 --steps 6 --repeats 2
    python benchmarks/bench_train.py --preset demo --steps 8 --profile   # where our step goes

Both trainers get the same preset model (same seed), the same token batches (ours draws them
from MixtureSampler; the Trainer gets those very batches as a torch Dataset), the same AdamW
hyperparameters, warm-up/cosine schedule and gradient clipping, and no eval, saving or logging
in the timed window. The clock runs from the end of the first optimizer step to the end of the
last (per-step callbacks on both sides), so start-up, the final checkpoint and export are out.
Runs alternate ours/Trainer `--repeats` times; medians are reported.

MFU = achieved FLOP/s / the FLOP/s of a large fp32 matmul with the same thread count, measured
here too. FLOPs per token: 6 x (attention + MLP projections + output head) + 12 x L x d x T.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import (alternate, bench_corpus, machine_line, matmul_peak_flops, median, spread,
                    training_flops_per_token)

import torch  # noqa: E402

from model.mixture import Mixture  # noqa: E402
from model.presets import get_preset  # noqa: E402
from model.sampler import MixtureSampler  # noqa: E402
from model.train import TrainSpec, build_model, train  # noqa: E402

MIXTURE = Mixture.from_dict({"pile_cc": 0.4, "wikipedia_en": 0.2, "github": 0.2, "arxiv": 0.1, "dm_mathematics": 0.1})


def timed_window(stamps: list[float], steps: int, batch_tokens: int) -> float:
    """Tokens/s over steps 2..N (stamps taken at the end of each optimizer step)."""
    if len(stamps) < 2:
        raise ValueError(f"steps: need at least 2 timed steps, got {len(stamps)}")
    return (len(stamps) - 1) * batch_tokens / (stamps[-1] - stamps[0])


def run_ours(preset, store, tokenizer, workdir: Path, repeat: int) -> float:
    stamps: list[float] = []
    spec = TrainSpec(MIXTURE, preset, seed=0, tokens_key=store.key)
    train(workdir / f"ours-{repeat}", spec, store, tokenizer, device="cpu",
          progress=lambda step, total, record: stamps.append(time.perf_counter()))
    return timed_window(stamps, preset.train.steps, preset.train.batch_tokens)


def profile_ours(preset, store, tokenizer, workdir: Path, steps: int = 5, rows: int = 15) -> None:
    """torch.profiler over `steps` optimizer steps of our loop (after 2 untimed ones): where a step goes."""
    from torch.profiler import ProfilerActivity, profile, schedule

    spec = TrainSpec(MIXTURE, preset, seed=0, tokens_key=store.key)
    with profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=1, active=steps, repeat=1)) as prof:
        train(workdir / "profiled", spec, store, tokenizer, device="cpu",
              progress=lambda step, total, record: prof.step())
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"profile of our loop, {steps} steps, {total / 1e3 / steps:.1f} ms of op self time per step:")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
        print(f"  {100 * event.self_cpu_time_total / total:5.1f}%  {event.self_cpu_time_total / 1e3 / steps:8.2f} ms/step"
              f"  {event.count // steps:4d} calls/step  {event.key}")


def trainer_batches(preset, store) -> torch.Tensor:
    """Exactly the windows our trainer reads: the same sampler, seed and order."""
    hyper = preset.train
    sampler = MixtureSampler(store, MIXTURE, hyper.seq_len, seed=0)
    return torch.from_numpy(
        __import__("numpy").concatenate([sampler.next_batch(hyper.batch_sequences) for _ in range(hyper.steps)])
    )


class WindowDataset(torch.utils.data.Dataset):
    def __init__(self, windows: torch.Tensor):
        self.windows = windows

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        # HF's causal-LM loss shifts labels itself: inputs and labels are the same T tokens.
        window = self.windows[i, :-1]
        return {"input_ids": window, "labels": window}


def run_trainer(preset, store, windows: torch.Tensor, workdir: Path, repeat: int) -> float:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    hyper = preset.train
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    args = TrainingArguments(
        output_dir=str(workdir / f"trainer-{repeat}"), use_cpu=True, seed=0, data_seed=0,
        per_device_train_batch_size=hyper.micro_batch,
        gradient_accumulation_steps=hyper.batch_sequences // hyper.micro_batch,
        max_steps=hyper.steps, learning_rate=hyper.lr, warmup_steps=hyper.warmup_steps,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr": hyper.min_lr},
        weight_decay=hyper.weight_decay, adam_beta1=hyper.betas[0], adam_beta2=hyper.betas[1],
        max_grad_norm=hyper.grad_clip, optim="adamw_torch",
        logging_strategy="no", save_strategy="no", eval_strategy="no", report_to=[],
        dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False,
    )
    model = build_model(preset, store.vocab_size, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=WindowDataset(windows), callbacks=[Clock()])
    # The same windows in the same order as ours: no shuffling.
    trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(trainer.train_dataset)
    trainer.train()
    return timed_window(stamps, hyper.steps, hyper.batch_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default: the preset's, capped at 150)")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--batch", type=int, help="sequences per optimizer step")
    parser.add_argument("--micro-batch", type=int, help="sequences per forward (default: --batch)")
    parser.add_argument("--threads", type=int, help="torch threads (default: 1 for demo/ci as a sweep slot runs them, else all cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-trainer", action="store_true", help="only our trainer and MFU")
    parser.add_argument("--profile", action="store_true", help="only a torch.profiler breakdown of our loop")
    args = parser.parse_args()

    preset = get_preset(args.preset)
    hyper = preset.train
    overrides = {"eval_interval": 0, "checkpoint_interval": 0, "steps": args.steps or min(hyper.steps, 150)}
    if args.seq_len:
        overrides["seq_len"] = args.seq_len
    if args.batch:
        overrides["batch_sequences"] = args.batch
        overrides["micro_batch"] = args.micro_batch or args.batch
    elif args.micro_batch:
        overrides["micro_batch"] = args.micro_batch
    overrides["warmup_steps"] = min(hyper.warmup_steps, max(1, overrides["steps"] // 10))
    # The final validation after training is outside the timed window; keep it short (2 windows per domain).
    overrides["eval_tokens"] = 2 * (overrides.get("seq_len") or hyper.seq_len) + 2
    preset = preset.with_overrides(**overrides)
    hyper = preset.train
    threads = args.threads or (1 if args.preset in ("demo", "ci") else (torch.get_num_threads()))
    torch.set_num_threads(threads)

    store, tokenizer = bench_corpus()
    shape = preset.model
    vocab = shape.vocab_size or (-(-store.vocab_size // 64) * 64)
    flops_per_token = training_flops_per_token(shape.n_layers, shape.d_model, shape.d_mlp, vocab, hyper.seq_len)
    print(machine_line())
    print(f"preset {args.preset}: L={shape.n_layers} d={shape.d_model} mlp={shape.d_mlp} vocab={vocab}; "
          f"seq_len {hyper.seq_len}, batch {hyper.batch_sequences} (micro {hyper.micro_batch}), "
          f"{hyper.steps} steps, {threads} thread(s), {args.repeats} alternating repeats")
    print(f"FLOPs per token: {flops_per_token / 1e6:.3f} M (6 x matmul params + 12 x L x d x T)")

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        if args.profile:
            if hyper.steps < 3:
                raise ValueError(f"--steps: the profile skips 2 steps and needs 1 more, got {hyper.steps}")
            profile_ours(preset, store, tokenizer, tmp, steps=min(5, hyper.steps - 2))
            return
        windows = None if args.skip_trainer else trainer_batches(preset, store)
        runs = {"ours": lambda r=iter(range(10**6)): run_ours(preset, store, tokenizer, tmp, next(r))}
        if not args.skip_trainer:
            runs["trainer"] = lambda r=iter(range(10**6)): run_trainer(preset, store, windows, tmp, next(r))
        runs["peak"] = lambda: matmul_peak_flops(threads, seconds=1.0)
        figures = alternate(runs, args.repeats)

    peak = median(figures["peak"])
    ours = median(figures["ours"])
    print(f"fp32 matmul peak ({threads} thread(s)): {peak / 1e9:.2f} GFLOP/s  rounds {spread([p / 1e9 for p in figures['peak']])}")
    print(f"ours    : {ours:12,.0f} tokens/s  rounds {spread(figures['ours'])}  "
          f"MFU {100 * ours * flops_per_token / peak:.1f}%")
    if "trainer" in figures:
        base = median(figures["trainer"])
        print(f"Trainer : {base:12,.0f} tokens/s  rounds {spread(figures['trainer'])}  "
              f"MFU {100 * base * flops_per_token / peak:.1f}%")
        ratios = [o / b for o, b in zip(figures["ours"], figures["trainer"])]
        print(f"ratio ours/Trainer: {ours / base:.2f}x (median of medians; per round {spread(ratios)})")
    print(machine_line())


if __name__ == "__main__":
    main()
