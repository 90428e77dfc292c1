"""A whole deployment on one machine, driven from Python: server, pools, workers, deployments.

It runs the very scripts of this folder (server.sh, create_pools.sh, create_automations.sh, the
worker scripts, then `prefect deploy --all`) with a private PREFECT_HOME, state folder and port,
and reads the server back through its REST API. The end-to-end tests use it; it is also a quick way to try the
deployments without touching one's own Prefect profile.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CHECKOUT = Path(__file__).resolve().parents[1]
SCRIPTS = CHECKOUT / "deployments"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalStack:
    home: Path  # private PREFECT_HOME, state, results and fault file live under it
    database_url: str | None = None  # None: SQLite
    cache: Path | None = None  # REGMIX_CACHE shared by every process
    cpu_workers: int = 2
    port: int = field(default_factory=free_port)
    started: bool = False
    runs: dict = field(default_factory=dict)  # callers' memo of scenarios run on this stack

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def faults(self) -> Path:
        return self.home / "faults.txt"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    def env(self) -> dict:
        env = dict(os.environ)
        env.pop("PREFECT_PROFILE", None)
        env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PREFECT_HOME": str(self.home / "prefect"),
            "PREFECT_API_URL": self.api,
            "PREFECT_LOCAL_STORAGE_PATH": str(self.home / "results"),
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "REGMIX_SERVER_PORT": str(self.port),
            "REGMIX_STATE": str(self.state_dir),
            "REGMIX_CHECKOUT": str(CHECKOUT),
            "REGMIX_CPU_WORKERS": str(self.cpu_workers),
            "REGMIX_POLL_SECONDS": "1",
            "REGMIX_INDEX_RETRY_DELAY": "2",
            "REGMIX_FAULTS": str(self.faults),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        })
        if self.cache:
            env["REGMIX_CACHE"] = str(self.cache)
        if self.database_url:
            env["REGMIX_DATABASE_URL"] = self.database_url
        return env

    def sh(self, *command: str, timeout: float = 600) -> str:
        done = subprocess.run(list(command), cwd=CHECKOUT, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def prefect(self, *args: str) -> str:
        return self.sh(str(Path(sys.executable).parent / "prefect"), *args)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "LocalStack":
        self.home.mkdir(parents=True, exist_ok=True)
        self.sh(str(SCRIPTS / "server.sh"), "start")
        self.started = True
        self.sh(str(SCRIPTS / "create_pools.sh"))
        self.sh(str(SCRIPTS / "create_automations.sh"))
        self.sh(str(SCRIPTS / "start_sweep_worker.sh"))
        self.sh(str(SCRIPTS / "start_gpu_workers.sh"))
        self.prefect("--no-prompt", "deploy", "--all")
        self.wait_for_workers()
        return self

    def wait_for_workers(self, limit_seconds: float = 300) -> None:
        """Until every worker started polls its pool: a sweep started earlier runs on fewer workers."""
        wanted = {"regmix-sweep": 1, "regmix-gpu": self.cpu_workers}
        deadline = time.monotonic() + limit_seconds
        while True:
            online = {pool: sum(w["status"] == "ONLINE" for w in self.post(f"/work_pools/{pool}/workers/filter", {}))
                      for pool in wanted}
            if all(online[pool] >= n for pool, n in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers online after {limit_seconds}s: {online}, expected {wanted}")
            time.sleep(1)

    def _process_groups(self) -> set[int]:
        return {int(p.read_text()) for p in self.state_dir.glob("*.pid") if p.read_text().strip().isdigit()}

    def stop(self) -> None:
        if self.started:
            groups = self._process_groups()
            try:
                subprocess.run([str(SCRIPTS / "down.sh")], cwd=CHECKOUT, env=self.env(), capture_output=True,
                               timeout=120)
            except subprocess.TimeoutExpired:
                pass
            for group in groups:  # whatever down.sh did not stop: only the groups this stack started
                try:
                    os.killpg(group, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.started = False

    def worker_names(self) -> list[str]:
        return sorted(p.stem.removeprefix("worker-") for p in self.state_dir.glob("worker-*.pid"))

    # --- runs ------------------------------------------------------------------------------
    def run_deployment(self, name: str, **parameters) -> str:
        args = []
        for key, value in parameters.items():
            args += ["-p", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
        out = self.prefect("deployment", "run", name, *args)
        match = re.search(r"UUID: ([0-9a-f-]{36})", out)
        if not match:
            raise RuntimeError(f"no flow run id in the output of prefect deployment run:\n{out}")
        return match.group(1)

    def retry(self, flow_run_id: str) -> None:
        self.prefect("flow-run", "retry", flow_run_id)

    def wait(self, flow_run_id: str, limit_seconds: float = 1200) -> dict:
        """The flow run once final (a guard against hanging forever, not a speed check)."""
        deadline = time.monotonic() + limit_seconds
        while True:
            run = self.get(f"/flow_runs/{flow_run_id}")
            if run["state_type"] in FINAL_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {flow_run_id} still {run['state_type']} after {limit_seconds}s")
            time.sleep(2)

    # --- the server's REST API -------------------------------------------------------------
    def get(self, path: str) -> dict:
        response = httpx.get(self.api + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> list | dict:
        response = httpx.post(self.api + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def task_runs(self, flow_run_id: str) -> list[dict]:
        return self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200})

    def child_flow_runs(self, flow_run_id: str) -> list[dict]:
        task_ids = [t["id"] for t in self.task_runs(flow_run_id)]
        return self.post("/flow_runs/filter", {"flow_runs": {"parent_task_run_id": {"any_": task_ids}}, "limit": 200})

    def table_artifact(self, flow_run_id: str, key: str) -> list[dict]:
        """The newest table artifact `key` of a flow run, as rows."""
        found = self.post("/artifacts/filter", {
            "artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [flow_run_id]}},
            "sort": "CREATED_DESC", "limit": 1})
        if not found:
            raise LookupError(f"flow run {flow_run_id}: no artifact {key!r}")
        data = found[0]["data"]
        return json.loads(data) if isinstance(data, str) else data


_shared: dict[str, LocalStack] = {}


def shared_stack(key: str, make) -> LocalStack:
    """One started stack per key and process (tests in several modules reuse it), stopped at exit."""
    if key not in _shared:
        stack = make()
        atexit.register(stack.stop)
        try:
            stack.start()
        except BaseException:
            stack.stop()
            raise
        _shared[key] = stack
    return _shared[key]
