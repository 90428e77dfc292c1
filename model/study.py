"""The small-to-large generalization study, without Prefect: does the ranking the regression predicts
from small proxies hold for larger models, and does its optimal mixture beat the prior there?

    <output_root>/study-<hash of both sweeps and the search settings>/
      regression.json      the proxy fit and its optimum (reused while the proxy table is unchanged)
      optimal.train_config.yaml
      extra/<name>-<train spec hash>/   the optimal and the prior mixture trained at the target scale
      study.csv            one row per target mixture plus the two extra runs
      predicted_vs_actual.png, optimal_vs_prior.png, report.md
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .domains import DOMAINS, TARGET_DOMAIN, TOKEN_PRIOR, loss_column, train_key
from .io import atomic_write_json, atomic_write_text, config_hash
from .regression import (REGRESSORS, SEED, fit_regressor, load_pair, plot_mixture_vs_prior, plot_predicted_vs_actual,
                         score, search_optimal_mixture, write_optimal_config)
from .sweep import SweepConfig

TARGET_LOSS = loss_column(TARGET_DOMAIN)
DOWNSTREAM = "eval/average"
EXTRA_RUNS = ("optimal", "prior")


@dataclass(frozen=True)
class SearchSettings:
    regressor: str = "lightgbm"
    candidates: int = 1_000_000
    top_k: int = 100
    seed: int = SEED

    def validate(self) -> "SearchSettings":
        if self.regressor not in REGRESSORS:
            raise ValueError(f"regressor: unknown kind {self.regressor!r}; choose from {', '.join(REGRESSORS)}")
        for name in ("candidates", "top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.top_k > self.candidates:
            raise ValueError(f"top_k: {self.top_k} exceeds candidates {self.candidates}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {self.seed!r}")
        return self


def study_root(proxies: SweepConfig, targets: SweepConfig, search: SearchSettings, output_root: str) -> Path:
    identity = {"proxies": proxies.hash(), "targets": targets.hash(), "search": asdict(search)}
    return Path(output_root).resolve() / f"study-{config_hash(identity)}"


def extra_run_dir(root: Path, name: str, spec_hash: str) -> Path:
    """Where an extra run lives: named by its train spec, so another mixture never reuses it."""
    return Path(root) / "extra" / f"{name}-{spec_hash}"


def fit_proxies(results_csv: str | Path, search: SearchSettings, root: Path) -> dict:
    """Fit the regression on the proxy table and search its optimum; reuse regression.json while the
    proxy rows and the settings are the same (the 1M-candidate search is the slow part)."""
    X, y = load_pair(results_csv, None, TARGET_LOSS)
    key = config_hash({"X": X.round(12).to_numpy().tolist(), "y": y.round(12).tolist(), "search": asdict(search)})
    record_path = Path(root) / "regression.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("key") == key:
            return record
    regressor = fit_regressor(search.regressor, X, y, seed=search.seed)
    found = search_optimal_mixture(regressor, candidates=search.candidates, top_k=search.top_k, seed=search.seed)
    record = {"key": key, "regressor": search.regressor, "proxy_rows": int(len(y)),
              "optimal_mixture": found.mixture, "optimum_predicted": found.predicted,
              "prior_predicted": float(regressor.predict(_weights([TOKEN_PRIOR]))[0])}
    write_optimal_config(Path(root) / "optimal.train_config.yaml", found.mixture)
    atomic_write_json(record_path, record)
    return record


def predict_targets(results_csv: str | Path, search: SearchSettings, target_csv: str | Path) -> pd.Series:
    """The proxy-fit regression's predictions for the target mixtures (index -> predicted loss)."""
    X, y = load_pair(results_csv, None, TARGET_LOSS)
    regressor = fit_regressor(search.regressor, X, y, seed=search.seed)
    targets = pd.read_csv(target_csv)
    weights = targets[[train_key(d) for d in DOMAINS]].apply(pd.to_numeric, errors="coerce")
    usable = weights.notna().all(axis=1)
    return pd.Series(regressor.predict(weights[usable].to_numpy()), index=targets["index"][usable].to_numpy())


def _weights(mixtures: list[dict]) -> np.ndarray:
    return np.array([[float(m.get(d, 0.0)) for d in DOMAINS] for m in mixtures], dtype=np.float64)


def rank_among(value: float, others, lower_is_better: bool = True) -> int | None:
    """1 + how many of `others` beat `value` (1 = best); None when either side is missing."""
    others = np.asarray([v for v in others if v is not None and math.isfinite(v)], dtype=float)
    if value is None or not math.isfinite(value) or not len(others):
        return None
    return 1 + int((others < value).sum() if lower_is_better else (others > value).sum())


