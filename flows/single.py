"""The `regmix-index` flow (deployment `train-index`): one model index on this worker's device.

A GPU worker owns one GPU (its CUDA_VISIBLE_DEVICES) and runs one such flow run at a time. The
chain itself is `tasks.index.run_index` (train -> evaluate -> publish), the very task the local
mode runs, here on a slot pool of one slot: this worker's GPU, or its share of the CPU cores
(REGMIX_SLOT_THREADS) on a machine without GPUs.
"""

from __future__ import annotations

import os
import socket

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from model.io import atomic_write_json
from model.slots import plan_slots
from model.sweep import SweepConfig, SweepPaths
from tasks import runtime
from tasks.index import run_index

WORKER_RECORD = "worker.json"  # in the model's folder: which worker and device ran the index
# One more attempt of the whole chain after a failure, e.g. a task that started while the Prefect
# server restarted (its concurrency-slot request is not retried). Finished steps come back from
# their cached results, so the retry redoes only what failed; a real error fails both attempts.
RETRY_DELAY_SECONDS = float(os.environ.get("REGMIX_INDEX_RETRY_DELAY", "30"))


def _index_run_name() -> str:
    return f"model-index-{flow_run.parameters['index']:03d}"


@flow(name="regmix-index", flow_run_name=_index_run_name, log_prints=True, validate_parameters=True,
      retries=1, retry_delay_seconds=RETRY_DELAY_SECONDS, description="One RegMix model index (train, evaluate, publish) on this worker's GPU.")
def regmix_index(index: int, config: dict, mixture: dict, tokens: dict, corpus_root: str,
                 hub_repo: str | None = None) -> dict:
    sweep = SweepConfig.from_dict(config).validate()
    sweep.validate_indices([index])
    slot = _open_worker_slot()
    logger = get_run_logger()
    worker = os.environ.get("REGMIX_WORKER_NAME") or socket.gethostname()
    logger.info("model-index-%d on worker %s, device %s (%d threads)", index, worker, slot.name, slot.threads)
    try:
        outcome = run_index(index, config, mixture, tokens, corpus_root, hub_repo)
    finally:
        runtime.close_pool()
    atomic_write_json(SweepPaths.of(sweep).model_dir(index) / WORKER_RECORD, {
        "worker": worker, "host": socket.gethostname(), "device": slot.name,
        "flow_run_id": str(flow_run.id),
    })
    return outcome


def _open_worker_slot():
    """One slot: the first visible GPU, else the CPU share this worker stands for."""
    threads = os.environ.get("REGMIX_SLOT_THREADS")
    if threads is not None and (not threads.isdigit() or int(threads) < 1):
        raise ValueError(f"REGMIX_SLOT_THREADS: must be a positive integer, got {threads!r}")
    slot = plan_slots(cpu_slots=1, total_threads=int(threads) if threads else None)[0]
    runtime.close_pool()
    runtime.open_pool(slots=[slot])
    return slot
