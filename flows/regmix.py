"""The `regmix` flow (deployment `full-sweep`): sample N mixtures, train/evaluate/publish each, tabulate.

Wiring and parameter validation only; every step is a task in `tasks/`.
"""

from __future__ import annotations

import threading

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from model.slots import plan_slots
from model.sweep import EvalSettings, SweepConfig, SweepPaths
from tasks.index import noise_run, run_index
from tasks.workpool import run_index_on_pool
from tasks.prepare import prepare_benchmarks, prepare_corpus, prepare_tokens, sample_mixtures
from tasks.publish import check_target, publish_card
from tasks.results import collect_results
from tasks.runtime import close_pool, open_pool


class SweepFailed(RuntimeError):
    pass


def build_config(n_models=64, preset="demo", steps=None, corpus="mini-pile", corpus_seed=0, corpus_tokens=None,
                 tokenizer=None, sampler_seed=42, train_seed=0, name="regmix", output_root="runs", eval_tasks=None,
                 eval_shots=None, eval_limit=20, corpus_tasks=None, **_not_config) -> SweepConfig:
    """The validated sweep config from the flow's parameters (those that are not config are ignored)."""
    if eval_shots is not None and not isinstance(eval_shots, (list, tuple)):
        raise ValueError(f"eval_shots: must be a list of shot counts, got {eval_shots!r}")
    for field, value in (("eval_tasks", eval_tasks), ("corpus_tasks", corpus_tasks)):
        if value is not None and (isinstance(value, str) or not isinstance(value, (list, tuple))):
            raise ValueError(f"{field}: must be a list of names, got {value!r}")
    return SweepConfig(
        n_models=n_models, preset=preset, steps=steps, corpus=corpus, corpus_seed=corpus_seed,
        corpus_tokens=corpus_tokens, tokenizer=tokenizer, sampler_seed=sampler_seed, train_seed=train_seed,
        name=name, output_root=output_root,
        eval=EvalSettings(tasks=tuple(eval_tasks or ()), shots=tuple(eval_shots or (0,)), limit=eval_limit,
                          **({} if corpus_tasks is None else {"corpus_tasks": tuple(corpus_tasks)})),
    ).validate()


@flow(name="regmix", log_prints=True, validate_parameters=True,
      description="RegMix sweep: N random mixtures -> one model each (train, evaluate, publish) -> results table.")
def regmix(
    n_models: int = 64,
    indices: list[int] | None = None,
    preset: str = "demo",
    steps: int | None = None,
    corpus: str = "mini-pile",
    corpus_seed: int = 0,
    corpus_tokens: int | None = None,
    tokenizer: str | None = None,
    sampler_seed: int = 42,
    train_seed: int = 0,
    name: str = "regmix",
    output_root: str = "runs",
    eval_tasks: list[str] | None = None,
    eval_shots: list[int] | None = None,
    eval_limit: int | None = 20,
    corpus_tasks: list[str] | None = None,
    hub_repo: str | None = None,
    cpu_slots: int | None = None,
    gpus_per_model: int = 1,
    noise_seeds: int = 0,
    mode: str = "local",
    terminal_progress: bool = False,
) -> dict:
    """Parameters are checked before anything starts; a failed index never stops the others.

    mode "local": trainings run on this machine's device slots. mode "work-pool": each index runs
    as a flow run of the `regmix-index/train-index` deployment on the GPU work pool, so the sweep
    spreads over every machine that runs a worker.
    """
    if mode not in ("local", "work-pool"):
        raise ValueError(f"mode: must be 'local' or 'work-pool', got {mode!r}")
    sweep = build_config(n_models, preset, steps, corpus, corpus_seed, corpus_tokens, tokenizer, sampler_seed,
                         train_seed, name, output_root, eval_tasks, eval_shots, eval_limit, corpus_tasks)
    chosen = sweep.validate_indices(indices)
    slots = plan_slots(cpu_slots=cpu_slots, gpus_per_slot=gpus_per_model)  # validates both
    if not isinstance(noise_seeds, int) or isinstance(noise_seeds, bool) or noise_seeds < 0:
        raise ValueError(f"noise_seeds: must be a non-negative integer, got {noise_seeds!r}")
    check_target(hub_repo)
    logger = get_run_logger()
    paths = SweepPaths.of(sweep)
    logger.info("Sweep folder %s: %d of %d indices on %d slot(s)", paths.root, len(chosen), sweep.n_models, len(slots))

    config = sweep.to_dict()
    corpus_root = prepare_corpus(config)
    tokens = prepare_tokens(corpus_root, sweep.resolved_tokenizer())
    mixtures = sample_mixtures(config)
    prepare_benchmarks(list(sweep.eval.tasks))

    if mode == "local":
        open_pool(slots=slots)
    progress = _terminal_progress(paths, chosen, sweep) if terminal_progress else None
    try:
        # work-pool mode: every index waits on its own flow run, so all of them are submitted at once.
        threads = 2 * len(slots) if mode == "local" else len(chosen) + noise_seeds
        with ThreadPoolTaskRunner(max_workers=threads) as runner:
            index_task = run_index if mode == "local" else run_index_on_pool
            # Noise runs first: at the end they would leave slots idle beside the last trainings.
            noise = [runner.submit(noise_run, parameters={
                "seed_offset": k, "config": config, "mixture": mixtures[chosen[0]], "tokens": tokens})
                for k in range(1, noise_seeds + 1)]
            futures = {i: runner.submit(index_task, parameters={
                "index": i, "config": config, "mixture": mixtures[i], "tokens": tokens,
                "corpus_root": corpus_root, "hub_repo": hub_repo}) for i in chosen}
            wait(list(futures.values()) + noise)
    finally:
        if progress:
            progress.close()
        # Slot processes take seconds to exit: let them while the card and the table are written.
        closing = threading.Thread(target=close_pool, name="close-slot-pool")
        closing.start()

    statuses, failed = {}, []
    for i, future in futures.items():
        state = future.state
        statuses[i] = "completed" if state.is_completed() else "failed"
        if not state.is_completed():
            failed.append(i)
            logger.error("model-index-%d failed: %s", i, state.message)
    noise_losses = []
    if noise:
        first = futures[chosen[0]]
        if first.state.is_completed():
            noise_losses.append(first.result()["pile_cc_loss"])
        noise_losses += [f.result()["pile_cc_loss"] for f in noise if f.state.is_completed()]
    try:
        summary = collect_results(config, statuses, noise_losses or None)
        publish_card(config, hub_repo)  # after the table: a Hub outage must not hold the table back
    finally:
        closing.join()
    print(f"results table: {summary['results_csv']}")
    if failed:
        raise SweepFailed(f"model indices failed: {failed}; retry the flow run to rerun only those")
    return summary


def _terminal_progress(paths: SweepPaths, indices: list[int], sweep: SweepConfig):
    from tasks.runtime import TerminalProgress

    return TerminalProgress([paths.model_dir(i) / "progress.json" for i in indices],
                            sweep.resolved_preset().train.steps)
