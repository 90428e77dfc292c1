"""Work-pool mode: one index as a flow run of the single-index deployment on the GPU pool.

The child flow run (named `model-index-NNN`, tagged the same) is linked under this task run in
the UI. Its outcome is read from its final state, never assumed, and the index's numbers come
back through the sweep folder, which every worker must reach (output_root on a shared path).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import task

from model.domains import TARGET_DOMAIN
from model.sweep import SweepConfig, SweepPaths

from .caching import INDEX_CACHE

INDEX_DEPLOYMENT = "regmix-index/train-index"


class IndexRunFailed(RuntimeError):
    """The single-index flow run of one model index did not complete."""



@task(name="model-index-remote", task_run_name="model-index-{index:03d}", cache_policy=INDEX_CACHE, persist_result=True,
      description="Run one index on the GPU work pool and wait for it.")
def run_index_on_pool(index: int, config: dict, mixture: dict, tokens: dict, corpus_root: str,
                      hub_repo: str | None) -> dict:
    from prefect.deployments import run_deployment

    name = f"model-index-{index:03d}"
    deployment = os.environ.get("REGMIX_INDEX_DEPLOYMENT", INDEX_DEPLOYMENT)
    # Flow-run tags (unlike task tags, free): `regmix` is what the zombie automation watches.
    child = run_deployment(
        deployment, flow_run_name=name, tags=["regmix", name], timeout=None, as_subflow=True,
        poll_interval=float(os.environ.get("REGMIX_POLL_SECONDS", "5")),
        parameters={"index": index, "config": config, "mixture": mixture, "tokens": tokens,
                    "corpus_root": corpus_root, "hub_repo": hub_repo},
    )
    state = child.state
    if state is None or not state.is_completed():
        ended = f"{state.name}: {state.message}" if state else "without a state"
        raise IndexRunFailed(f"{name}: flow run {child.name!r} ({child.id}) of {deployment} ended {ended}")
    return index_outcome(index, config)


def index_outcome(index: int, config: dict) -> dict:
    """What `run_index` returns for an index, read back from the sweep folder."""
    from model.train import RESULT_FILE

    folder = SweepPaths.of(SweepConfig.from_dict(config)).model_dir(index)
    trained = _read_record(folder / RESULT_FILE, index)
    evaluated = _read_record(folder / "eval.json", index)
    published = _read_record(folder / "publish.json", index)
    return {
        "index": index,
        "pile_cc_loss": trained["val_loss"][TARGET_DOMAIN],
        "scores": evaluated.get("scores", {}),
        "revision": published.get("revision"),
    }


def _read_record(path: Path, index: int) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"model-index-{index}: its flow run completed but {path} is missing here; "
            "output_root must be a folder every worker and the sweep share"
        ) from None
