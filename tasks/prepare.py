"""Once per sweep: the corpus, its tokenizer and token files, and the sampled mixtures."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from model.sweep import EMBEDDED_CORPUS, SweepConfig, SweepPaths, default_cache_root, prepare_mixtures, write_sweep_config


@task(name="prepare-corpus", retries=1, cache_policy=NO_CACHE)
def prepare_corpus(config: dict) -> str:
    """The embedded mini-pile (generated once into the cache) or the user's RegMix-Data folder."""
    sweep = SweepConfig.from_dict(config)
    if sweep.corpus != EMBEDDED_CORPUS:
        from model.corpus import validate_corpus

        validate_corpus(sweep.corpus)
        return str(Path(sweep.corpus).resolve())
    from model.minipile import DEFAULT_TRAIN_TOKENS, generate_mini_pile

    tokens = sweep.corpus_tokens or DEFAULT_TRAIN_TOKENS
    folder = default_cache_root() / "corpora" / f"mini-pile-s{sweep.corpus_seed}-t{tokens}"
    return str(generate_mini_pile(folder, seed=sweep.corpus_seed, train_tokens=tokens))


@task(name="tokenize", retries=1, cache_policy=NO_CACHE)
def prepare_tokens(corpus_root: str, tokenizer_spec: str) -> dict:
    """Tokenise the corpus once for every model of the sweep (and of later sweeps on it)."""
    from model.io import config_hash
    from model.tokens import corpus_fingerprint, load_tokenizer, tokenize_corpus, train_bpe_tokenizer

    cache = default_cache_root()
    if tokenizer_spec.startswith("bpe:"):
        vocab = int(tokenizer_spec[4:])
        folder = cache / "tokenizers" / f"bpe{vocab}-{config_hash(corpus_fingerprint(corpus_root))}"
        tokenizer = train_bpe_tokenizer(corpus_root, folder, vocab_size=vocab)
        tokenizer_dir = str(folder)
    else:
        tokenizer = load_tokenizer(tokenizer_spec)
        tokenizer_dir = tokenizer_spec
    store = tokenize_corpus(corpus_root, tokenizer, cache)
    return {"tokenizer_dir": tokenizer_dir, "tokens_dir": str(store.path), "tokens_key": store.key}


@task(name="sample-mixtures", cache_policy=NO_CACHE)
def sample_mixtures(config: dict) -> dict[int, dict]:
    """Draw the sweep's N mixtures once (seeded) and store each index's train_config.yaml."""
    sweep = SweepConfig.from_dict(config)
    paths = SweepPaths.of(sweep)
    write_sweep_config(paths, sweep)
    return {i: m.as_dict() for i, m in prepare_mixtures(paths, sweep).items()}


@task(name="prepare-benchmarks", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def prepare_benchmarks(task_names: list[str]) -> dict:
    """Offline copies of the RegMix lm-eval benchmarks (once per cache); tasks that cannot be had
    offline are reported unavailable by the evaluator, not here."""
    from model.offline_tasks import prepare_offline_tasks, read_offline_status

    if not task_names:
        return {}
    try:
        return prepare_offline_tasks(default_cache_root())
    except RuntimeError as exc:  # no PyPI either: the evaluator marks those tasks unavailable
        from prefect import get_run_logger

        get_run_logger().warning("offline benchmark copies could not be prepared: %s", exc)
        return read_offline_status(default_cache_root()) or {}
