"""Work-pool mode under faults, on the real stack of tests/test_deployments.py: the Prefect server
restarted while a sweep runs, and a GPU worker killed (with the flow run and training it started)
while it trains an index.

Each index's train_result.json is watched from the start: its (inode, mtime) is recorded each time
it is seen, so an index trained twice to completion shows up as two different records.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from deployments.local_stack import SCRIPTS, LocalStack

pytestmark = pytest.mark.slow


def _deployment_tests():
    """tests/test_deployments.py as pytest collected it (module `test_deployments`), else imported.

    Not a second copy under `tests.test_deployments`: that copy would keep its own PostgreSQL memo
    and run start_postgres.sh --fresh again, dropping the database under the running server.
    """
    return sys.modules.get("test_deployments") or importlib.import_module("tests.test_deployments")


SWEEP = _deployment_tests().SWEEP

# ~200 steps of the ci model last several seconds per index on a CPU worker, with a checkpoint
# every 20 steps: long enough to stop the server or kill a worker while an index trains.
FAULT_SWEEP = {**SWEEP, "steps": 200, "mode": "work-pool"}
INDICES = (1, 2, 3)
GUARD_SECONDS = 900  # against a hang, not a speed check


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> LocalStack:
    stack = _deployment_tests().workpool_stack(tmp_path_factory)
    stack.faults.write_text("")
    yield stack
    # leave the shared stack whole for whoever uses it next: server up, every worker running
    for script in ("server.sh", "start_sweep_worker.sh", "start_gpu_workers.sh"):
        stack.sh(str(SCRIPTS / script), *(["start"] if script == "server.sh" else []))
    stack.wait_for_workers()


def workers_alive(stack: LocalStack) -> dict[str, bool]:
    alive = {}
    for pidfile in stack.state_dir.glob("worker-*.pid"):
        try:
            os.kill(int(pidfile.read_text()), 0)
            alive[pidfile.stem.removeprefix("worker-")] = True
        except ProcessLookupError:
            alive[pidfile.stem.removeprefix("worker-")] = False
    return alive


class ResultWatcher:
    """Records every distinct (inode, mtime) of each index's train_result.json, from the start."""

    def __init__(self, models: Path):
        self.models = models
        self.seen: dict[int, list[tuple[int, int]]] = {i: [] for i in INDICES}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def result(self, index: int) -> Path:
        return self.models / f"model-index-{index}" / "train_result.json"

    def progress_step(self, index: int) -> int | None:
        try:
            return json.loads((self.models / f"model-index-{index}" / "progress.json").read_text())["step"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def poll(self) -> None:
        for i in INDICES:
            try:
                st = self.result(i).stat()
            except FileNotFoundError:
                continue
            record = (st.st_ino, st.st_mtime_ns)
            if record not in self.seen[i]:
                self.seen[i].append(record)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.poll()

    def finished(self) -> set[int]:
        return {i for i in INDICES if self.seen[i]}

    def training(self, at_least_step: int = 1) -> set[int]:
        """Indices mid-training: progress reported, no result yet."""
        return {i for i in INDICES if not self.seen[i] and (self.progress_step(i) or 0) >= at_least_step}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()


def wait_until(condition, what: str, seconds: float = GUARD_SECONDS, every: float = 0.3):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"still waiting for {what} after {seconds}s")


def start_sweep(stack: LocalStack, output_root: Path) -> tuple[str, ResultWatcher]:
    run_id = stack.run_deployment("regmix/full-sweep", **FAULT_SWEEP, output_root=str(output_root))
    sweep_dir = wait_until(lambda: next(output_root.iterdir(), None) if output_root.is_dir() else None,
                           "the sweep folder")
    return run_id, ResultWatcher(sweep_dir / "models")


