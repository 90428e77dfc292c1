"""Every bad input of tests/bad_inputs.md refused with its field and value named, before any work."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from model.domains import DOMAINS, REGMIX_ORDER, TARGET_DOMAIN, loss_column, train_key

TABLE = Path(__file__).with_name("bad_inputs.md")
FLOW_ARGS = dict(n_models=5, preset="ci", steps=4, corpus_tokens=400_000, eval_limit=2, cpu_slots=1, corpus_tasks=[])


def table_rows() -> list[dict]:
    rows = []
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("case", "---"):
            rows.append(dict(zip(("case", "input", "field", "value", "message"), cells)))
    return rows


# --- the cases: each sets up its input under `root` and returns the error message it gets -----------

FLOW_CASES = {
    "flow-n-models": {"n_models": 0},
    "flow-n-models-type": {"n_models": "many"},
    "flow-indices": {"indices": [2, 9]},
    "flow-preset": {"preset": "gpt5"},
    "flow-steps": {"steps": 0},
    "flow-sampler-seed": {"sampler_seed": -1},
    "flow-train-seed": {"train_seed": -5},
    "flow-corpus-path": {"corpus": "/nonexistent/regmix-data"},
    "flow-name": {"name": "../escape"},
    "flow-corpus-tasks": {"corpus_tasks": ["klingon"]},
    "flow-noise-seeds": {"noise_seeds": -1},
    "hub-bad-repo-id": {"hub_repo": "not a repo id"},
    "hub-no-token": {"hub_repo": "org/models"},
}


def _flow_error(root: Path, overrides: dict) -> str:
    from flows.regmix import regmix

    state = regmix(**{**FLOW_ARGS, "output_root": str(root / "runs"), **overrides}, return_state=True)
    assert state.is_failed(), state
    with pytest.raises(Exception) as failure:
        state.result()
    return str(failure.value)


def _mixture_file(root: Path, text: str) -> Path:
    path = root / "train_config.yaml"
    path.write_text(text)
    return path


def _weights_yaml(weights: dict) -> str:
    lines = [f"  {train_key(d) if d in DOMAINS else 'train_the_pile_' + d}: {w}" for d, w in weights.items()]
    return "train:\n" + "\n".join(lines) + "\nvalid:\n  valid_the_pile_pile_cc: 1.0\nmodel_name: ci\n"


MIXTURE_CASES = {
    "mixture-unknown-domain": _weights_yaml({"pile_cc": 0.5, "klingon": 0.5}),
    "mixture-negative": _weights_yaml({"pile_cc": 1.0, "arxiv": -0.2}),
    "mixture-nan": _weights_yaml({"pile_cc": 1.0, "arxiv": ".nan"}),
    "mixture-all-zero": _weights_yaml({d: 0 for d in DOMAINS}),
    "mixture-wrong-format": "- pile_cc: 1.0\n- arxiv: 0.0\n",
}


def _corpus(root: Path, damage) -> Path:
    """A valid two-file-per-domain corpus in the RegMix-Data layout, then `damage(folder)`."""
    from model.corpus import write_documents

    folder = root / "corpus"
    for split in ("train", "valid"):
        for domain in DOMAINS:
            write_documents(folder / split / f"{domain}-0-0.jsonl", [f"A {domain} document.", "Another one."])
    damage(folder)
    return folder


CORPUS_CASES = {
    "corpus-missing-domain": lambda f: (f / "train" / "europarl-0-0.jsonl").unlink(),
    "corpus-empty-file": lambda f: (f / "train" / "arxiv-0-0.jsonl").write_bytes(b""),
    "corpus-corrupt-line": lambda f: (f / "train" / "arxiv-0-0.jsonl").write_text('{"text": "fine"}\n{"text": \n'),
    "corpus-missing-text": lambda f: (f / "train" / "arxiv-0-0.jsonl").write_text('{"body": "no text here"}\n'),
    "corpus-non-utf8": lambda f: (f / "train" / "arxiv-0-0.jsonl").write_bytes(b'{"text": "\xff\xfe"}\n'),
}


def _results_table(root: Path, rows: int = 20, constant: bool = False, drop: tuple[str, ...] = ()) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(len(REGMIX_ORDER)), size=rows)
    table = pd.DataFrame(weights, columns=[train_key(d) for d in REGMIX_ORDER])
    table.insert(0, "index", range(1, rows + 1))
    table[loss_column(TARGET_DOMAIN)] = 3.0 if constant else 3.0 + weights[:, 0]
    path = root / "results.csv"
    table.drop(columns=list(drop)).to_csv(path, index=False)
    return path


FIT_CASES = {
    "fit-missing-columns": dict(drop=(train_key("arxiv"),)),
    "fit-too-few-rows": dict(rows=5),
    "fit-constant-target": dict(constant=True),
}


def _prepare(case: str, root: Path, capsys):
    """Build the case's input under `root`; return the call that must refuse it (-> its message)."""
    if case in MIXTURE_CASES:
        from model.mixture import read_train_config

        path = _mixture_file(root, MIXTURE_CASES[case])
        return lambda: _raised(lambda: read_train_config(path))
    if case in CORPUS_CASES:
        from model.corpus import validate_corpus

        folder = _corpus(root, CORPUS_CASES[case])
        return lambda: _raised(lambda: validate_corpus(folder, deep=True))
    if case in FIT_CASES:
        from model.regression import fit_command

        path = _results_table(root, **FIT_CASES[case])

        def fit() -> str:
            capsys.readouterr()
            assert fit_command(["--train", str(path), "--output-config", str(root / "optimum.yaml"),
                                "--plot-dir", str(root / "plots")]) != 0
            return capsys.readouterr().err

        return fit
    raise KeyError(f"{case}: a case in {TABLE.name} with no implementation here")


def _raised(call) -> str:
    with pytest.raises((ValueError, FileNotFoundError)) as failure:
        call()
    return str(failure.value)


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_the_table_lists_at_least_twenty_cases_each_implemented():
    cases = [row["case"] for row in table_rows()]
    assert len(cases) >= 20 and len(set(cases)) == len(cases)
    implemented = {*FLOW_CASES, *MIXTURE_CASES, *CORPUS_CASES, *FIT_CASES}
    assert set(cases) == implemented


@pytest.mark.parametrize("row", [r for r in table_rows() if r["case"] in FLOW_CASES], ids=lambda r: r["case"])
def test_bad_flow_parameter_is_refused_before_any_folder_appears(row, prefect_server, tmp_path, monkeypatch):
    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    message = _flow_error(tmp_path, FLOW_CASES[row["case"]])
    _check_message(message, row)
    assert list(tmp_path.iterdir()) == [], "the flow wrote something before refusing"


@pytest.mark.parametrize("row", [r for r in table_rows() if r["case"] not in FLOW_CASES], ids=lambda r: r["case"])
def test_bad_file_input_is_refused_and_nothing_is_written(row, tmp_path, capsys):
    refuse = _prepare(row["case"], tmp_path, capsys)
    before = _files(tmp_path)
    _check_message(refuse(), row)
    assert _files(tmp_path) == before, "files were written or changed while refusing"


def _check_message(message: str, row: dict) -> None:
    assert row["message"] in message, f"{row['case']}: {message!r} lacks {row['message']!r}"
    for part in (row["field"], row["value"]):
        if part == "-":  # not named, see the table's note
            continue
        assert part in message, f"{row['case']}: {message!r} does not name {part!r}"
