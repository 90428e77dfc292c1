"""RegMix regression: fit mixture -> loss on proxy runs, score the fit, search the optimal mixture.

Data come as a pair of tables joined on `index` (RegMix's release: mixtures CSV + losses CSV) or
as one results table holding both (our sweep's results.csv / results.parquet). Rows whose
`status` is not "completed" are left out; completed rows with a missing weight or target are
dropped with a warning (a failed evaluation must not sink the whole fit).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .domains import DOMAINS, TARGET_DOMAIN, TOKEN_PRIOR, check_domain, loss_column, train_key
from .io import atomic_write_bytes
from .mixture import Mixture, write_train_config

MIN_ROWS = 8
SEED = 42
WEIGHT_COLUMNS: tuple[str, ...] = tuple(train_key(d) for d in DOMAINS)

# RegMix's LightGBM settings (regression.ipynb); early stopping after 3 rounds without progress.
# One thread: on a few hundred rows threads only add overhead, and they thrash on a busy machine.
LGBM_PARAMS = dict(objective="regression", n_estimators=1000, learning_rate=0.01, verbose=-1, n_jobs=1)
EARLY_STOPPING_ROUNDS = 3
HOLDOUT_FRACTION = 0.2
ENSEMBLE_SEEDS = 5


# --- reading ------------------------------------------------------------------------------


class TargetNotFoundError(ValueError):
    pass


def _read_table(path: str | Path, field_name: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{field_name}: no file at {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".tsv", ".txt"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    raise ValueError(f"{field_name}: {path} is neither .csv nor .parquet")


def resolve_target(target: str) -> str:
    """Accept a full column name or a bare domain name ('pile_cc' -> its loss column)."""
    return loss_column(target) if target in TOKEN_PRIOR else target


def load_pair(
    mixtures_path: str | Path,
    losses_path: str | Path | None = None,
    target: str = loss_column(TARGET_DOMAIN),
) -> tuple[pd.DataFrame, pd.Series]:
    """Weights (17 columns, DOMAINS order) and the target, one row per completed run.

    With `losses_path` None, `mixtures_path` is a results table holding both.
    """
    target = resolve_target(target)
    mixtures = _read_table(mixtures_path, "mixtures")
    source = str(mixtures_path)
    if losses_path is not None:
        losses = _read_table(losses_path, "losses")
        source = f"{mixtures_path} + {losses_path}"
        for name, table in (("mixtures", mixtures), ("losses", losses)):
            if "index" not in table.columns:
                raise ValueError(f"{name} table {source}: no 'index' column to join on")
        losses = losses.drop(columns=[c for c in losses.columns if c in mixtures.columns and c != "index"])
        table = mixtures.merge(losses, on="index", how="inner", validate="one_to_one")
    else:
        table = mixtures

    missing = [c for c in WEIGHT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing weight columns {missing}")
    if target not in table.columns:
        known = [c for c in table.columns if c.startswith("metric/")]
        raise TargetNotFoundError(f"target {target!r} not found in {source}; loss columns there: {known}")

    if "status" in table.columns:
        table = table[table["status"].astype(str) == "completed"]
    weights = table[list(WEIGHT_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    values = pd.to_numeric(table[target], errors="coerce")
    bad = weights.isna().any(axis=1) | values.isna()
    if bad.any():
        labels = table["index"][bad].tolist() if "index" in table.columns else list(table.index[bad])
        warnings.warn(f"{source}: dropping {int(bad.sum())} rows with a missing weight or target "
                      f"(index {labels[:10]}{' ...' if len(labels) > 10 else ''})", stacklevel=2)
        weights, values = weights[~bad], values[~bad]
    if len(values) < MIN_ROWS:
        raise ValueError(f"{source}: {len(values)} usable rows; the regression needs at least {MIN_ROWS}")
    if (weights.to_numpy() < 0).any():
        raise ValueError(f"{source}: negative mixture weights")
    if values.nunique() < 2:
        raise ValueError(f"{source}: target {target!r} is constant ({values.iloc[0]!r}) over "
                         f"{len(values)} rows; nothing to regress")
    index = table["index"][~bad] if "index" in table.columns else weights.index
    weights.index = values.index = pd.Index(index.to_numpy(), name="index")
    return weights.astype(np.float64), values.astype(np.float64).rename(target)


# --- regressors ---------------------------------------------------------------------------


@dataclass
class Regressor:
    """A fitted model: `predict` maps an (n, 17) weight array to predicted targets."""

    kind: str
    predict: Callable[[np.ndarray], np.ndarray]
    details: dict = field(default_factory=dict)
    # shortlist(Z, k, ceiling) -> (rows, predictions): every row of Z left out is provably neither
    # among Z's k lowest nor <= ceiling; the search uses it to skip most of the prediction work.
    shortlist: Callable[[np.ndarray, int, float], tuple[np.ndarray, np.ndarray]] | None = None


def _holdout_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_hold = max(2, int(round(n * HOLDOUT_FRACTION)))
    return order[n_hold:], order[:n_hold]


def _fit_lgbm(X, y, eval_X, eval_y, seed: int, **extra):
    """Early-stop on the eval set; without one, find the round count on a holdout, then refit all."""
    import lightgbm as lgb

    def fit(fit_X, fit_y, stop_X, stop_y, n_estimators=LGBM_PARAMS["n_estimators"]):
        model = lgb.LGBMRegressor(**{**LGBM_PARAMS, "n_estimators": n_estimators}, seed=seed, **extra)
        if stop_X is None:
            return model.fit(fit_X, fit_y)
        return model.fit(fit_X, fit_y, eval_X=(stop_X,), eval_y=(stop_y,),
                         callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])

    if eval_X is not None:
        return fit(X, y, eval_X, eval_y)
    keep, hold = _holdout_split(len(y), seed)
    rounds = fit(X[keep], y[keep], X[hold], y[hold]).best_iteration_ or LGBM_PARAMS["n_estimators"]
    return fit(X, y, None, None, n_estimators=rounds)


def prediction_threads() -> int:
    """Cores this process may use: prediction over many candidates is worth every one of them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _booster_predict(model):
    """The sklearn wrapper's prediction (same trees, same numbers), on every core, without its checks."""
    booster, iterations = model.booster_, model.best_iteration_ or model.booster_.current_iteration()

    def predict(Z):
        return booster.predict(np.ascontiguousarray(Z, dtype=np.float64), num_iteration=iterations,
                               num_threads=prediction_threads())
    return predict


