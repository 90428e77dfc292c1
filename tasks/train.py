"""train-NNN: one model's training, in its own device slot's process."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from model import pipeline
from model.mixture import Mixture
from model.sweep import SweepConfig, SweepPaths
from model.train import TrainSpec

from .caching import INDEX_CACHE
from .runtime import Poller, pool, remember_slot



@task(name="train", task_run_name="train-{index:03d}", retries=1, retry_delay_seconds=1, cache_policy=INDEX_CACHE,
      persist_result=True,
      description="Train one model on its mixture; resumes from its newest checkpoint on retry.")
def train_model(index: int, config: dict, mixture: dict, tokens: dict) -> dict:
    sweep = SweepConfig.from_dict(config)
    paths = SweepPaths.of(sweep)
    run_dir = paths.model_dir(index)
    spec = TrainSpec(Mixture.from_dict(mixture), sweep.resolved_preset(), sweep.train_seed, tokens["tokens_key"])
    progress_file = run_dir / "progress.json"
    artifact = create_progress_artifact(
        progress=0.0, key=f"progress-model-index-{index}",
        description=f"Training steps of model-index-{index} ({sweep.preset})",
    )

    def show(progress: dict) -> None:
        update_progress_artifact(artifact, progress=100.0 * progress["step"] / progress["total"])

    # Every 5 s at most: each update is an API call made while the slots train.
    with Poller(progress_file, show, every=5.0):
        result = pool().run(
            pipeline.train_index, index, str(run_dir), spec, tokens["tokens_dir"], tokens["tokenizer_dir"],
            str(progress_file), priority=1, on_start=remember_slot(index),
        )
    update_progress_artifact(artifact, progress=100.0)
    return {k: v for k, v in result.items() if k != "history"}
