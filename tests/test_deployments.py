"""End to end on a real Prefect server: pools, workers, `prefect deploy --all`, deployment runs,
a failed index and `prefect flow-run retry` rerunning only that index.

The local mode runs on a server on SQLite; the work-pool mode (each index a flow run of
regmix-index/train-index, spread over two CPU workers standing for GPUs) on a server on
PostgreSQL (deployments/start_postgres.sh), or on SQLite when PostgreSQL cannot be set up,
which test_server_database_is_postgresql then reports as a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.local_stack import SCRIPTS, LocalStack, shared_stack

pytestmark = pytest.mark.slow

SWEEP = {"preset": "ci", "n_models": 3, "corpus": "mini-pile", "tokenizer": None, "corpus_tokens": 400_000,
         "steps": 8, "eval_limit": 2, "corpus_tasks": []}
FAILING = 2
# one database per test session: a fixed name let a second suite on the machine (CI next to a
# developer) drop the first one's live database with start_postgres.sh --fresh
PG_DATABASE = f"regmix_e2e_{os.getpid()}"
_postgres: dict = {}


def _base(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp()


def sqlite_stack(tmp_path_factory) -> LocalStack:
    base = _base(tmp_path_factory)
    return shared_stack("sqlite", lambda: LocalStack(home=base / "stack-sqlite", cache=base / "regmix-cache"))


def postgres_url() -> str | None:
    if "url" not in _postgres:
        done = subprocess.run([str(SCRIPTS / "start_postgres.sh"), PG_DATABASE, "--fresh"], capture_output=True,
                              text=True, timeout=900)
        _postgres["url"] = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else None
        _postgres["why"] = f"start_postgres.sh exited {done.returncode}: {done.stderr[-1500:]}"
    return _postgres["url"]


def workpool_stack(tmp_path_factory) -> LocalStack:
    url = postgres_url()
    if url is None:
        return sqlite_stack(tmp_path_factory)
    base = _base(tmp_path_factory)
    return shared_stack("postgres", lambda: LocalStack(home=base / "stack-pg", cache=base / "regmix-cache",
                                                       database_url=url))


def sweep_with_retry(stack: LocalStack, mode: str, output_root: Path) -> dict:
    """Index FAILING fails, the run ends Failed; the fault is removed and the run retried."""
    if mode in stack.runs:
        return stack.runs[mode]
    stack.faults.write_text(f"train:{FAILING}\n")
    parameters = {**SWEEP, "mode": mode, "output_root": str(output_root)}
    if mode == "local":
        parameters["cpu_slots"] = 2
    run_id = stack.run_deployment("regmix/full-sweep", **parameters)
    first = stack.wait(run_id)
    first_rows = stack.table_artifact(run_id, "regmix-results")
    (sweep_dir,) = output_root.iterdir()
    models = sweep_dir / "models"
    before = {i: (models / f"model-index-{i}" / "train_result.json").stat().st_mtime_ns
              for i in range(1, 4) if i != FAILING}
    stack.faults.write_text("")
    stack.retry(run_id)
    final = stack.wait(run_id)
    stack.runs[mode] = {
        "run_id": run_id, "first": first, "first_rows": first_rows, "final": final, "models": models,
        "final_rows": stack.table_artifact(run_id, "regmix-results"), "mtimes_before": before,
        "mtimes_after": {i: (models / f"model-index-{i}" / "train_result.json").stat().st_mtime_ns
                         for i in range(1, 4)},
    }
    return stack.runs[mode]


def local_sweep(tmp_path_factory) -> tuple[LocalStack, dict]:
    """The finished local-mode run (also what test_ui opens in a browser)."""
    stack = sqlite_stack(tmp_path_factory)
    return stack, sweep_with_retry(stack, "local", _base(tmp_path_factory) / "out-local")


def _check_failed_then_retried(outcome: dict) -> None:
    assert outcome["first"]["state_type"] == "FAILED", outcome["first"]["state"]
    assert [r["index"] for r in outcome["first_rows"]] == [1, 2, 3]
    assert {r["index"]: r["status"] for r in outcome["first_rows"]} == {1: "completed", 2: "failed", 3: "completed"}
    assert outcome["final"]["state_type"] == "COMPLETED", outcome["final"]["state"]
    rows = outcome["final_rows"]
    assert [r["index"] for r in rows] == [1, 2, 3]
    assert all(r["status"] == "completed" for r in rows), rows
    assert all(isinstance(r["metric/the_pile_pile_cc_val_loss"], float) for r in rows), rows
    # the retry trained only the failed index: the others' results were not rewritten
    for i, mtime in outcome["mtimes_before"].items():
        assert outcome["mtimes_after"][i] == mtime, f"model-index-{i} was retrained"


def _names_and_states(runs: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for run in sorted(runs, key=lambda r: r["created"]):
        out.setdefault(run["name"], []).append(run["state_name"])
    return out


def test_local_mode_sweep_fails_one_index_and_retry_reruns_only_it(tmp_path_factory):
    stack, outcome = local_sweep(tmp_path_factory)
    _check_failed_then_retried(outcome)
    tasks = _names_and_states(stack.task_runs(outcome["run_id"]))
    # first attempt: 1 and 3 completed, 2 failed; the retry takes 1 and 3 from the cache
    assert tasks["model-index-001"] == ["Completed", "Cached"], tasks
    assert tasks["model-index-003"] == ["Completed", "Cached"], tasks
    assert tasks["model-index-002"][0] == "Failed" and tasks["model-index-002"][-1] == "Completed", tasks
    assert {"train-001", "evaluate-001", "publish-001", "train-002"} <= set(tasks)
    assert any(name.startswith("results-table") for name in tasks), tasks


def test_work_pool_mode_spreads_indices_over_workers_and_retry_reruns_only_the_failed_one(tmp_path_factory):
    stack = workpool_stack(tmp_path_factory)
    outcome = sweep_with_retry(stack, "work-pool", _base(tmp_path_factory) / "out-workpool")
    _check_failed_then_retried(outcome)
    children = _names_and_states(stack.child_flow_runs(outcome["run_id"]))
    assert children == {"model-index-001": ["Completed"], "model-index-002": ["Failed", "Completed"],
                        "model-index-003": ["Completed"]}, children
    ran_on = {i: json.loads((outcome["models"] / f"model-index-{i}" / "worker.json").read_text())["worker"]
              for i in range(1, 4)}  # the worker of each index's last flow run
    gpu_workers = {name for name in stack.worker_names() if not name.startswith("sweep-")}
    assert len(gpu_workers) == 2
    assert set(ran_on.values()) <= gpu_workers, ran_on
    # each worker ran its share of the children (worker.json keeps only the last run of an index,
    # so the retried one may have moved): its log names the flow runs it submitted
    child_ids = {run["id"] for run in stack.child_flow_runs(outcome["run_id"])}
    submitted = {name: {i for i in child_ids if i in (stack.state_dir / f"worker-{name}.log").read_text()}
                 for name in gpu_workers}
    assert all(submitted.values()), submitted


def test_server_database_is_postgresql(tmp_path_factory):
    if postgres_url() is None:
        pytest.skip(f"PostgreSQL could not be installed or started: {_postgres['why']}")
    stack = workpool_stack(tmp_path_factory)
    assert stack.database_url.startswith("postgresql+asyncpg://")
    sweep_with_retry(stack, "work-pool", _base(tmp_path_factory) / "out-workpool")
    count = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-d", PG_DATABASE, "-tAc",
                            "SELECT count(*) FROM flow_run WHERE name LIKE 'model-index-%'"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert int(count) == 4  # the three indices and the retried one, stored in PostgreSQL


def test_kubernetes_job_template_asks_each_pod_for_one_gpu():
    from prefect.utilities.templating import apply_values

    template = json.loads((SCRIPTS / "k8s-gpu-job-template.json").read_text())
    defaults = {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}
    manifest = apply_values(template["job_configuration"]["job_manifest"], defaults)
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1


def test_zombie_automation_refuses_a_silence_live_runs_would_not_survive(tmp_path):
    """Under two heartbeats of silence, live runs would be crashed: refused before the server is asked."""
    env = {**os.environ, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", "PREFECT_BIN": str(Path(sys.executable).parent / "prefect"),
           "PREFECT_API_URL": "http://127.0.0.1:9/api",  # nothing listens there: must not be reached
           "REGMIX_STATE": str(tmp_path / "state"), "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results")}
    done = subprocess.run([str(SCRIPTS / "create_automations.sh"), "--silence", "45"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--silence: 45 s is under two heartbeats of 30 s" in done.stderr
