"""`regmix`: the command line. Each subcommand lives with its concern; this only dispatches.

    regmix sweep [options]        run the `regmix` flow here (local Prefect, device slots of this machine)
    regmix demo                   the embedded default: 64 demo models on mini-pile, then the table
    regmix fit ...                the RegMix regression (see `regmix fit --help`)
    regmix publish ...            push a local Hub mirror to the Hub
    regmix download ...           fetch sail/regmix-data(-sample) from the Hub
    regmix benchmarks ...         prepare the offline copies of the lm-eval benchmarks
    regmix study [options]        the small-to-large generalization study flow
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _sweep_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run a RegMix sweep with the local Prefect.")
    p.add_argument("--n-models", type=int, default=64)
    p.add_argument("--indices", type=lambda s: [int(x) for x in s.split(",") if x], default=None,
                   help="comma-separated model indices to run (default: all)")
    p.add_argument("--preset", default="demo")
    p.add_argument("--steps", type=int, default=None, help="override the preset's training steps")
    p.add_argument("--corpus", default="mini-pile", help="'mini-pile' or a RegMix-Data folder")
    p.add_argument("--corpus-tokens", type=int, default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--sampler-seed", type=int, default=42)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--name", default="regmix")
    p.add_argument("--output-root", default="runs")
    p.add_argument("--eval-tasks", type=lambda s: [t for t in s.split(",") if t], default=None)
    p.add_argument("--eval-shots", type=lambda s: [int(x) for x in s.split(",") if x], default=None)
    p.add_argument("--eval-limit", type=int, default=20)
    p.add_argument("--corpus-tasks", type=lambda s: [t for t in s.split(",") if t], default=None,
                   help="domains whose generated corpus tasks are scored (comma-separated; '' for none)")
    p.add_argument("--hub-repo", default=None, help="publish to this Hub repository (needs HF_TOKEN)")
    p.add_argument("--cpu-slots", type=int, default=None)
    p.add_argument("--gpus-per-model", type=int, default=1, help="GPUs per model (DDP through torchrun)")
    p.add_argument("--noise-seeds", type=int, default=0)
    return p


def _sweep_parameters(args: argparse.Namespace) -> dict:
    return dict(
        n_models=args.n_models, indices=args.indices, preset=args.preset, steps=args.steps, corpus=args.corpus,
        corpus_tokens=args.corpus_tokens, tokenizer=args.tokenizer, sampler_seed=args.sampler_seed,
        train_seed=args.train_seed, name=args.name, output_root=args.output_root, eval_tasks=args.eval_tasks,
        eval_shots=args.eval_shots, eval_limit=args.eval_limit, corpus_tasks=args.corpus_tasks,
        hub_repo=args.hub_repo, cpu_slots=args.cpu_slots, gpus_per_model=args.gpus_per_model,
        noise_seeds=args.noise_seeds,
    )


def sweep_command(argv: list[str], prog: str = "regmix sweep", defaults: dict | None = None) -> int:
    parser = _sweep_parser(prog)
    if defaults:
        parser.set_defaults(**defaults)
    parameters = _sweep_parameters(parser.parse_args(argv))
    from flows.regmix import build_config, regmix

    from .sweep import SweepPaths

    try:
        results_csv = SweepPaths.of(build_config(**parameters)).results_csv
    except (ValueError, FileNotFoundError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    state = regmix(**parameters, terminal_progress=True, return_state=True)
    if results_csv.is_file():
        _print_top_rows(results_csv)
    if state.is_completed():
        _print_summary(state.result())
    else:
        print(f"sweep ended {state.name}: {state.message}", file=sys.stderr)
    # The local Prefect server logs its shutdown at exit; the path must stay the last line.
    logging.getLogger("prefect").setLevel(logging.WARNING)
    print(results_csv)
    return 0 if state.is_completed() else 1


def _print_summary(summary: dict) -> None:
    if "spread_std" in summary:
        print(f"\nBest index {summary['best_index']} (pile_cc loss {summary['best_loss']:.4f}), "
              f"worst {summary['worst_index']} ({summary['worst_loss']:.4f}); spread across mixtures: "
              f"std {summary['spread_std']:.4f}")
    if "noise_std" in summary:
        print(f"Run-to-run noise of one mixture ({summary['noise_runs']} seeds): std {summary['noise_std']:.4f}"
              + (f"; spread/noise {summary['spread_over_noise']:.1f}x" if "spread_over_noise" in summary else ""))


def _print_top_rows(results_csv, rows: int = 10) -> None:
    import pandas as pd

    from .domains import loss_column, train_key

    frame = pd.read_csv(results_csv)
    target = loss_column("pile_cc")
    columns = ["index", "status", train_key("pile_cc"), target, "eval/average", "eval/corpus_ppl_pile_cc"]
    shown = frame[[c for c in columns if c in frame]]
    if target in shown:
        shown = shown.sort_values(target)
    print(f"\nTop {rows} of {len(frame)} models by pile_cc validation loss:")
    print(shown.head(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


# The demo scores three real benchmarks offline (0-shot, 10 documents: tiny models sit near chance
# there, but the path is the one a real sweep takes) and the corpus tasks, which do move with the
# mixture; three extra seeds of index 1's mixture measure the run-to-run noise.
DEMO_DEFAULTS = {"noise_seeds": 3, "eval_tasks": ["arc_easy", "piqa", "sciq"], "eval_limit": 10}


# The local Prefect of `regmix sweep` is an ephemeral server started on first use; on a busy
# laptop it can need more than Prefect's default 20 s, and it must not try to phone home.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


def main(argv: list[str] | None = None) -> int:
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "sweep":
        return sweep_command(rest)
    if command == "demo":
        return sweep_command(rest, prog="regmix demo", defaults=DEMO_DEFAULTS)
    if command == "fit":
        from .regression import fit_command

        return fit_command(rest)
    if command == "publish":
        from .publish import publish_command

        return publish_command(rest)
    if command == "download":
        from .corpus import download_command

        return download_command(rest)
    if command == "benchmarks":
        from .offline_tasks import main as benchmarks_main

        return benchmarks_main(rest)
    if command == "study":
        from flows.study import study_command

        return study_command(rest)
    print(f"regmix: unknown command {command!r}; run `regmix --help`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