def _leaf_values(node: dict) -> list[float]:
    if "split_feature" not in node:
        return [node["leaf_value"]]
    return _leaf_values(node["left_child"]) + _leaf_values(node["right_child"])


def _tree_shortlist(model):
    """Exact top-k without predicting every candidate in full: after the first s trees, a row's final
    value lies within [partial + sum of later trees' lowest leaves, partial + sum of their highest];
    rows whose lowest possible value exceeds the k-th best highest possible one cannot make the top k.
    Stages fall where the later trees' total leaf range halves. Survivors get the full prediction."""
    booster = model.booster_
    iterations = model.best_iteration_ or booster.current_iteration()
    full = _booster_predict(model)
    plan: list = []  # (stages, low_tail, high_tail), built on first use: dumping the trees costs a fit's time

    def make_plan():
        ranges = np.array([(min(v), max(v)) for v in (_leaf_values(t["tree_structure"])
                                                      for t in booster.dump_model()["tree_info"][:iterations])])
        low_tail = np.r_[np.cumsum(ranges[::-1, 0])[::-1], 0.0]  # low_tail[s]: lowest sum of trees s..end
        high_tail = np.r_[np.cumsum(ranges[::-1, 1])[::-1], 0.0]
        width = high_tail - low_tail
        stages = sorted({int(np.argmax(width <= width[0] / 2 ** j)) for j in range(1, 7)} - {0, iterations})
        return stages, low_tail, high_tail

    def shortlist(Z, k, ceiling):
        if not plan:
            plan.append(make_plan())
        stages, low_tail, high_tail = plan[0]
        Z = np.ascontiguousarray(Z, dtype=np.float64)
        rows, partial, done = np.arange(len(Z)), np.zeros(len(Z)), 0
        for stage in stages:
            if not len(rows):
                return rows, np.empty(0)
            partial += booster.predict(Z[rows], start_iteration=done, num_iteration=stage - done,
                                       num_threads=prediction_threads())
            done = stage
            bound = ceiling
            if len(rows) > k:
                bound = min(bound, float(np.partition(partial + high_tail[stage], k - 1)[k - 1]))
            # The margin absorbs rounding: partial sums add the trees in another order than LightGBM.
            keep = partial + low_tail[stage] <= bound + 1e-9 * (1.0 + abs(bound))
            rows, partial = rows[keep], partial[keep]
        return rows, (full(Z[rows]) if len(rows) else np.empty(0))
    return shortlist


