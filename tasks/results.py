"""The results table (one row per model index) and the sweep's summary, as files and artifacts."""

from __future__ import annotations

import base64
import math

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from model.summary import loss_vs_weight_plot, summarise
from model.sweep import SweepConfig, SweepPaths, results_rows, write_results


@task(name="results-table", cache_policy=NO_CACHE)
def collect_results(config: dict, statuses: dict[int, str], noise_losses: list[float] | None = None) -> dict:
    sweep = SweepConfig.from_dict(config)
    paths = SweepPaths.of(sweep)
    frame = write_results(paths, results_rows(paths, sweep, statuses))
    create_table_artifact(
        key="regmix-results", table=_json_safe(frame.to_dict(orient="records")),
        description=f"RegMix sweep {paths.root.name}: one row per model index",
    )
    summary = summarise(frame, sweep, noise_losses)
    png = loss_vs_weight_plot(frame, paths.root / "loss_vs_pile_cc_weight.png")
    markdown = summary["markdown"]
    if png is not None:
        encoded = base64.b64encode(png.read_bytes()).decode()
        markdown += f"\n\n![pile_cc loss against pile_cc weight](data:image/png;base64,{encoded})\n"
    create_markdown_artifact(key="regmix-summary", markdown=markdown,
                             description=f"Summary of sweep {paths.root.name}")
    return {"results_csv": str(paths.results_csv), **{k: v for k, v in summary.items() if k != "markdown"}}


def _json_safe(records: list[dict]) -> list[dict]:
    # NaN is not JSON: the UI gets None for a loss that does not exist (yet).
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]
