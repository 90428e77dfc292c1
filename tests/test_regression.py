import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.domains import DOMAINS, REGMIX_ORDER, loss_column, train_key
from model.mixture import read_train_config
from model.regression import (
    WEIGHT_COLUMNS,
    Regressor,
    cross_validate,
    fit_command,
    fit_regressor,
    load_pair,
    plot_mixture_vs_prior,
    plot_predicted_vs_actual,
    project_to_bounds,
    score,
    search_optimal_mixture,
    select_by_cross_validation,
    weight_bounds,
    write_optimal_config,
)

RELEASE_DIR = Path(os.environ.get("REGMIX_RELEASE_DIR",
                                  Path(__file__).resolve().parents[2] / "shared" / "regmix-release"))
TARGET = loss_column("pile_cc")


def release_files(*names: str) -> list[str]:
    paths = [RELEASE_DIR / "data" / name for name in names]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"RegMix release data not found at {RELEASE_DIR} (set REGMIX_RELEASE_DIR)")
    return [str(p) for p in paths]


def synthetic_loss(weights: np.ndarray) -> np.ndarray:
    """A known mixture -> loss law: pile_cc helps with diminishing returns, github hurts."""
    pile_cc, github = weights[:, DOMAINS.index("pile_cc")], weights[:, DOMAINS.index("github")]
    return 3.0 + np.exp(0.4 - 2.5 * pile_cc) + 0.8 * github


