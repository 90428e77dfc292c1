"""Shared pieces of the benchmark scripts: a cached small corpus, alternating timing, FLOP counts, peaks."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH_CACHE = Path(os.environ.get("REGMIX_BENCH_CACHE") or ROOT / "cache" / "bench")


def bench_corpus(train_tokens: int = 400_000, vocab_size: int = 2048, valid_docs: int = 40):
    """(token store, tokenizer) of a seeded mini-pile, built once and reused from BENCH_CACHE."""
    from model.minipile import generate_mini_pile
    from model.tokens import load_tokenizer, tokenize_corpus, train_bpe_tokenizer

    root = BENCH_CACHE / f"mini-pile-t{train_tokens}-v{valid_docs}"
    corpus = root / "corpus"
    if not (corpus.is_dir()):
        generate_mini_pile(corpus, seed=0, train_tokens=train_tokens, valid_docs=valid_docs)
    tokenizer_dir = root / f"bpe{vocab_size}"
    if not tokenizer_dir.is_dir():
        train_bpe_tokenizer(corpus, tokenizer_dir, vocab_size=vocab_size)
    tokenizer = load_tokenizer(tokenizer_dir)
    return tokenize_corpus(corpus, tokenizer, root / "tokens"), tokenizer


def machine_line() -> str:
    load = os.getloadavg()
    return (f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
            f"(1/5/15 min), python {sys.version.split()[0]}")


def alternate(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each run in turn, `repeats` rounds, so drifting machine load hits all of them alike.

    Each run returns its own figure (seconds, or a rate); the lists keep every round's figure.
    """
    figures: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            figures[name].append(run())
    return figures


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:,.4g}" for v in values) + "]"


def training_flops_per_token(n_layers: int, d_model: int, d_mlp: int, vocab_size: int, seq_len: int) -> float:
    """6 x N + 12 x L x d x T (PaLM's formula, attention counted as full, not causal-halved).

    N counts every matrix a token is multiplied through: attention and MLP projections and the
    output head, not the embedding lookup (a gather) and not norm gains (no matmul).
    """
    matmul_params = n_layers * (4 * d_model * d_model + 3 * d_model * d_mlp) + d_model * vocab_size
    return 6.0 * matmul_params + 12.0 * n_layers * d_model * seq_len


def matmul_peak_flops(threads: int, dtype=None, size: int = 2048, device: str = "cpu", seconds: float = 2.0) -> float:
    """FLOP/s of a large square matmul with `threads` torch threads: the machine's practical peak."""
    import torch

    dtype = dtype or torch.float32
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        out = torch.empty(size, size, dtype=dtype, device=device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        torch.matmul(a, b, out=out)
        sync()
        best, spent = 0.0, 0.0
        while spent < seconds:
            start = time.perf_counter()
            for _ in range(4 if device == "cpu" else 50):
                torch.matmul(a, b, out=out)
            sync()
            took = time.perf_counter() - start
            spent += took
            best = max(best, (4 if device == "cpu" else 50) * 2 * size ** 3 / took)
        return best
    finally:
        torch.set_num_threads(previous)
