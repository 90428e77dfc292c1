"""Parallel efficiency of a finished sweep's fan-out, read from its own records.

    python benchmarks/demo_makespan.py runs/regmix-<hash> [--slots 2]

Ideal makespan = (sum over indices and noise runs of the slot calls' own wall time: training
(model build, loop, validation losses, export) + evaluation) / slots. Actual = from the first
training call's start to the last eval.json / publish.json written. Efficiency = ideal / actual:
what the slots spent on the work itself against the wall the sweep took, Prefect included.
Records written before `called_at`/`call_seconds` existed count the training loop and the
downstream evaluation alone (an underestimate of the ideal).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _record(path: Path) -> tuple[dict, float] | None:
    return (json.loads(path.read_text()), path.stat().st_mtime) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the sweep folder (holds models/ and sweep.json)")
    parser.add_argument("--slots", type=int, default=2, help="slots the sweep ran on (the demo: 2 on 2 cores)")
    args = parser.parse_args()
    if args.slots < 1:
        parser.error(f"--slots: must be >= 1, got {args.slots}")
    runs = sorted((args.sweep / "models").glob("model-index-*")) + sorted((args.sweep / "noise").glob("seed-*"))
    if not runs:
        parser.error(f"sweep: no models/model-index-* folders under {args.sweep}")

    busy, starts, ends = 0.0, [], []
    for run in runs:
        trained = _record(run / "train_result.json")
        if trained is None:
            continue
        result, written = trained
        busy += result.get("call_seconds", result["train_seconds"])
        starts.append(result.get("called_at", written - result["train_seconds"]))
        ends.append(written)
        for name in ("eval.json", "publish.json"):
            record = _record(run / name)
            if record is not None:
                if name == "eval.json":
                    busy += record[0].get("call_seconds", record[0].get("seconds", 0.0))
                ends.append(record[1])
    wall = max(ends) - min(starts)
    ideal = busy / args.slots
    print(f"{len(starts)} trained runs; slot calls (training + evaluation) {busy:.0f} s on {args.slots} slots: ideal {ideal:.0f} s")
    print(f"fan-out wall (first training start to last record): {wall:.0f} s")
    print(f"parallel efficiency: {100 * ideal / wall:.1f}%")


if __name__ == "__main__":
    main()