def synthetic_results(path: Path, rows: int = 120, failed: int = 6, seed: int = 0) -> Path:
    """A results table as our sweep writes it: one file, status column, weights, losses, more."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(len(DOMAINS), 0.3), size=rows)
    loss = synthetic_loss(weights) + rng.normal(0, 0.005, rows)
    table = pd.DataFrame(weights, columns=list(WEIGHT_COLUMNS))
    table.insert(0, "index", np.arange(1, rows + 1))
    table.insert(1, "status", "completed")
    table[TARGET] = loss
    table[loss_column("github")] = loss + 0.1
    table["eval/hellaswag"] = 0.3
    table.loc[: failed - 1, "status"] = "failed"
    table.loc[: failed - 1, TARGET] = np.nan
    if path.suffix == ".parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, index=False)
    return path


def run_json(argv, capsys) -> dict:
    code = fit_command([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"stdout must hold one JSON object, got: {out!r}"
    return json.loads(lines[0])


def run_error(argv, capsys) -> tuple[int, str]:
    code = fit_command(argv)
    out, err = capsys.readouterr()
    assert out == ""
    return code, err


# --- the paper, on the release data -----------------------------------------------------------


def test_reproduces_regmix_1m_to_1b_ranking():
    train = release_files("train_mixture_1m.csv", "train_pile_loss_1m.csv")
    test_1m = release_files("test_mixture_1m.csv", "test_pile_loss_1m.csv")
    test_1b = release_files("test_mixture_1B.csv", "test_pile_loss_1B.csv")
    X, y = load_pair(*train)
    X1m, y1m = load_pair(*test_1m)
    X1b, y1b = load_pair(*test_1b)
    assert (len(y), len(y1m), len(y1b)) == (512, 256, 64)
    assert list(X.columns) == list(WEIGHT_COLUMNS)

    lightgbm = fit_regressor("lightgbm", X, y, X1m, y1m)  # early-stopped on the 1M test set, as RegMix
    assert score(lightgbm.predict(X1m), y1m)["spearman"] >= 0.985
    assert score(lightgbm.predict(X1b), y1b)["spearman"] >= 0.955
    linear = fit_regressor("linear", X, y)
    assert 0.86 <= score(linear.predict(X1b), y1b)["spearman"] <= 0.90

    optimum = search_optimal_mixture(lightgbm, candidates=20_000, top_k=100).mixture
    assert max(optimum, key=optimum.get) == "pile_cc"
    assert optimum["pile_cc"] > 0.6
    assert abs(sum(optimum.values()) - 1) < 1e-9


def test_fit_command_on_release_pairs(capsys, tmp_path):
    train = release_files("train_mixture_1m.csv", "train_pile_loss_1m.csv")
    test_1b = release_files("test_mixture_1B.csv", "test_pile_loss_1B.csv")
    report = run_json(["--train", *train, "--test", *test_1b, "--regressor", "linear",
                       "--candidates", "5000", "--top-k", "50", "--output-config", str(tmp_path / "opt.yaml")],
                      capsys)
    [test] = report["tests"]
    assert test["name"] == "test_mixture_1B" and test["regressor"] == "linear"
    assert 0.86 <= test["spearman"] <= 0.90
    config = read_train_config(tmp_path / "opt.yaml")
    assert config.mixture.as_dict() == pytest.approx(report["optimal_mixture"])


# --- our single-file results table --------------------------------------------------------------


def test_results_table_alone_recovers_the_ranking(tmp_path, capsys):
    results = synthetic_results(tmp_path / "results.csv")
    report = run_json(["--train", str(results), "--candidates", "20000", "--top-k", "50",
                       "--target", "pile_cc"], capsys)
    assert report["target"] == TARGET
    assert report["train_rows"] == 114  # the 6 failed rows are left out
    assert {t["regressor"] for t in report["tests"]} == {"lightgbm", "linear"}
    assert set(report["tests"][0]) == {"name", "regressor", "spearman", "pearson", "mse"}
    assert all(t["name"] == "results (5-fold CV)" for t in report["tests"])
    by_kind = {t["regressor"]: t for t in report["tests"]}
    assert by_kind["lightgbm"]["spearman"] > 0.85
    mixture = report["optimal_mixture"]
    assert list(mixture) == list(DOMAINS)
    assert max(mixture, key=mixture.get) == "pile_cc"
    assert mixture["github"] < 0.02


def test_results_parquet_and_human_summary(tmp_path, capsys):
    results = synthetic_results(tmp_path / "results.parquet")
    test = synthetic_results(tmp_path / "later.csv", rows=40, failed=0, seed=1)
    assert fit_command(["--train", str(results), "--test", str(test), "--regressor", "log_linear,linear",
                        "--candidates", "2000", "--top-k", "10", "--plot-dir", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "log_linear on later: Spearman" in out and "optimal mixture (log_linear" in out
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["optimal_mixture.png", "predicted_vs_actual.linear.later.png",
                    "predicted_vs_actual.log_linear.later.png"]


def test_every_regressor_ranks_synthetic_law(tmp_path):
    X, y = load_pair(synthetic_results(tmp_path / "results.csv"))
    X_new, y_new = load_pair(synthetic_results(tmp_path / "new.csv", rows=60, failed=0, seed=3))
    for kind in ("lightgbm", "lightgbm_ensemble", "log_linear", "log_linear_sqrt", "log_linear_boosted"):
        figure = score(fit_regressor(kind, X, y).predict(X_new), y_new)["spearman"]
        assert figure > 0.8, (kind, figure)
    # The law is exactly log-linear in the weights plus a small linear term: that form wins.
    assert score(fit_regressor("log_linear", X, y).predict(X_new), y_new)["spearman"] > 0.97


def test_cross_validation_selects_the_form_of_the_law(tmp_path):
    X, y = load_pair(synthetic_results(tmp_path / "results.csv"))
    chosen, figures = select_by_cross_validation(X, y, kinds=("linear", "log_linear"))
    assert chosen == "log_linear" and figures["log_linear"] > figures["linear"]
    figures, predicted = cross_validate("linear", X, y, folds=4)
    assert predicted.shape == (len(y),) and figures == score(predicted, y)


def test_nan_rows_are_dropped_with_a_warning(tmp_path):
    path = synthetic_results(tmp_path / "results.csv", failed=0)
    table = pd.read_csv(path)
    table.loc[[3, 7], TARGET] = np.nan
    table.to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"dropping 2 rows .*index \[4, 8\]"):
        X, y = load_pair(path)
    assert len(y) == 118 and 4 not in y.index


# --- bad inputs ------------------------------------------------------------------------------------


def test_missing_file(tmp_path, capsys):
    code, err = run_error(["--train", str(tmp_path / "nope.csv"), "--json"], capsys)
    assert code == 1 and "no file at" in err and "nope.csv" in err


def test_missing_weight_columns_are_named(tmp_path, capsys):
    path = synthetic_results(tmp_path / "results.csv")
    pd.read_csv(path).drop(columns=[train_key("arxiv"), train_key("europarl")]).to_csv(path, index=False)
    code, err = run_error(["--train", str(path), "--json"], capsys)
    assert code == 1 and "train_the_pile_arxiv" in err and "train_the_pile_europarl" in err


def test_too_few_rows(tmp_path, capsys):
    path = synthetic_results(tmp_path / "results.csv", rows=11, failed=6)
    code, err = run_error(["--train", str(path)], capsys)
    assert code == 1 and "5 usable rows" in err and "at least 8" in err


def test_constant_target(tmp_path, capsys):
    path = synthetic_results(tmp_path / "results.csv")
    code, err = run_error(["--train", str(path), "--target", "eval/hellaswag"], capsys)
    assert code == 1 and "constant" in err and "eval/hellaswag" in err


def test_unknown_target_names_the_flag(tmp_path, capsys):
    path = synthetic_results(tmp_path / "results.csv")
    code, err = run_error(["--train", str(path), "--target", "metric/the_pile_nowhere_val_loss"], capsys)
    assert code == 2 and "--target" in err and "the_pile_nowhere" in err
    assert loss_column("github") in err  # the columns that do exist are listed


@pytest.mark.parametrize("argv, words", [
    (["--candidates", "0"], ["--candidates", "'0'"]),
    (["--top-k", "many"], ["--top-k", "'many'"]),
    (["--candidates", "10", "--top-k", "20"], ["--top-k", "20", "10"]),
    (["--regressor", "xgboost"], ["--regressor", "xgboost"]),
    (["--upper", "atlantis=0.5"], ["--upper", "atlantis"]),
])
def test_argument_errors_name_flag_and_value(tmp_path, capsys, argv, words):
    path = synthetic_results(tmp_path / "results.csv")
    code, err = run_error(["--train", str(path), *argv], capsys)
    assert code == 2
    for word in words:
        assert word in err


def test_train_with_three_files(tmp_path, capsys):
    path = str(synthetic_results(tmp_path / "results.csv"))
    code, err = run_error(["--train", path, path, path], capsys)
    assert code == 2 and "--train" in err and "3 files" in err


# --- constraints on the optimum -------------------------------------------------------------------


def likes(domain: str) -> Regressor:
    """A model whose loss falls as `domain`'s weight rises: the unconstrained optimum is all-in."""
    column = DOMAINS.index(domain)
    return Regressor("likes-" + domain, lambda Z: 3.0 - np.asarray(Z)[:, column])


