"""The study flow end to end on a tiny configuration (real sweeps, real trainings), then rerun."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from model.study import rank_among, summarise_study

STUDY_ARGS = dict(proxy_preset="ci", n_proxies=8, proxy_steps=8, target_preset="ci", n_targets=4, target_steps=30,
                  regressor="linear", candidates=10_000, top_k=10, corpus_tokens=400_000, eval_limit=4,
                  corpus_tasks=["pile_cc"], cpu_slots=2)


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def study_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REGMIX_CACHE", str(root / "cache"))
        yield root


def _train_mtimes(*folders) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for folder in folders for p in folder.rglob("train_result.json")}


def test_study_flow_reports_and_a_rerun_trains_nothing(prefect_server, study_env):
    from prefect.artifacts import Artifact

    from flows.study import regmix_study

    report = regmix_study(**STUDY_ARGS, output_root=str(study_env / "runs"))
    files = {key: Path(path) for key, path in report["files"].items()}
    assert set(files) == {"table", "scatter", "bars", "report"} and all(p.is_file() for p in files.values())
    assert report["targets"] == 4 and math.isfinite(report["spearman"]) and -1 <= report["spearman"] <= 1
    for name in ("optimal", "prior"):
        ranks = report["ranks"][name]
        assert 1 <= ranks["loss_rank"] <= 5 and math.isfinite(ranks["loss"])
        assert 1 <= ranks["downstream_rank"] <= 5  # corpus task pile_cc gives a downstream average
    table = pd.read_csv(files["table"])
    assert sorted(table["kind"]) == ["optimal", "prior", "target", "target", "target", "target"]
    assert table.loc[table["kind"] == "prior", "actual_loss"].iloc[0] == report["ranks"]["prior"]["loss"]
    assert f"Spearman **{report['spearman']:.4f}**" in files["report"].read_text()
    assert "Spearman" in Artifact.get("regmix-study").data

    runs = study_env / "runs"
    trained = _train_mtimes(runs)
    assert len(trained) == 8 + 4 + 2  # proxies, targets, optimal and prior
    again = regmix_study(**STUDY_ARGS, output_root=str(runs))
    assert _train_mtimes(runs) == trained  # nothing trained again
    assert again["spearman"] == report["spearman"] and again["ranks"] == report["ranks"]


@pytest.mark.parametrize("overrides, message", [
    ({"regressor": "forest"}, "regressor: unknown kind 'forest'"),
    ({"top_k": 20_000}, "top_k: 20000 exceeds candidates 10000"),
    ({"n_targets": 0}, "n_models: must be a positive integer, got 0"),
    ({"proxy_preset": "huge"}, "preset: unknown preset 'huge'"),
    ({"cpu_slots": 0}, "cpu_slots: must be a positive integer, got 0"),
])
def test_bad_parameters_fail_before_any_work(prefect_server, tmp_path, monkeypatch, overrides, message):
    from flows.study import regmix_study

    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))
    state = regmix_study(**{**STUDY_ARGS, "output_root": str(tmp_path / "runs"), **overrides}, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=message):
        state.result()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_ranks_count_the_targets_that_beat_a_run():
    assert rank_among(2.0, [1.0, 3.0, 2.0, 1.5]) == 3  # 1.0 and 1.5 are lower
    assert rank_among(0.5, [0.1, 0.9, 0.7], lower_is_better=False) == 3
    assert rank_among(float("nan"), [1.0]) is None and rank_among(1.0, [None, float("nan")]) is None


def test_summary_scores_targets_only_and_ranks_the_extra_runs():
    table = pd.DataFrame({
        "kind": ["target"] * 4 + ["optimal", "prior"],
        "predicted_loss": [1.0, 2.0, 3.0, 4.0, 0.5, 2.5],
        "actual_loss": [1.1, 2.2, 3.1, 3.9, 1.0, 4.0],
        "downstream_average": [0.4, 0.3, 0.2, 0.1, 0.5, float("nan")],
    })
    summary = summarise_study(table)
    assert summary["targets"] == 4 and summary["spearman"] == pytest.approx(1.0)
    assert summary["ranks"]["optimal"] == {"loss": 1.0, "loss_rank": 1, "downstream_average": 0.5,
                                           "downstream_rank": 1}
    assert summary["ranks"]["prior"]["loss_rank"] == 5 and summary["ranks"]["prior"]["downstream_rank"] is None


def test_search_shortlist_finds_exactly_the_full_prediction_optimum():
    # The study's search skips candidates that provably cannot make the top k; it must change nothing.
    import numpy as np

    from model.domains import DOMAINS, TOKEN_PRIOR
    from model.regression import fit_regressor, search_optimal_mixture

    rng = np.random.default_rng(3)
    X = rng.dirichlet([TOKEN_PRIOR[d] * 5 for d in DOMAINS], size=300)
    y = 3.0 - 1.5 * np.sqrt(X[:, 0]) + 0.8 * X[:, 3] + 0.05 * rng.standard_normal(300)
    model = fit_regressor("lightgbm", X, y)
    assert model.shortlist is not None
    rows, predicted = model.shortlist(X, 10, float("inf"))
    assert len(rows) < len(X) and np.array_equal(predicted, model.predict(X[rows]))
    assert set(np.argsort(model.predict(X), kind="stable")[:10]) <= set(rows)
    fast = search_optimal_mixture(model, candidates=60_000, top_k=20, chunk_size=20_000)
    full = search_optimal_mixture(model, candidates=60_000, top_k=20, chunk_size=20_000, use_shortlist=False)
    assert fast == full
