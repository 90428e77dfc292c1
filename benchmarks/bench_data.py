"""The data path: tokens/s MixtureSampler delivers from the token files vs what training consumes.

    python benchmarks/bench_data.py [--preset demo] [--threads 1] [--repeats 5]

Training's consumption is measured here too, on the same preset and thread count: forward,
backward and AdamW step of the preset model on batches of the preset's shape (what
model.train.train does per step, minus the sampler). Sampler and training alternate. The
sampler is also timed at the RegMix proxy shape (2048-token windows, 512 per step).
"""

from __future__ import annotations

import argparse
import time

from common import alternate, bench_corpus, machine_line, median, spread

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from model.mixture import Mixture  # noqa: E402
from model.presets import get_preset  # noqa: E402
from model.sampler import MixtureSampler  # noqa: E402
from model.train import build_model, build_optimizer  # noqa: E402

# Every domain with some weight: the sampler's worst case (17 domains to gather from per batch).
ALL_DOMAINS = Mixture.from_dict({d: 1.0 for d in __import__("model.domains", fromlist=["DOMAINS"]).DOMAINS})


def sampler_rate(store, seq_len: int, batch: int, seconds: float) -> float:
    sampler = MixtureSampler(store, ALL_DOMAINS, seq_len, seed=0)
    sampler.next_batch(batch)
    tokens, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.from_numpy(sampler.next_batch(batch))  # as train() hands it on
        tokens += batch * seq_len
    return tokens / (time.perf_counter() - start)


def training_rate(preset, vocab_size: int, steps: int) -> float:
    hyper = preset.train
    model = build_model(preset, vocab_size, seed=0)
    optimizer = build_optimizer(model, hyper)
    batch = torch.randint(0, vocab_size, (hyper.batch_sequences, hyper.seq_len + 1))

    def step():
        for micro in batch.split(hyper.micro_batch):
            logits = model(input_ids=micro[:, :-1]).logits
            F.cross_entropy(logits.flatten(0, 1), micro[:, 1:].flatten()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hyper.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * hyper.batch_tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    hyper = preset.train
    store, _ = bench_corpus()

    print(machine_line())
    figures = alternate({
        "sampler": lambda: sampler_rate(store, hyper.seq_len, hyper.batch_sequences, 1.0),
        "training": lambda: training_rate(preset, store.vocab_size, args.train_steps),
        "sampler_proxy": lambda: sampler_rate(store, 2048, 512, 1.0),
    }, args.repeats)
    sampler, training, proxy = (median(figures[k]) for k in ("sampler", "training", "sampler_proxy"))
    print(f"preset {args.preset}: seq_len {hyper.seq_len}, {hyper.batch_sequences} sequences per step, "
          f"{args.threads} thread(s), {args.repeats} alternating repeats, mixture over all 17 domains")
    print(f"MixtureSampler  : {sampler:14,.0f} tokens/s  rounds {spread(figures['sampler'])}")
    print(f"training step   : {training:14,.0f} tokens/s  rounds {spread(figures['training'])}")
    print(f"ratio sampler/training: {sampler / training:,.0f}x (goal >= 20x)")
    print(f"MixtureSampler at 2048 x 512 (RegMix proxy batches): {proxy:,.0f} tokens/s  rounds {spread(figures['sampler_proxy'])}")
    print(machine_line())


if __name__ == "__main__":
    main()
