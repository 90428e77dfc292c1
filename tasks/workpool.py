"""Work-pool mode: one index as a flow run of the single-index deployment on the GPU pool."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import INPUTS


def _index_name(parameters: dict) -> str:
    return f"model-index-{parameters['index']:03d}"


@task(name="model-index-remote", task_run_name=_index_name, cache_policy=INPUTS, persist_result=True,
      tags=["regmix", "work-pool"], description="Run one index on the GPU work pool and wait for it.")
def run_index_on_pool(index: int, config: dict, mixture: dict, tokens: dict, corpus_root: str,
                      hub_repo: str | None) -> dict:
    raise NotImplementedError("work-pool mode is being built (issue 6)")