def _lightgbm(X, y, eval_X, eval_y, seed):
    model = _fit_lgbm(X, y, eval_X, eval_y, seed)
    return _booster_predict(model), {"trees": model.booster_.num_trees(), "shortlist": _tree_shortlist(model)}


def _lightgbm_ensemble(X, y, eval_X, eval_y, seed):
    # Row and column subsampling make the seeds differ; averaging smooths the step functions.
    members = [_booster_predict(_fit_lgbm(X, y, eval_X, eval_y, seed + i, subsample=0.8, subsample_freq=1,
                                          colsample_bytree=0.8)) for i in range(ENSEMBLE_SEEDS)]
    return (lambda Z: np.mean([predict(Z) for predict in members], axis=0)), {"members": len(members)}


def _linear(X, y, eval_X, eval_y, seed):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(X, y)
    return model.predict, {}


def _fit_log_linear(F, y):
    """olmix's form: target = c + exp(a + F @ t), least squares from a linear start on log(y - c)."""
    from scipy.optimize import least_squares

    spread = float(y.max() - y.min())
    c0 = float(y.min()) - 0.5 * spread
    start = np.linalg.lstsq(np.column_stack([np.ones(len(y)), F]), np.log(y - c0), rcond=None)[0]

    def residuals(p):
        return p[0] + np.exp(np.clip(p[1] + F @ p[2:], -50, 50)) - y

    solution = least_squares(residuals, np.r_[c0, start], method="trf", x_scale="jac")
    p = solution.x
    return (lambda G: p[0] + np.exp(np.clip(p[1] + G @ p[2:], -50, 50))), {"offset": float(p[0])}


def _log_linear(X, y, eval_X, eval_y, seed):
    return _fit_log_linear(X, y)


def _sqrt_features(X):
    return np.hstack([X, np.sqrt(X)])


def _log_linear_sqrt(X, y, eval_X, eval_y, seed):
    # sqrt(w) lets a domain's first few percent matter more than its last: diminishing returns.
    predict, details = _fit_log_linear(_sqrt_features(X), y)
    return (lambda Z: predict(_sqrt_features(Z))), details


def _log_linear_boosted(X, y, eval_X, eval_y, seed):
    # Trees on what the smooth model leaves unexplained.
    base, details = _fit_log_linear(_sqrt_features(X), y)
    def residual(Z): return base(_sqrt_features(Z))
    eval_resid = None if eval_X is None else eval_y - residual(eval_X)
    trees = _booster_predict(_fit_lgbm(X, y - residual(X), eval_X, eval_resid, seed))
    return (lambda Z: residual(Z) + trees(Z)), details


REGRESSORS: dict[str, Callable] = {
    "lightgbm": _lightgbm,
    "linear": _linear,
    "lightgbm_ensemble": _lightgbm_ensemble,
    "log_linear": _log_linear,
    "log_linear_sqrt": _log_linear_sqrt,
    "log_linear_boosted": _log_linear_boosted,
}
# RegMix's pair stays the default. On the release data, 5-fold CV over the 768 proxy runs ranks
# log_linear_boosted first (0.993; 1M->1B Spearman 0.971 vs lightgbm's 0.962): see
# benchmarks/bench_regression.py. `auto` repeats that choice on whatever training rows are given.
DEFAULT_REGRESSORS = ("lightgbm", "linear")


def _as_array(X) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        missing = [c for c in WEIGHT_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"weights: missing columns {missing}")
        X = X[list(WEIGHT_COLUMNS)]
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(DOMAINS):
        raise ValueError(f"weights: expected shape (n, {len(DOMAINS)}), got {array.shape}")
    return array


