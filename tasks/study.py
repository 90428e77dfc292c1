"""The study's own steps: fit on the proxies, train the extra runs at the target scale, report."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from model import pipeline
from model.mixture import Mixture
from model.study import (SearchSettings, extra_run_dir, fit_proxies, png_data_uri, predict_targets, study_table,
                         summarise_study, write_report)
from model.sweep import SweepConfig, default_cache_root
from model.train import TrainSpec, read_result

from .runtime import pool


@task(name="fit-proxies", cache_policy=NO_CACHE,
      description="The regression on the proxy results table and its optimal mixture.")
def fit_proxy_regression(results_csv: str, search: dict, root: str) -> dict:
    return fit_proxies(results_csv, SearchSettings(**search), Path(root))


def _extra_name(parameters: dict) -> str:
    return f"train-{parameters['name']}"


@task(name="extra-run", task_run_name=_extra_name, retries=1, retry_delay_seconds=1, cache_policy=NO_CACHE,
      description="One explicit mixture trained and evaluated at the target scale, under the study folder.")
def train_extra_run(name: str, mixture: dict, config: dict, tokens: dict, corpus_root: str, root: str) -> dict:
    sweep = SweepConfig.from_dict(config)
    spec = TrainSpec(Mixture.from_dict(mixture, field=f"{name} mixture"), sweep.resolved_preset(),
                     sweep.train_seed, tokens["tokens_key"])
    run_dir = extra_run_dir(Path(root), name, spec.hash())
    # Finished with these evaluation settings: nothing to start, not even a slot process.
    settings_file, settings = run_dir / "eval_settings.json", asdict(sweep.eval)
    done = read_result(run_dir)
    evaluated = run_dir / "eval.json"
    if not (done and done.get("spec_hash") == spec.hash() and evaluated.is_file() and settings_file.is_file()
            and json.loads(settings_file.read_text()) == json.loads(json.dumps(settings))):
        pool().run(pipeline.train_index, 0, str(run_dir), spec, tokens["tokens_dir"], tokens["tokenizer_dir"],
                   str(run_dir / "progress.json"), priority=1)
        pool().run(pipeline.evaluate_index, 0, str(run_dir), sweep.eval, corpus_root, str(default_cache_root()),
                   priority=0)
        from model.io import atomic_write_json

        atomic_write_json(settings_file, settings)
    record = json.loads(evaluated.read_text())
    return {"name": name, "run_dir": str(run_dir), "mixture": spec.mixture.as_dict(),
            "val_loss": record["val_loss"], "scores": record.get("scores") or {}}


@task(name="study-report", cache_policy=NO_CACHE,
      description="Spearman of predicted vs actual target loss, the extra runs' ranks, plots and report.md.")
def write_study_report(root: str, proxy_csv: str, target_csv: str, search: dict, regression: dict,
                       extras: dict, proxies: dict, targets: dict) -> dict:
    settings = SearchSettings(**search)
    predicted = predict_targets(proxy_csv, settings, target_csv)
    table = study_table(target_csv, predicted, extras, regression)
    summary = summarise_study(table)
    proxy_config, target_config = SweepConfig.from_dict(proxies), SweepConfig.from_dict(targets)
    files = write_report(Path(root), table, summary, regression, proxy_config, target_config)
    markdown = files["report"].read_text()
    for key, caption in (("scatter", "predicted vs actual target pile_cc loss"), ("bars", "optimal vs prior")):
        if files[key].is_file():
            markdown += f"\n![{caption}]({png_data_uri(files[key])})\n"
    create_markdown_artifact(key="regmix-study", markdown=markdown, description=f"Generalization study {Path(root).name}")
    return {**summary, "files": {k: str(v) for k, v in files.items() if v.is_file()}}
