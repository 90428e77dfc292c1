"""model-index-NNN: the chain one index goes through, train -> evaluate -> publish, as nested tasks.

Grouping the chain under one task run keeps an index's work together in the UI and lets a
retried flow run skip, through this task's input cache, every index that already completed.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from model.domains import TARGET_DOMAIN

from .caching import INDEX_CACHE
from .evaluate import evaluate_model
from .publish import publish_model
from .train import train_model



# No tags on these tasks (nor on train/evaluate/publish): a tagged task run asks the API for tag
# concurrency slots before it starts, ~2 s per run on a busy 2-core machine (benchmarks/README.md).
@task(name="model-index", task_run_name="model-index-{index:03d}", cache_policy=INDEX_CACHE, persist_result=True,
      description="Train, evaluate and publish one model index.")
def run_index(index: int, config: dict, mixture: dict, tokens: dict, corpus_root: str, hub_repo: str | None) -> dict:
    trained = train_model(index, config, mixture, tokens)
    scores = evaluate_model(index, config, tokens, corpus_root)
    published = publish_model(index, config, scores, hub_repo)
    return {
        "index": index,
        "pile_cc_loss": trained["val_loss"][TARGET_DOMAIN],
        "scores": scores.get("scores", {}),
        "revision": published.get("revision"),
    }


@task(name="noise-run", task_run_name="noise-seed-{seed_offset}", cache_policy=NO_CACHE,
      description="The first index's mixture again with another seed: the run-to-run noise of one mixture.")
def noise_run(seed_offset: int, config: dict, mixture: dict, tokens: dict) -> dict:
    from model import pipeline
    from model.mixture import Mixture
    from model.sweep import SweepConfig, SweepPaths
    from model.train import TrainSpec

    from .runtime import pool

    sweep = SweepConfig.from_dict(config)
    run_dir = SweepPaths.of(sweep).root / "noise" / f"seed-{sweep.train_seed + seed_offset}"
    spec = TrainSpec(Mixture.from_dict(mixture), sweep.resolved_preset(), sweep.train_seed + seed_offset,
                     tokens["tokens_key"])
    result = pool().run(pipeline.train_index, 0, str(run_dir), spec, tokens["tokens_dir"],
                        tokens["tokenizer_dir"], None, priority=1)
    return {"pile_cc_loss": result["val_loss"][TARGET_DOMAIN]}
