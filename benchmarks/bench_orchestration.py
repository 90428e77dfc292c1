"""Orchestration overhead and makespan: the `regmix` flow over N indices vs the same trainings called directly.

    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180 python benchmarks/bench_orchestration.py

Workload per index (fixed): preset `ci` trained for its full 40 steps (8 x 64 tokens a step,
validation and a checkpoint every 20 steps, final save), no downstream evaluation (eval_tasks
none, corpus_tasks []), on `--slots` CPU slots: about 1.3-1.5 s per training call on 2 cores
(`--steps 200`: ~7 s). The flow does everything a sweep
does (train -> validation-loss record -> publish to the local mirror -> results table, model
card); the direct run calls `model.pipeline.train_index` for every index on a SlotPool of the
same slots, one call per slot at a time. Corpus, tokenizer and token files are prepared once
before timing (both would reuse them).

Overhead = flow wall - direct wall, as % of the flow's wall and per index. Parallel efficiency =
(sum of the direct calls' own times / slots) / wall time. CPU seconds are also reported per
process (this orchestrating process, the ephemeral API server, the slot processes): on a 2-core
machine the orchestrator's and server's CPU is taken from the slots.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import BENCH_CACHE, alternate, machine_line, median, spread

CORPUS_TOKENS = 400_000


def sweep_kwargs(args, output_root: Path) -> dict:
    return dict(n_models=args.models, preset="ci", steps=args.steps, corpus_tokens=CORPUS_TOKENS,
                eval_tasks=[], corpus_tasks=[], output_root=str(output_root), cpu_slots=args.slots)


def prepare(args, workdir: Path) -> dict:
    from flows.regmix import build_config
    from tasks.prepare import prepare_corpus, prepare_tokens

    sweep = build_config(**sweep_kwargs(args, workdir / "prepare"))
    corpus_root = prepare_corpus.fn(sweep.to_dict())
    return prepare_tokens.fn(corpus_root, sweep.resolved_tokenizer())


def run_direct(args, tokens: dict, output_root: Path, task_seconds: list[float], cpu: dict[str, list[float]]) -> float:
    from flows.regmix import build_config
    from model import pipeline
    from model.slots import SlotPool, plan_slots
    from model.sweep import SweepPaths, prepare_mixtures
    from model.train import TrainSpec

    meter = CpuMeter()
    before = meter.read()
    start = time.perf_counter()
    sweep = build_config(**sweep_kwargs(args, output_root))
    paths = SweepPaths.of(sweep)
    mixtures = prepare_mixtures(paths, sweep)
    preset = sweep.resolved_preset()
    pool = SlotPool(plan_slots(cpu_slots=args.slots))

    def one(index: int) -> None:
        began = time.perf_counter()
        spec = TrainSpec(mixtures[index], preset, sweep.train_seed, tokens["tokens_key"])
        pool.run(pipeline.train_index, index, str(paths.model_dir(index)), spec, tokens["tokens_dir"],
                 tokens["tokenizer_dir"], None)
        task_seconds.append(time.perf_counter() - began)

    try:
        with ThreadPoolExecutor(max_workers=args.slots) as threads:
            list(threads.map(one, range(1, args.models + 1)))
    finally:
        pool.shutdown()
    seconds = time.perf_counter() - start
    for name, spent in meter.spent(before).items():
        cpu.setdefault(name, []).append(spent)
    return seconds


class CpuMeter:
    """CPU seconds (user + system) of this process, the API server and reaped children (the slots)."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()

    def _server(self):
        return [c for c in self.me.children(recursive=True) if "uvicorn" in " ".join(c.cmdline())]

    def read(self) -> dict[str, float]:
        def cpu(times) -> float:
            return times.user + times.system

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"orchestrator": cpu(self.me.cpu_times()),
                "API server": sum(cpu(p.cpu_times()) for p in self._server()),
                "slots": children.ru_utime + children.ru_stime}

    def spent(self, before: dict[str, float]) -> dict[str, float]:
        now = self.read()
        return {k: now[k] - before[k] for k in now}