@pytest.mark.parametrize("mode", ["project", "reject"])
def test_optimum_respects_bounds(mode):
    free = search_optimal_mixture(likes("arxiv"), candidates=20_000, top_k=20)
    assert free.mixture["arxiv"] > 0.95
    bounded = search_optimal_mixture(likes("arxiv"), candidates=20_000, top_k=20, constraint_mode=mode,
                                     upper={"arxiv": 0.4}, lower={"pile_cc": 0.1})
    assert bounded.mixture["arxiv"] <= 0.4 + 1e-9
    assert bounded.mixture["pile_cc"] >= 0.1 - 1e-9
    assert bounded.mixture["arxiv"] > 0.3  # still pushed towards the bound
    assert abs(sum(bounded.mixture.values()) - 1) < 1e-9


def test_optimum_respects_token_caps():
    # 2B arxiv tokens, 10B planned, at most 1.5 epochs: arxiv <= 0.3.
    result = search_optimal_mixture(likes("arxiv"), candidates=20_000, top_k=20,
                                    available_tokens={"arxiv": 2_000_000_000}, planned_tokens=10_000_000_000,
                                    max_epochs=1.5)
    assert 0.25 < result.mixture["arxiv"] <= 0.3 + 1e-9
    low, high = weight_bounds(available_tokens={"arxiv": 0}, planned_tokens=10, max_epochs=1.0)
    assert high[DOMAINS.index("arxiv")] == 0 and high[DOMAINS.index("pile_cc")] == 1


