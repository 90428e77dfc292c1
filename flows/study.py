"""The `regmix-study` flow (deployment `validate-generalization`): does the ranking predicted from
small proxies hold at a larger scale?

proxy sweep (the `regmix` flow) -> regression fit + optimum -> target sweep (the `regmix` flow) ->
the optimal and the prior mixture trained at the target scale -> report. Both sweeps are the full-sweep
flow, so a second study run finds all their finished work; the extra runs are hash-addressed too.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger

from model.mixture import prior_mixture
from model.slots import plan_slots
from model.study import SearchSettings, study_root
from model.sweep import SweepPaths
from flows.regmix import build_config, regmix
from tasks.prepare import prepare_corpus, prepare_tokens
from tasks.runtime import close_pool, open_pool
from tasks.study import fit_proxy_regression, train_extra_run, write_study_report

PROXY_NAME, TARGET_NAME = "regmix-proxies", "regmix"


def _sweep_parameters(n_models, preset, steps, sampler_seed, name, shared: dict, eval_limit, eval_tasks,
                      corpus_tasks) -> dict:
    return dict(n_models=n_models, preset=preset, steps=steps, sampler_seed=sampler_seed, name=name,
                eval_limit=eval_limit, eval_tasks=eval_tasks, corpus_tasks=corpus_tasks, **shared)


@flow(name="regmix-study", log_prints=True, validate_parameters=True,
      description="Generalization study: proxy sweep -> regression -> target sweep + optimal/prior runs -> report.")
def regmix_study(
    proxy_preset: str = "ci",
    n_proxies: int = 128,
    proxy_steps: int | None = None,
    proxy_sampler_seed: int = 1,
    target_preset: str = "demo",
    n_targets: int = 64,
    target_steps: int | None = None,
    target_sampler_seed: int = 42,
    regressor: str = "lightgbm",
    candidates: int = 1_000_000,
    top_k: int = 100,
    search_seed: int = 42,
    corpus: str = "mini-pile",
    corpus_seed: int = 0,
    corpus_tokens: int | None = None,
    tokenizer: str | None = None,
    train_seed: int = 0,
    output_root: str = "runs",
    cpu_slots: int | None = None,
    eval_tasks: list[str] | None = None,
    eval_limit: int | None = 20,
    corpus_tasks: list[str] | None = None,
) -> dict:
    """Every parameter is checked before anything starts. Proxies are scored by validation loss only;
    targets and the extra runs also by the downstream tasks (corpus tasks by default)."""
    shared = dict(corpus=corpus, corpus_seed=corpus_seed, corpus_tokens=corpus_tokens, tokenizer=tokenizer,
                  train_seed=train_seed, output_root=output_root)
    proxy_parameters = _sweep_parameters(n_proxies, proxy_preset, proxy_steps, proxy_sampler_seed, PROXY_NAME,
                                         shared, eval_limit, None, [])
    target_parameters = _sweep_parameters(n_targets, target_preset, target_steps, target_sampler_seed, TARGET_NAME,
                                          shared, eval_limit, eval_tasks, corpus_tasks)
    proxies, targets = build_config(**proxy_parameters), build_config(**target_parameters)
    search = SearchSettings(regressor, candidates, top_k, search_seed).validate()
    plan_slots(cpu_slots=cpu_slots)  # validates cpu_slots
    root = study_root(proxies, targets, search, output_root)
    logger = get_run_logger()
    logger.info("Study folder %s", root)

    proxy_csv = _sweep(proxy_parameters, cpu_slots, "proxy", logger)
    regression = fit_proxy_regression(proxy_csv, asdict(search), str(root))
    target_csv = _sweep(target_parameters, cpu_slots, "target", logger)

    config = targets.to_dict()
    corpus_root = prepare_corpus(config)
    tokens = prepare_tokens(corpus_root, targets.resolved_tokenizer())
    open_pool(cpu_slots)
    try:
        mixtures = {"optimal": regression["optimal_mixture"], "prior": prior_mixture().as_dict()}
        futures = {name: train_extra_run.submit(name, mixture, config, tokens, corpus_root, str(root))
                   for name, mixture in mixtures.items()}
        extras = {name: future.result() for name, future in futures.items()}
    finally:
        close_pool()

    report = write_study_report(str(root), proxy_csv, target_csv, asdict(search), regression, extras,
                                proxies.to_dict(), targets.to_dict())
    print(f"study report: {report['files']['report']}")
    return {"study_root": str(root), "proxy_results": proxy_csv, "target_results": target_csv, **report}


def _sweep(parameters: dict, cpu_slots, role: str, logger) -> str:
    """Run (or find finished) one sweep; a sweep with some failed indices still yields its table."""
    state = regmix(**parameters, cpu_slots=cpu_slots, return_state=True)
    results_csv = SweepPaths.of(build_config(**parameters)).results_csv
    if not state.is_completed():
        if not results_csv.is_file():
            state.result()  # raises the sweep's own error
        logger.warning("%s sweep ended %s (%s); studying its completed runs", role, state.name, state.message)
    return str(results_csv)


# --- regmix study ------------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="regmix study", description="The small-to-large generalization study.")
    p.add_argument("--proxy-preset", default="ci")
    p.add_argument("--n-proxies", type=int, default=128)
    p.add_argument("--proxy-steps", type=int, default=None)
    p.add_argument("--proxy-sampler-seed", type=int, default=1)
    p.add_argument("--target-preset", default="demo")
    p.add_argument("--n-targets", type=int, default=64)
    p.add_argument("--target-steps", type=int, default=None)
    p.add_argument("--target-sampler-seed", type=int, default=42)
    p.add_argument("--regressor", default="lightgbm")
    p.add_argument("--candidates", type=int, default=1_000_000)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--search-seed", type=int, default=42)
    p.add_argument("--corpus", default="mini-pile")
    p.add_argument("--corpus-seed", type=int, default=0)
    p.add_argument("--corpus-tokens", type=int, default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--output-root", default="runs")
    p.add_argument("--cpu-slots", type=int, default=None)
    p.add_argument("--eval-tasks", type=_names, default=None, help="lm-eval tasks for targets (comma-separated)")
    p.add_argument("--eval-limit", type=int, default=20)
    p.add_argument("--corpus-tasks", type=_names, default=None,
                   help="domains whose corpus tasks score the targets (comma-separated; '' for none)")
    return p


def study_command(argv: list[str]) -> int:
    """`regmix study ...`: the key numbers, then the path of report.md as the last line."""
    parameters = vars(_parser().parse_args(argv))
    state = regmix_study(**parameters, return_state=True)
    if not state.is_completed():
        print(f"regmix study: ended {state.name}: {state.message}", file=sys.stderr)
        return 1
    report = state.result()
    print(f"targets: {report['targets']}; Spearman predicted vs actual pile_cc loss {report['spearman']:.4f} "
          f"(Pearson {report['pearson']:.4f})")
    for name, info in report["ranks"].items():
        downstream = "" if info["downstream_rank"] is None else f", rank {info['downstream_rank']} by downstream average"
        print(f"{name} mixture: pile_cc loss {info['loss']:.4f}, rank {info['loss_rank']} of "
              f"{report['targets'] + 1}{downstream}")
    logging.getLogger("prefect").setLevel(logging.WARNING)  # its exit notice would follow the path
    print(Path(report["files"]["report"]))
    return 0


if __name__ == "__main__":
    sys.exit(study_command(sys.argv[1:]))
