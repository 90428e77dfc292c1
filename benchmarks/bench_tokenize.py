"""Time mini-pile generation and tokenize_corpus against a plain `tokenizers` batch call.

    python benchmarks/bench_tokenize.py [--train-tokens N] [--repeats R]

The plain call encodes the same documents, already in memory, with encode_batch_fast in batches of
the same size tokenize_corpus uses (one call on all documents at once measured ~2.6x slower on 2 cores);
tokenize_corpus also reads the JSONL files and writes the token files, and should add little.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.corpus import SPLITS, iter_domain_documents  # noqa: E402
from model.domains import DOMAINS  # noqa: E402
from model.minipile import DEFAULT_TRAIN_TOKENS, DEFAULT_VALID_DOCS, generate_mini_pile  # noqa: E402
from model.tokens import ENCODE_CHUNK_DOCS, tokenize_corpus, train_bpe_tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-tokens", type=int, default=DEFAULT_TRAIN_TOKENS)
    parser.add_argument("--valid-docs", type=int, default=DEFAULT_VALID_DOCS)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-tokenize-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        corpus = generate_mini_pile(tmp / "corpus", seed=0, train_tokens=args.train_tokens, valid_docs=args.valid_docs)
        generation_s = time.perf_counter() - start
        start = time.perf_counter()
        tokenizer = train_bpe_tokenizer(corpus, tmp / "tokenizer", vocab_size=args.vocab_size)
        bpe_s = time.perf_counter() - start

        documents = [d for domain in DOMAINS for split in SPLITS for d in iter_domain_documents(corpus, domain, split)]
        backend = tokenizer.backend_tokenizer
        ours, plain, n_tokens = [], [], 0
        for repeat in range(args.repeats):  # alternate so drift in machine load hits both alike
            start = time.perf_counter()
            store = tokenize_corpus(corpus, tokenizer, tmp / f"cache-{repeat}")
            ours.append(time.perf_counter() - start)
            n_tokens = sum(store.num_tokens(d, s) for d in DOMAINS for s in SPLITS)

            start = time.perf_counter()
            plain_tokens = 0
            for i in range(0, len(documents), ENCODE_CHUNK_DOCS):
                batch = backend.encode_batch_fast(documents[i:i + ENCODE_CHUNK_DOCS], add_special_tokens=False)
                plain_tokens += sum(len(e.ids) for e in batch)
            plain.append(time.perf_counter() - start)
            assert plain_tokens + len(documents) == n_tokens

        words = sum(len(d.split()) for d in documents)
        best_ours, best_plain = min(ours), min(plain)
        print(f"mini-pile: {args.train_tokens:,} train words asked, {len(documents):,} documents, "
              f"{words:,} words, generated in {generation_s:.1f} s")
        print(f"BPE tokenizer (vocab {args.vocab_size}) trained in {bpe_s:.1f} s")
        print(f"tokens (with EOS): {n_tokens:,}")
        print(f"tokenize_corpus      : {n_tokens / best_ours:12,.0f} tokens/s  (best of {args.repeats}: {best_ours:.2f} s)")
        print(f"plain encode_batch_fast: {n_tokens / best_plain:10,.0f} tokens/s  (best of {args.repeats}: {best_plain:.2f} s)")
        print(f"ratio ours/plain time: {best_ours / best_plain:.3f}")


if __name__ == "__main__":
    main()