def run_flow(args, output_root: Path, breakdown: dict[str, float], cpu: dict[str, list[float]]) -> float:
    from flows.regmix import regmix

    meter = CpuMeter()
    before = meter.read()
    start = time.perf_counter()
    state = regmix(**sweep_kwargs(args, output_root), return_state=True)
    seconds = time.perf_counter() - start
    for name, spent in meter.spent(before).items():
        cpu.setdefault(name, []).append(spent)
    if not state.is_completed():
        raise RuntimeError(f"the benchmark sweep failed: {state.message}")
    for name, run_time in task_run_times(state.state_details.flow_run_id).items():
        breakdown[name] = breakdown.get(name, 0.0) + run_time
    return seconds


def task_run_times(flow_run_id) -> dict[str, float]:
    """Seconds spent in each kind of task of one flow run (nested task runs included), from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    totals: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                         limit=200, offset=offset)
            for run in page:
                kind = re.sub(r"-(\d+|[0-9a-f]{3})$", "", run.name)  # train-007, sample-mixtures-74d
                totals[kind] = totals.get(kind, 0.0) + run.total_run_time.total_seconds()
            if len(page) < 200:
                return totals
            offset += 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="training steps per index (preset ci; 40 = its full run)")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("REGMIX_CACHE", str(BENCH_CACHE / "regmix-cache"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    from prefect import flow

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-orchestration-") as tmp:
        tmp = Path(tmp)
        tokens = prepare(args, tmp)
        start = time.perf_counter()
        flow(name="bench-warm-up")(lambda: None)()  # the ephemeral API server starts once per process
        print(f"Prefect ephemeral server start-up (not counted below): {time.perf_counter() - start:.1f} s")

        rounds = iter(range(10**6))
        task_seconds: list[list[float]] = []
        breakdown: dict[str, float] = {}
        cpu: dict[str, dict[str, list[float]]] = {"direct": {}, "flow": {}}

        def direct() -> float:
            task_seconds.append([])
            return run_direct(args, tokens, tmp / f"direct-{next(rounds)}", task_seconds[-1], cpu["direct"])

        def flow_run() -> float:
            return run_flow(args, tmp / f"flow-{next(rounds)}", breakdown, cpu["flow"])

        figures = alternate({"direct": direct, "flow": flow_run}, args.repeats)

    flow_s, direct_s = median(figures["flow"]), median(figures["direct"])
    ideal = median([sum(t) / args.slots for t in task_seconds])
    overhead = flow_s - direct_s
    print(f"workload: {args.models} indices x preset ci, {args.steps} steps, eval off, {args.slots} CPU slots, "
          f"{args.repeats} alternating repeats")
    print(f"direct (SlotPool + train_index): {direct_s:7.2f} s  rounds {spread(figures['direct'])}")
    print(f"regmix flow                    : {flow_s:7.2f} s  rounds {spread(figures['flow'])}")
    print(f"overhead: {overhead:.2f} s = {100 * overhead / flow_s:.1f}% of the flow's wall time; "
          f"{1000 * overhead / args.models:.0f} ms of wall per index, "
          f"{1000 * overhead * args.slots / args.models:.0f} ms of slot time per index")
    for kind in ("direct", "flow"):
        spent = {name: median(values) for name, values in cpu[kind].items()}
        print(f"CPU seconds, {kind:6s}: " + ", ".join(f"{name} {value:.2f}" for name, value in spent.items())
              + f" (orchestrator {1000 * spent['orchestrator'] / args.models:.0f} ms + server "
              f"{1000 * spent['API server'] / args.models:.0f} ms per index)")
    print(f"per-index training call (direct): median {1000 * median([s for t in task_seconds for s in t]):.0f} ms")
    print(f"ideal makespan (sum of call times / slots): {ideal:.2f} s; parallel efficiency: "
          f"direct {100 * ideal / direct_s:.1f}%, flow {100 * ideal / flow_s:.1f}%")
    print("flow's task run times, summed over indices (per round; a task's time includes waiting for a free slot, and nested tasks count inside their parent too):")
    for name, seconds in sorted(breakdown.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {seconds / args.repeats:8.2f} s")
    print(machine_line())


if __name__ == "__main__":
    main()