def fit_regressor(kind: str, X, y, eval_X=None, eval_y=None, seed: int = SEED) -> Regressor:
    """Fit one regressor. Tree models early-stop on (eval_X, eval_y), else on a holdout of X."""
    if kind not in REGRESSORS:
        raise ValueError(f"regressor: unknown kind {kind!r}; choose from {', '.join(REGRESSORS)}")
    X, y = _as_array(X), np.asarray(y, dtype=np.float64)
    if eval_X is not None:
        eval_X, eval_y = _as_array(eval_X), np.asarray(eval_y, dtype=np.float64)
    predict, details = REGRESSORS[kind](X, y, eval_X, eval_y, seed)
    shortlist = details.pop("shortlist", None)
    return Regressor(kind, lambda Z: np.asarray(predict(_as_array(Z)), dtype=np.float64), details, shortlist)


def score(predicted, actual) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    predicted, actual = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    return {
        "spearman": float(spearmanr(predicted, actual)[0]),
        "pearson": float(pearsonr(predicted, actual)[0]),
        "mse": float(np.mean((predicted - actual) ** 2)),
    }


def cross_validate(kind: str, X, y, folds: int = 5, seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """Scores of out-of-fold predictions pooled over k folds; each fold early-stops on its own holdout."""
    X, y = _as_array(X), np.asarray(y, dtype=np.float64)
    folds = min(folds, len(y))
    order = np.random.default_rng(seed).permutation(len(y))
    predicted = np.empty(len(y))
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        predicted[part] = fit_regressor(kind, X[rest], y[rest], seed=SEED).predict(X[part])
    return score(predicted, y), predicted


def select_by_cross_validation(X, y, kinds: Sequence[str] = tuple(REGRESSORS), folds: int = 5
                               ) -> tuple[str, dict[str, float]]:
    """The kind with the best k-fold Spearman on these (proxy) rows, and every kind's figure."""
    figures = {kind: cross_validate(kind, X, y, folds)[0]["spearman"] for kind in kinds}
    return max(figures, key=figures.get), figures


# --- optimal mixture ------------------------------------------------------------------------


def _domain_vector(values: Mapping[str, float] | None, default: float, field_name: str) -> np.ndarray:
    vector = np.full(len(DOMAINS), default, dtype=np.float64)
    for domain, value in (values or {}).items():
        check_domain(domain, field_name)
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"{field_name}[{domain!r}]: {value!r} must be a finite number >= 0")
        vector[DOMAINS.index(domain)] = number
    return vector


