"""The cache policy of the per-index tasks: their inputs, and the sweep folder they wrote into.

Inputs alone are not enough: the same sweep run again after its folder was deleted (or in a fresh
checkout at the same path, Prefect's result store living in ~/.prefect) has identical inputs, and
its indices would come back "Cached" with no files behind them. The key also covers the folder's
`instance` id from sweep.json (model/sweep.py), made once per folder and kept by reruns, so a
retry or rerun of the same folder still skips finished indices and a new folder redoes them.
"""

from __future__ import annotations

import uuid

from prefect.cache_policies import INPUTS, CacheKeyFnPolicy

from model.sweep import SweepConfig, SweepPaths, sweep_instance


def _sweep_folder_instance(context, parameters: dict) -> str:
    instance = sweep_instance(SweepPaths.of(SweepConfig.from_dict(parameters["config"])))
    return instance or uuid.uuid4().hex  # no sweep.json yet: a key that never matches


INDEX_CACHE = INPUTS + CacheKeyFnPolicy(cache_key_fn=_sweep_folder_instance)