def test_token_caps_from_the_command_line(tmp_path, capsys):
    path = synthetic_results(tmp_path / "results.csv")
    report = run_json(["--train", str(path), "--regressor", "log_linear", "--candidates", "5000",
                       "--top-k", "20", "--available-tokens", "pile_cc=1000", "--planned-tokens", "10000",
                       "--max-epochs", "2", "--lower", "wikipedia_en=0.05"], capsys)
    assert report["optimal_mixture"]["pile_cc"] <= 0.2 + 1e-9
    assert report["optimal_mixture"]["wikipedia_en"] >= 0.05 - 1e-9


def test_infeasible_bounds_are_refused():
    with pytest.raises(ValueError, match="upper bounds .* sum to"):
        weight_bounds(upper={d: 0.01 for d in DOMAINS})
    with pytest.raises(ValueError, match="lower bounds sum to"):
        weight_bounds(lower={"arxiv": 0.7, "github": 0.7})
    with pytest.raises(ValueError, match=r"bounds\['arxiv'\]: lower 0.5 exceeds upper 0.2"):
        weight_bounds(lower={"arxiv": 0.5}, upper={"arxiv": 0.2})
    with pytest.raises(ValueError, match="planned_tokens"):
        weight_bounds(available_tokens={"arxiv": 10})
    with pytest.raises(ValueError, match="only 0 of 1000 candidates"):
        search_optimal_mixture(likes("arxiv"), candidates=1000, top_k=10, constraint_mode="reject",
                               lower={d: 1 / 17 - 1e-4 for d in DOMAINS})


def test_projection_lands_inside_and_keeps_feasible_rows():
    rng = np.random.default_rng(5)
    rows = rng.dirichlet(np.full(len(DOMAINS), 0.2), size=500)
    low = np.full(len(DOMAINS), 0.01)
    high = np.full(len(DOMAINS), 0.2)
    projected = project_to_bounds(rows, low, high)
    assert np.allclose(projected.sum(axis=1), 1)
    assert (projected >= low - 1e-9).all() and (projected <= high + 1e-9).all()
    inside = np.full((1, len(DOMAINS)), 1 / len(DOMAINS))
    assert np.allclose(project_to_bounds(inside, low, high), inside)


# --- outputs ---------------------------------------------------------------------------------------


def test_train_config_in_published_format(tmp_path):
    mixture = dict.fromkeys(DOMAINS, 0.0) | {"pile_cc": 0.9, "ubuntu_irc": 0.1}
    path = write_optimal_config(tmp_path / "train_config.yaml", mixture)
    lines = path.read_text().splitlines()
    assert lines[0] == "train:"
    assert [line.split(":")[0].strip() for line in lines[1:18]] == [train_key(d) for d in REGMIX_ORDER]
    assert lines[18:] == ["valid:", "  valid_the_pile_pile_cc: 1.0", "model_name: tinyllama_1_1b"]
    assert read_train_config(path).mixture.as_dict() == mixture


def test_plots_are_png(tmp_path):
    rng = np.random.default_rng(0)
    actual = rng.normal(3, 0.1, 30)
    scatter = plot_predicted_vs_actual(tmp_path / "scatter.png", actual + rng.normal(0, 0.01, 30), actual, "t")
    bars = plot_mixture_vs_prior(tmp_path / "bars.png", {"pile_cc": 1.0})
    for path in (scatter, bars):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_auto_regressor_is_chosen_by_cross_validation(tmp_path, capsys):
    path = synthetic_results(tmp_path / "results.csv")
    report = run_json(["--train", str(path), "--regressor", "auto", "--folds", "3",
                       "--candidates", "2000", "--top-k", "10"], capsys)
    chosen = report["optimum_regressor"]
    assert chosen.startswith("log_linear")  # the synthetic law is log-linear; trees trail on 114 rows
    assert [t["regressor"] for t in report["tests"]] == [chosen]
