"""publish-NNN: one model onto its branch model-index-N; model-card: the card on main, once per sweep.

The target is the local Hub mirror under the sweep folder (the embedded default), or the Hub
repository `hub_repo` when one is named. The token comes from HF_TOKEN or the Prefect Secret
block `hf-token`; it is never a flow parameter and never logged.
"""

from __future__ import annotations

import json
import os

from prefect import task
from prefect.cache_policies import NO_CACHE

from model.io import atomic_write_json
from model.publish import HubTarget, LocalMirror, render_model_card, update_main, validate_repo_id
from model.publish import publish_model as publish_branch
from model.sweep import SweepConfig, SweepPaths, results_rows

from .caching import INDEX_CACHE

SECRET_BLOCK = "hf-token"


def hub_token() -> str | None:
    token = os.environ.get("HF_TOKEN")
    if token:
        return token
    try:
        from prefect.blocks.system import Secret

        return Secret.load(SECRET_BLOCK).get()
    except Exception:  # no such block, or no server to ask: the caller reports a missing token
        return None


def check_target(hub_repo: str | None) -> None:
    """Before any training: a named Hub repository must be valid and a token must exist."""
    if hub_repo is None:
        return
    validate_repo_id(hub_repo)
    if not hub_token():
        raise ValueError(
            f"hub_repo: {hub_repo!r} needs a Hugging Face token: set HF_TOKEN on the workers or "
            f"create the Prefect Secret block {SECRET_BLOCK!r}"
        )


def target_for(paths: SweepPaths, hub_repo: str | None):
    if hub_repo:
        return HubTarget(hub_repo, token=hub_token())
    return LocalMirror(paths.mirror)


@task(name="publish", task_run_name="publish-{index:03d}", retries=2, retry_delay_seconds=[2, 10], cache_policy=INDEX_CACHE,
      persist_result=True, description="Upload one model to branch model-index-N (skipped when the branch already holds it).")
def publish_model(index: int, config: dict, scores: dict, hub_repo: str | None) -> dict:
    sweep = SweepConfig.from_dict(config)
    paths = SweepPaths.of(sweep)
    result = publish_branch(target_for(paths, hub_repo), index, paths.model_dir(index) / "final", scores)
    record = {"branch": result.branch, "revision": result.revision, "skipped": result.skipped,
              "target": hub_repo or str(paths.mirror)}
    atomic_write_json(paths.model_dir(index) / "publish.json", record)
    return record


# Once per sweep, not per index: rendering reads every index's results, so per-index cards cost
# O(N^2) reads and one main commit per model.
@task(name="model-card", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10],
      description="The model card and config on main, from every index published so far.")
def publish_card(config: dict, hub_repo: str | None) -> dict | None:
    sweep = SweepConfig.from_dict(config)
    paths = SweepPaths.of(sweep)
    model_config = _published_model_config(paths, sweep)
    if model_config is None:
        return None  # nothing published yet: main stays as it is
    card = render_model_card(_card_settings(sweep, hub_repo), results_rows(paths, sweep))
    result = update_main(target_for(paths, hub_repo), card, model_config)
    return {"branch": result.branch, "revision": result.revision, "skipped": result.skipped}


def _card_settings(sweep: SweepConfig, hub_repo: str | None) -> dict:
    preset = sweep.resolved_preset()
    return {
        "repo_id": hub_repo, "name": sweep.name, "num_models": sweep.n_models, "model_name": sweep.preset,
        "corpus": sweep.corpus, "tokenizer": sweep.resolved_tokenizer(),
        "tokens_per_model": preset.train.total_tokens, "training": preset.train.__dict__,
        "sampler_seed": sweep.sampler_seed,
    }


def _published_model_config(paths: SweepPaths, sweep: SweepConfig) -> dict | None:
    """config.json of a published model (all indices share one architecture), or None."""
    for index in range(1, sweep.n_models + 1):
        if (paths.model_dir(index) / "publish.json").is_file():
            return json.loads((paths.model_dir(index) / "final" / "config.json").read_text())
    return None