def study_table(target_csv: str | Path, predicted: pd.Series, extras: dict[str, dict], regression: dict
                ) -> pd.DataFrame:
    """One row per completed target run plus one per extra run: weights, predicted and actual loss."""
    targets = pd.read_csv(target_csv)
    if "status" in targets.columns:
        targets = targets[targets["status"].astype(str) == "completed"]
    rows = []
    for _, row in targets.iterrows():
        rows.append({"run": f"model-index-{int(row['index'])}", "kind": "target",
                     "predicted_loss": float(predicted.get(int(row["index"]), math.nan)),
                     "actual_loss": float(row.get(TARGET_LOSS, math.nan)),
                     "downstream_average": float(row.get(DOWNSTREAM, math.nan)),
                     **{train_key(d): float(row[train_key(d)]) for d in DOMAINS}})
    for name, extra in extras.items():
        predicted_loss = regression["optimum_predicted"] if name == "optimal" else regression["prior_predicted"]
        rows.append({"run": name, "kind": name, "predicted_loss": predicted_loss,
                     "actual_loss": extra["val_loss"].get(TARGET_DOMAIN, math.nan),
                     "downstream_average": _number(extra.get("scores", {}).get("average")),
                     **{train_key(d): float(extra["mixture"].get(d, 0.0)) for d in DOMAINS}})
    return pd.DataFrame(rows)


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def summarise_study(table: pd.DataFrame) -> dict:
    """Spearman/Pearson of predicted vs actual over the targets, and each extra run's ranks."""
    targets = table[table["kind"] == "target"].dropna(subset=["predicted_loss", "actual_loss"])
    figures = score(targets["predicted_loss"], targets["actual_loss"]) if len(targets) >= 2 else {
        "spearman": math.nan, "pearson": math.nan, "mse": math.nan}
    summary = {"targets": int(len(targets)), **figures, "ranks": {}}
    downstream = table.loc[table["kind"] == "target", "downstream_average"].tolist()
    for name in EXTRA_RUNS:
        row = table[table["kind"] == name]
        if row.empty:
            continue
        loss, average = float(row["actual_loss"].iloc[0]), float(row["downstream_average"].iloc[0])
        summary["ranks"][name] = {
            "loss": loss,
            "loss_rank": rank_among(loss, targets["actual_loss"].tolist()),
            "downstream_average": None if math.isnan(average) else average,
            "downstream_rank": rank_among(average, downstream, lower_is_better=False),
        }
    return summary


def write_report(root: Path, table: pd.DataFrame, summary: dict, regression: dict,
                 proxies: SweepConfig, targets: SweepConfig) -> dict[str, Path]:
    """study.csv, the two plots and report.md under the study folder; returns their paths."""
    root = Path(root)
    files = {"table": root / "study.csv", "scatter": root / "predicted_vs_actual.png",
             "bars": root / "optimal_vs_prior.png", "report": root / "report.md"}
    atomic_write_text(files["table"], table.to_csv(index=False))
    scored = table[table["kind"] == "target"].dropna(subset=["predicted_loss", "actual_loss"])
    if len(scored) >= 2:
        plot_predicted_vs_actual(files["scatter"], scored["predicted_loss"], scored["actual_loss"],
                                 f"{targets.preset} targets: pile_cc loss predicted from {proxies.preset} proxies")
    plot_mixture_vs_prior(files["bars"], regression["optimal_mixture"], prior=TOKEN_PRIOR,
                          title=_bars_title(summary))
    atomic_write_text(files["report"], report_markdown(summary, regression, proxies, targets, files))
    return files


def _bars_title(summary: dict) -> str:
    parts = [f"{name} {info['loss']:.4f} (rank {info['loss_rank']})" for name, info in summary["ranks"].items()]
    return "Optimal mixture vs prior; target pile_cc loss: " + ", ".join(parts) if parts else "Optimal mixture vs prior"


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def report_markdown(summary: dict, regression: dict, proxies: SweepConfig, targets: SweepConfig,
                    files: dict[str, Path] | None = None) -> str:
    n = summary["targets"]
    lines = [
        "# RegMix generalization study",
        "",
        f"- Proxies: {proxies.n_models} x `{proxies.preset}` ({proxies.resolved_preset().train.steps} steps), "
        f"regression `{regression['regressor']}` fit on {regression['proxy_rows']} completed runs.",
        f"- Targets: {targets.n_models} x `{targets.preset}` ({targets.resolved_preset().train.steps} steps), "
        f"{n} completed.",
        "",
        "## Predicted vs actual target pile_cc loss",
        "",
        f"Spearman **{_fmt(summary['spearman'])}**, Pearson {_fmt(summary['pearson'])}, "
        f"MSE {_fmt(summary['mse'], 6)} over {n} target mixtures.",
        "",
        f"## Where the extra runs rank among the {n} targets (1 = best)",
        "",
        "| run | pile_cc loss | rank by loss | downstream average | rank by downstream |",
        "|---|---|---|---|---|",
    ]
    def of(rank):
        return "n/a" if rank is None else f"{rank} of {n + 1}"

    for name, info in summary["ranks"].items():
        lines.append(f"| {name} | {_fmt(info['loss'])} | {of(info['loss_rank'])} | "
                     f"{_fmt(info['downstream_average'])} | {of(info['downstream_rank'])} |")
    ranked = sorted(regression["optimal_mixture"].items(), key=lambda item: -item[1])
    lines += ["", "## The optimal mixture (top domains, against the prior)", "",
              "| domain | optimum | prior |", "|---|---|---|"]
    lines += [f"| {d} | {w:.4f} | {TOKEN_PRIOR[d]:.4f} |" for d, w in ranked if w >= 0.005]
    if files:
        lines += ["", "Files: " + ", ".join(f"`{p.name}`" for p in files.values())]
    return "\n".join(lines) + "\n"


def png_data_uri(path: Path) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()

