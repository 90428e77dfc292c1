"""evaluate-NNN: validation losses and lm-eval scores of one model, on the slot that trained it."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from model import pipeline
from model.sweep import SweepConfig, SweepPaths, default_cache_root

from .caching import INDEX_CACHE
from .runtime import pool, slot_of



@task(name="evaluate", task_run_name="evaluate-{index:03d}", retries=1, retry_delay_seconds=1, cache_policy=INDEX_CACHE,
      persist_result=True,
      description="Per-domain validation loss and lm-eval downstream scores of one model.")
def evaluate_model(index: int, config: dict, tokens: dict, corpus_root: str) -> dict:
    sweep = SweepConfig.from_dict(config)
    run_dir = SweepPaths.of(sweep).model_dir(index)
    # priority 0: an evaluation goes before the next training, so finished models report early.
    record = pool().run(pipeline.evaluate_index, index, str(run_dir), sweep.eval, corpus_root,
                        str(default_cache_root()), priority=0, prefer=slot_of(index))
    rows = [{"task": name, "score": record["scores"].get(name), **{k: v for k, v in info.items() if k != "per_shot"},
             "per_shot": str(info.get("per_shot"))} for name, info in record["tasks"].items()]
    rows += [{"task": f"val_loss/{d}", "score": loss, "status": "ok"} for d, loss in record["val_loss"].items()]
    create_table_artifact(key=f"eval-model-index-{index}", table=rows,
                          description=f"Evaluation of model-index-{index}")
    return {"scores": record["scores"], "val_loss": record["val_loss"]}
