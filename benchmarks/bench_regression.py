"""Time the RegMix fit (512 proxy runs) and the 1M-candidate search; Spearman of every regressor.

    python -m benchmarks.bench_regression [--candidates N] [--regressors a,b] [--no-cv] [--repeats R]

First, fit (512 rows) + search (1M candidates) of LightGBM two ways, alternating R rounds: the
previous path (sklearn wrapper's predict, one thread, every candidate) and ours (the booster's
predict on every core, and the exact top-k shortlist); both must give the same optimum.

Needs the RegMix release data (../shared/regmix-release or REGMIX_RELEASE_DIR). The regressor
to prefer is picked by k-fold Spearman on the 768 proxy runs (1M train + 1M test) only; the 1B
column is shown for each one afterwards, never used to choose.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import alternate, machine_line, median, spread
from model.regression import (REGRESSORS, Regressor, _fit_lgbm, cross_validate, fit_regressor, load_pair, score,
                              search_optimal_mixture)

RELEASE_DIR = Path(os.environ.get("REGMIX_RELEASE_DIR",
                                  Path(__file__).resolve().parents[2] / "shared" / "regmix-release"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--regressors", default=",".join(REGRESSORS))
    parser.add_argument("--no-cv", action="store_true", help="skip the k-fold figures (the slow part)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the previous-vs-ours search timing")
    args = parser.parse_args(argv)

    data = RELEASE_DIR / "data"
    if not data.is_dir():
        print(f"RegMix release data not found at {RELEASE_DIR} (set REGMIX_RELEASE_DIR)", file=sys.stderr)
        return 1
    X, y = load_pair(data / "train_mixture_1m.csv", data / "train_pile_loss_1m.csv")
    X1m, y1m = load_pair(data / "test_mixture_1m.csv", data / "test_pile_loss_1m.csv")
    X1b, y1b = load_pair(data / "test_mixture_1B.csv", data / "test_pile_loss_1B.csv")
    proxies_X, proxies_y = pd.concat([X, X1m]), pd.concat([y, y1m])
    print(f"{len(y)} train, {len(y1m)} 1M test, {len(y1b)} 1B rows; {os.cpu_count()} CPUs; "
          f"search: {args.candidates} candidates, top {args.top_k}")

    print(machine_line())
    compare_search_paths(X, y, args.candidates, args.top_k, args.repeats)

    header = (f"{'regressor':>20} {'fit s':>7} {'search s':>9} {'CV proxies':>11} {'1M test':>8} "
              f"{'1B':>7} {'1B pearson':>10}  optimum (top domains)")
    print(header)
    cv_figures = {}
    for kind in args.regressors.split(","):
        start = time.perf_counter()
        model = fit_regressor(kind, X, y, X1m, y1m)  # early-stopped on the 1M test set, as RegMix
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        optimum = search_optimal_mixture(model, candidates=args.candidates, top_k=args.top_k).mixture
        search_s = time.perf_counter() - start
        cv = float("nan")
        if not args.no_cv:
            cv = cv_figures[kind] = cross_validate(kind, proxies_X, proxies_y, folds=5)[0]["spearman"]
        test_1m = score(model.predict(X1m), y1m)
        test_1b = score(model.predict(X1b), y1b)
        top = ", ".join(f"{d} {w:.3f}" for d, w in sorted(optimum.items(), key=lambda i: -i[1])[:3])
        print(f"{kind:>20} {fit_s:7.2f} {search_s:9.2f} {cv:11.4f} {test_1m['spearman']:8.4f} "
              f"{test_1b['spearman']:7.4f} {test_1b['pearson']:10.4f}  {top}", flush=True)
    if cv_figures:
        best = max(cv_figures, key=cv_figures.get)
        print(f"chosen by 5-fold CV on the proxy runs: {best} ({cv_figures[best]:.4f})")
    return 0


def compare_search_paths(X, y, candidates: int, top_k: int, repeats: int) -> None:
    """Fit on the 512 rows (early stopping on a holdout, as the study does) and search, both ways."""
    optima = {}

    def timed(name, make_regressor, **search_options):
        def run():
            start = time.perf_counter()
            regressor = make_regressor()
            optima[name] = search_optimal_mixture(regressor, candidates=candidates, top_k=top_k, **search_options)
            return time.perf_counter() - start
        return run

    def previous():
        model = _fit_lgbm(X.to_numpy(), y.to_numpy(), None, None, 42)
        return Regressor("lightgbm", model.predict)  # the sklearn wrapper: n_jobs=1, all candidates

    figures = alternate({
        "previous": timed("previous", previous, use_shortlist=False),
        "ours": timed("ours", lambda: fit_regressor("lightgbm", X, y)),
    }, repeats)
    same = optima["previous"] == optima["ours"]
    ratio = median(figures["previous"]) / median(figures["ours"])
    print(f"fit {len(y)} rows + search {candidates} candidates (top {top_k}), seconds per round: "
          f"previous {spread(figures['previous'])}, ours {spread(figures['ours'])}; "
          f"median ratio {ratio:.2f}x; same optimum: {same}", flush=True)
    if not same:
        raise SystemExit("the two search paths disagree")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