def weight_bounds(
    lower: Mapping[str, float] | None = None,
    upper: Mapping[str, float] | None = None,
    available_tokens: Mapping[str, int] | None = None,
    planned_tokens: int | None = None,
    max_epochs: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-domain [low, high] in DOMAINS order. A token cap keeps a domain's share below
    max_epochs * available / planned, so no domain repeats more often than allowed."""
    low = _domain_vector(lower, 0.0, "lower")
    high = np.minimum(_domain_vector(upper, 1.0, "upper"), 1.0)
    if available_tokens:
        if not planned_tokens or planned_tokens <= 0:
            raise ValueError(f"planned_tokens: {planned_tokens!r}; a positive count is needed with available_tokens")
        if max_epochs is None or not max_epochs > 0:
            raise ValueError(f"max_epochs: {max_epochs!r}; a positive number is needed with available_tokens")
        available = _domain_vector(available_tokens, math.inf, "available_tokens")
        high = np.minimum(high, max_epochs * available / planned_tokens)
    for domain, lo, hi in zip(DOMAINS, low, high):
        if lo > hi:
            raise ValueError(f"bounds[{domain!r}]: lower {lo:g} exceeds upper {hi:g}")
    if low.sum() > 1 + 1e-9:
        raise ValueError(f"lower bounds sum to {low.sum():g} > 1; no mixture satisfies them")
    if high.sum() < 1 - 1e-9:
        raise ValueError(f"upper bounds (with token caps) sum to {high.sum():g} < 1; no mixture satisfies them")
    return low, high


def project_to_bounds(candidates: np.ndarray, low: np.ndarray, high: np.ndarray, iterations: int = 60
                      ) -> np.ndarray:
    """Euclidean projection of each row onto {low <= w <= high, sum w = 1}: w = clip(v - tau)
    with tau found by bisection (the sum is monotone in tau)."""
    tau_low = (candidates - high).min(axis=1) - 1.0
    tau_high = (candidates - low).max(axis=1) + 1.0
    for _ in range(iterations):
        tau = 0.5 * (tau_low + tau_high)
        too_big = np.clip(candidates - tau[:, None], low, high).sum(axis=1) > 1.0
        tau_low = np.where(too_big, tau, tau_low)
        tau_high = np.where(too_big, tau_high, tau)
    projected = np.clip(candidates - (0.5 * (tau_low + tau_high))[:, None], low, high)
    return projected / projected.sum(axis=1, keepdims=True)


@dataclass
class SearchResult:
    mixture: dict[str, float]  # DOMAINS order
    predicted: float  # the model's prediction for the averaged mixture
    top_k_predicted: float  # mean prediction over the top-k candidates
    candidates: int
    rejected: int


def search_optimal_mixture(
    regressor: Regressor,
    candidates: int = 1_000_000,
    top_k: int = 100,
    prior: Mapping[str, float] | None = None,
    concentration: float = 1.0,
    lower: Mapping[str, float] | None = None,
    upper: Mapping[str, float] | None = None,
    available_tokens: Mapping[str, int] | None = None,
    planned_tokens: int | None = None,
    max_epochs: float | None = None,
    constraint_mode: str = "project",
    seed: int = SEED,
    chunk_size: int = 100_000,
    use_shortlist: bool = True,
) -> SearchResult:
    """RegMix's search: draw Dirichlet(concentration * prior) candidates, average the top_k lowest
    predictions. Out-of-bounds candidates are projected onto the bounds, or dropped with
    constraint_mode="reject". The average of feasible mixtures is feasible (the set is convex).
    With the regressor's shortlist (use_shortlist), only candidates that can still make the top k
    are predicted in full; the result is the same, candidate for candidate."""
    if candidates < 1:
        raise ValueError(f"candidates: {candidates!r} must be >= 1")
    if not 1 <= top_k <= candidates:
        raise ValueError(f"top_k: {top_k!r} must be between 1 and candidates ({candidates})")
    if constraint_mode not in ("project", "reject"):
        raise ValueError(f"constraint_mode: {constraint_mode!r}; choose 'project' or 'reject'")
    if not concentration > 0:
        raise ValueError(f"concentration: {concentration!r} must be > 0")
    alpha = _domain_vector(prior if prior is not None else TOKEN_PRIOR, 0.0, "prior")
    alpha = np.maximum(alpha / alpha.sum() * concentration, 1e-6)  # Dirichlet needs every alpha > 0
    low, high = weight_bounds(lower, upper, available_tokens, planned_tokens, max_epochs)
    constrained = bool((low > 0).any() or (high < 1).any())

    rng = np.random.default_rng(seed)
    best_w = np.empty((0, len(DOMAINS)))
    best_p = np.empty(0)
    rejected = 0
    for start in range(0, candidates, chunk_size):
        chunk = rng.dirichlet(alpha, size=min(chunk_size, candidates - start))
        if constrained:
            outside = ((chunk < low - 1e-12) | (chunk > high + 1e-12)).any(axis=1)
            if constraint_mode == "reject":
                rejected += int(outside.sum())
                chunk = chunk[~outside]
            elif outside.any():
                chunk[outside] = project_to_bounds(chunk[outside], low, high)
        if not len(chunk):
            continue
        # Keep only a running top-k so memory stays at one chunk whatever the candidate count.
        if use_shortlist and regressor.shortlist is not None:
            ceiling = float(best_p[-1]) if len(best_p) == top_k else math.inf
            rows, predicted = regressor.shortlist(chunk, top_k, ceiling)
            chunk = chunk[rows]
        else:
            predicted = regressor.predict(chunk)
        pool_w = np.vstack([best_w, chunk])
        pool_p = np.concatenate([best_p, predicted])
        keep = np.argsort(pool_p, kind="stable")[:top_k]
        best_w, best_p = pool_w[keep], pool_p[keep]
    if len(best_p) < top_k:
        raise ValueError(f"constraints: only {len(best_p)} of {candidates} candidates satisfy the bounds, "
                         f"fewer than top_k={top_k}; use constraint_mode='project' or more candidates")
    average = best_w.mean(axis=0)
    average /= average.sum()
    return SearchResult(
        mixture=dict(zip(DOMAINS, (float(w) for w in average))),
        predicted=float(regressor.predict(average[None, :])[0]),
        top_k_predicted=float(best_p.mean()),
        candidates=candidates,
        rejected=rejected,
    )


def write_optimal_config(path: str | Path, mixture: Mapping[str, float], model_name: str = "tinyllama_1_1b",
                         valid_domain: str = TARGET_DOMAIN) -> Path:
    """train_config.yaml in the format of RegMix's Hub branches (train keys in REGMIX_ORDER)."""
    return write_train_config(path, Mixture.from_dict(mixture, field="optimal mixture"), model_name,
                              valid={check_domain(valid_domain, "valid_domain"): 1.0})


# --- plots ----------------------------------------------------------------------------------


def _save_figure(figure, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_predicted_vs_actual(path: str | Path, predicted, actual, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted, actual = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    figures = score(predicted, actual)
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.scatter(actual, predicted, s=12, alpha=0.7)
    lo, hi = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
    axis.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--")
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    axis.set_title(f"{title}\nSpearman {figures['spearman']:.3f}, Pearson {figures['pearson']:.3f}".strip())
    return _save_figure(figure, path)


def plot_mixture_vs_prior(path: str | Path, mixture: Mapping[str, float],
                          prior: Mapping[str, float] = TOKEN_PRIOR, title: str = "Optimal mixture") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = np.arange(len(DOMAINS))
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.bar(positions - 0.2, [prior.get(d, 0.0) for d in DOMAINS], width=0.4, label="prior")
    axis.bar(positions + 0.2, [mixture.get(d, 0.0) for d in DOMAINS], width=0.4, label="optimum")
    axis.set_xticks(positions, DOMAINS, rotation=60, ha="right")
    axis.set_ylabel("weight")
    axis.set_title(title)
    axis.legend()
    return _save_figure(figure, path)


# --- regmix fit -------------------------------------------------------------------------------


class _UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of exiting, so fit_command returns a code
        raise _UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def _domain_value(text: str) -> tuple[str, float]:
    domain, sep, value = text.partition("=")
    if not sep or domain not in TOKEN_PRIOR:
        raise argparse.ArgumentTypeError(f"{text!r} is not DOMAIN=VALUE with a known domain")
    try:
        return domain, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None


def _regressor_list(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in REGRESSORS and k != "auto"]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown regressor(s) {unknown}; "
                                         f"choose from {', '.join(REGRESSORS)}, auto")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="regmix fit", description="Fit mixture -> loss and search the optimal mixture.")
    parser.add_argument("--train", nargs="+", required=True, metavar="FILE",
                        help="MIXTURES.csv LOSSES.csv, or one results table holding both")
    parser.add_argument("--test", nargs="+", action="append", default=[], metavar="FILE",
                        help="a test set, same forms as --train; repeatable. The first one early-stops "
                             "the trees, as in RegMix (its figures are then optimistic)")
    parser.add_argument("--target", default=loss_column(TARGET_DOMAIN),
                        help="target column, or a domain name for its loss (default: pile_cc loss)")
    parser.add_argument("--regressor", type=_regressor_list, default=list(DEFAULT_REGRESSORS),
                        help=f"comma list of {', '.join(REGRESSORS)}, or auto (best k-fold Spearman on "
                             "the training rows); the first one drives the optimum. Default: lightgbm,linear")
    parser.add_argument("--early-stopping", choices=("first-test", "holdout"), default="first-test",
                        help="early-stop on the first --test set (RegMix) or a holdout of the training rows")
    parser.add_argument("--folds", type=_positive_int, default=5, help="k for k-fold scores when no --test")
    parser.add_argument("--candidates", type=_positive_int, default=1_000_000)
    parser.add_argument("--top-k", type=_positive_int, default=100)
    parser.add_argument("--concentration", type=_positive_float, default=1.0,
                        help="Dirichlet concentration: candidates ~ Dirichlet(concentration * prior)")
    parser.add_argument("--lower", type=_domain_value, action="append", default=[], metavar="DOMAIN=W")
    parser.add_argument("--upper", type=_domain_value, action="append", default=[], metavar="DOMAIN=W")
    parser.add_argument("--available-tokens", type=_domain_value, action="append", default=[],
                        metavar="DOMAIN=N")
    parser.add_argument("--planned-tokens", type=_positive_int)
    parser.add_argument("--max-epochs", type=_positive_float)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--output-config", metavar="PATH", help="write the optimum as train_config.yaml")
    parser.add_argument("--model-name", default="tinyllama_1_1b", help="model_name in --output-config")
    parser.add_argument("--plot-dir", metavar="DIR", help="write predicted-vs-actual and mixture PNGs here")
    parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    return parser


def _load_files(files: list[str], flag: str, target: str):
    if len(files) > 2:
        raise _UsageError(f"{flag}: expected MIXTURES LOSSES or one results table, got {len(files)} files: {files}")
    try:
        return load_pair(files[0], files[1] if len(files) == 2 else None, target)
    except TargetNotFoundError as exc:
        raise _UsageError(f"--target: {exc}") from None


def _run_fit(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    target = resolve_target(args.target)
    X, y = _load_files(args.train, "--train", target)
    tests = [(Path(files[0]).stem, *_load_files(files, "--test", target)) for files in args.test]
    if args.top_k > args.candidates:
        raise _UsageError(f"--top-k: {args.top_k} exceeds --candidates {args.candidates}")
    log(f"target {target}: {len(y)} training rows from {' + '.join(args.train)}")

    kinds = list(dict.fromkeys(args.regressor))
    if "auto" in kinds:
        chosen, figures = select_by_cross_validation(X, y, folds=args.folds)
        log("k-fold Spearman on training rows: " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items())
            + f" -> auto = {chosen}")
        kinds = list(dict.fromkeys(chosen if k == "auto" else k for k in kinds))

    stop_X = stop_y = None
    if tests and args.early_stopping == "first-test":
        stop_X, stop_y = tests[0][1], tests[0][2]
    plot_dir = Path(args.plot_dir) if args.plot_dir else None
    results, fitted = [], {}
    for kind in kinds:
        fitted[kind] = fit_regressor(kind, X, y, stop_X, stop_y, seed=args.seed)
        if tests:
            scored = [(name, score(fitted[kind].predict(tX), ty), fitted[kind].predict(tX), ty)
                      for name, tX, ty in tests]
        else:
            figures, predicted = cross_validate(kind, X, y, folds=args.folds, seed=args.seed)
            scored = [(f"{Path(args.train[0]).stem} ({min(args.folds, len(y))}-fold CV)", figures, predicted, y)]
        for name, figures, predicted, actual in scored:
            results.append({"name": name, "regressor": kind, **figures})
            log(f"{kind:>18} on {name}: Spearman {figures['spearman']:.4f}  "
                f"Pearson {figures['pearson']:.4f}  MSE {figures['mse']:.3g}")
            if plot_dir:
                plot_predicted_vs_actual(plot_dir / f"predicted_vs_actual.{kind}.{Path(name).stem}.png",
                                         predicted, actual, f"{kind} on {name}")

    search = search_optimal_mixture(
        fitted[kinds[0]], candidates=args.candidates, top_k=args.top_k, concentration=args.concentration,
        lower=dict(args.lower), upper=dict(args.upper), available_tokens=dict(args.available_tokens),
        planned_tokens=args.planned_tokens, max_epochs=args.max_epochs, seed=args.seed)
    ranked = sorted(search.mixture.items(), key=lambda item: -item[1])
    log(f"optimal mixture ({kinds[0]}, top {args.top_k} of {args.candidates} candidates, "
        f"predicted {search.predicted:.4f}): " + ", ".join(f"{d} {w:.4f}" for d, w in ranked if w >= 0.001))
    if args.output_config:
        write_optimal_config(args.output_config, search.mixture, args.model_name)
        log(f"wrote {args.output_config}")
    if plot_dir:
        plot_mixture_vs_prior(plot_dir / "optimal_mixture.png", search.mixture)
    return {
        "target": target,
        "train_rows": int(len(y)),
        "tests": results,
        "optimum_regressor": kinds[0],
        "optimum_predicted": search.predicted,
        "optimal_mixture": search.mixture,
    }


def fit_command(argv: list[str]) -> int:
    """`regmix fit ...`: 0 on success, 2 on bad arguments, 1 on bad data."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"regmix fit: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    log = (lambda _message: None) if args.json else print
    try:
        report = _run_fit(args, log)
    except _UsageError as exc:
        print(f"regmix fit: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"regmix fit: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["fit"]:
        print("usage: python -m model.regression fit --train ... (see --help)", file=sys.stderr)
        sys.exit(2)
    sys.exit(fit_command(sys.argv[2:]))