def children(stack: LocalStack, run_id: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in sorted(stack.child_flow_runs(run_id), key=lambda r: r["created"]):
        out.setdefault(run["name"], []).append(run)
    return out


def child_states(stack: LocalStack, run_id: str) -> dict[str, list[str]]:
    return {name: [r["state_name"] for r in runs] for name, runs in children(stack, run_id).items()}


def check_every_index_completed_once(stack: LocalStack, run_id: str, watcher: ResultWatcher) -> None:
    rows = stack.table_artifact(run_id, "regmix-results")
    assert [r["index"] for r in rows] == list(INDICES)
    assert all(r["status"] == "completed" for r in rows), rows
    assert all(isinstance(r["metric/the_pile_pile_cc_val_loss"], float) for r in rows), rows
    for i in INDICES:  # written exactly once: never trained twice to completion
        assert len(watcher.seen[i]) == 1, f"model-index-{i}: train_result.json written {len(watcher.seen[i])} times"


# --- the Prefect server restarted mid-sweep ------------------------------------------------------

def test_server_restart_mid_sweep_keeps_finished_indices_and_the_sweep_completes(stack, tmp_path_factory):
    output_root = tmp_path_factory.getbasetemp() / "out-server-restart"
    run_id, watcher = start_sweep(stack, output_root)
    try:
        wait_until(lambda: watcher.finished() and watcher.training(), "one index trained and another training")
        finished_before = {i: watcher.seen[i][0] for i in watcher.finished()}
        training_at_stop = watcher.training()

        stopped = time.monotonic()
        stack.sh(str(SCRIPTS / "server.sh"), "stop")
        stack.sh(str(SCRIPTS / "server.sh"), "start")  # same database
        outage = time.monotonic() - stopped

        first = stack.wait(run_id, GUARD_SECONDS)
        retried = first["state_type"] != "COMPLETED"
        if retried:  # the documented way back when the outage outlasted the clients' retries
            stack.retry(run_id)
        final = stack.wait(run_id, GUARD_SECONDS)
    finally:
        watcher.stop()

    assert training_at_stop and finished_before
    assert all(workers_alive(stack).values()), workers_alive(stack)  # the workers rode out the outage
    assert final["state_type"] == "COMPLETED", (first["state"], final["state"], child_states(stack, run_id))
    check_every_index_completed_once(stack, run_id, watcher)
    for i, record in finished_before.items():  # finished indices stayed finished, untouched
        assert watcher.seen[i] == [record]
    states = child_states(stack, run_id)
    assert sorted(states) == [f"model-index-{i:03d}" for i in INDICES], states
    assert all(runs[-1] == "Completed" for runs in states.values()), states
    print(f"server down {outage:.0f}s: sweep {'retried once' if retried else 'completed by itself'}; "
          f"finished before the stop {sorted(finished_before)}, training at the stop {sorted(training_at_stop)}; "
          f"children {states}")


# --- a GPU worker killed while it trains -----------------------------------------------------------

def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descendants(root: int) -> set[int]:
    parents = {int(p.name): _parent_pid(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _runs_flow_run(pid: int, flow_run_id: str) -> bool:
    try:
        return f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return False


def kill_worker_running(stack: LocalStack, flow_run_id: str) -> str:
    """SIGKILL the worker running a flow run, with everything it started (the flow run's own session,
    its training process), as when its machine dies. Returns the worker's name."""
    for pidfile in stack.state_dir.glob("worker-*.pid"):
        if pidfile.stem.startswith("worker-sweep-"):
            continue
        worker = int(pidfile.read_text())
        tree = _descendants(worker)
        if any(_runs_flow_run(pid, flow_run_id) for pid in tree):
            for pid in tree | {worker}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.killpg(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return pidfile.stem.removeprefix("worker-")
    raise LookupError(f"no worker of this stack runs flow run {flow_run_id}")


def _checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in (run_dir / "checkpoints").glob("step-*.pt")
                  if (m := re.fullmatch(r"step-(\d+)\.pt", p.name)))


def test_worker_killed_mid_training_fails_that_index_and_retry_resumes_it(stack, tmp_path_factory):
    output_root = tmp_path_factory.getbasetemp() / "out-worker-killed"
    run_id, watcher = start_sweep(stack, output_root)
    try:
        # an index past its first checkpoint (step 20), still training
        victim = min(wait_until(lambda: watcher.training(at_least_step=40), "an index past step 40"))
        name = f"model-index-{victim:03d}"
        (child,) = wait_until(lambda: [r for r in children(stack, run_id).get(name, [])
                                       if r["state_type"] == "RUNNING"], f"{name} running", every=1.0)
        killed = kill_worker_running(stack, child["id"])
        killed_at = time.monotonic()
        run_dir = watcher.models / f"model-index-{victim}"
        checkpoints_at_kill = _checkpoint_steps(run_dir)

        # the rest go on, on the other worker
        others = [i for i in INDICES if i != victim]
        wait_until(lambda: all(s[-1] == "Completed" for n, s in child_states(stack, run_id).items()
                               if n != name) and len(child_states(stack, run_id)) == len(INDICES),
                   "the other indices completed", every=2.0)
        # Nothing is left to report the dead worker's flow run: its heartbeats stop, and the zombie
        # automation (deployments/zombies.py, installed by create_automations.sh) marks it Crashed.
        assert not watcher.result(victim).exists()
        crashed = wait_until(lambda: (run := stack.get(f"/flow_runs/{child['id']}"))["state_type"] != "RUNNING"
                             and run, f"{name} marked dead", every=2.0)
        detected_after = time.monotonic() - killed_at
        first = stack.wait(run_id, GUARD_SECONDS)
        first_rows = stack.table_artifact(run_id, "regmix-results")
        others_before = {i: list(watcher.seen[i]) for i in others}
        stack.sh(str(SCRIPTS / "start_gpu_workers.sh"))  # the lost worker comes back
        stack.retry(run_id)
        final = stack.wait(run_id, GUARD_SECONDS)
    finally:
        watcher.stop()

    assert crashed["state_type"] == "CRASHED", crashed["state"]
    assert "no heartbeat" in crashed["state"]["message"], crashed["state"]
    assert first["state_type"] == "FAILED", first["state"]
    assert {r["index"]: r["status"] for r in first_rows} == {i: "failed" if i == victim else "completed"
                                                            for i in INDICES}
    assert final["state_type"] == "COMPLETED", final["state"]
    check_every_index_completed_once(stack, run_id, watcher)
    for i in others:  # the retry did not touch the finished indices
        assert watcher.seen[i] == others_before[i]
    states = child_states(stack, run_id)
    assert states == {f"model-index-{i:03d}": ["Crashed", "Completed"] if i == victim else ["Completed"]
                      for i in INDICES}, states
    # the retried training resumed from the newest checkpoint the killed one left, not from zero
    assert checkpoints_at_kill and checkpoints_at_kill[-1] >= 20, checkpoints_at_kill
    resumed = json.loads(watcher.result(victim).read_text())["resumed_from_step"]
    assert resumed == checkpoints_at_kill[-1], (resumed, checkpoints_at_kill)
    print(f"worker {killed} killed while model-index-{victim} trained (checkpoints {checkpoints_at_kill}); "
          f"marked Crashed by the zombie automation {detected_after:.0f}s later; "
          f"retry resumed from step {resumed}; children {states}")
