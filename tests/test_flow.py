"""The real `regmix` flow on a real (temporary) Prefect server, training real tiny models."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from model.domains import DOMAINS, loss_column, train_key
from model.mixture import read_train_config
from model.sweep import SweepPaths

FLOW_ARGS = dict(n_models=5, preset="ci", steps=20, corpus_tokens=400_000, eval_limit=4, cpu_slots=2,
                 corpus_tasks=["pile_cc"])


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def sweep_env(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("sweep")
    monkeypatch_module.setenv("REGMIX_CACHE", str(root / "cache"))
    monkeypatch_module.setenv("REGMIX_FAULTS", str(root / "faults"))
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _config(root, **overrides):
    from flows.regmix import build_config

    return build_config(**{**FLOW_ARGS, "output_root": str(root / "runs"), **overrides})


def test_flow_runs_indices_and_writes_the_results_table(prefect_server, sweep_env):
    from prefect.artifacts import Artifact

    from flows.regmix import regmix

    summary = regmix(**FLOW_ARGS, indices=[1, 2, 4], output_root=str(sweep_env / "runs"))
    paths = SweepPaths.of(_config(sweep_env))
    table = pd.read_csv(paths.results_csv).set_index("index")
    assert list(table.index) == [1, 2, 3, 4, 5]  # one row per model index, the unrun one pending
    assert table.loc[[1, 2, 4], "status"].eq("completed").all() and table.loc[3, "status"] == "pending"
    for index in (1, 2, 4):
        mixture = read_train_config(paths.mixture_file(index)).mixture
        for domain in DOMAINS:
            assert table.loc[index, train_key(domain)] == pytest.approx(mixture[domain], abs=1e-12)
            assert math.isfinite(table.loc[index, loss_column(domain)])
        assert math.isfinite(table.loc[index, "eval/corpus_mc_pile_cc"])
        assert (paths.mirror / f"model-index-{index}" / "model.safetensors").is_file()
    assert summary["completed"] == 3 and summary["results_csv"] == str(paths.results_csv)
    artifact = Artifact.get("regmix-results")
    assert artifact is not None and len(json.loads(artifact.data)) == 5
    assert pd.read_parquet(paths.results_parquet).shape == table.reset_index().shape


def test_failed_index_fails_the_flow_and_a_rerun_trains_only_it(prefect_server, sweep_env):
    from flows.regmix import SweepFailed, regmix

    paths = SweepPaths.of(_config(sweep_env))
    (sweep_env / "faults").write_text("train:3\n")
    state = regmix(**FLOW_ARGS, indices=[1, 3], output_root=str(sweep_env / "runs"), return_state=True)
    assert state.is_failed()
    with pytest.raises(SweepFailed, match=r"model indices failed: \[3\]"):
        state.result()
    assert pd.read_csv(paths.results_csv).set_index("index").loc[3, "status"] == "failed"

    finished = {i: (paths.model_dir(i) / "train_result.json").stat().st_mtime_ns for i in (1, 2, 4)}
    (sweep_env / "faults").write_text("")
    regmix(**FLOW_ARGS, output_root=str(sweep_env / "runs"))  # the whole sweep again
    assert {i: (paths.model_dir(i) / "train_result.json").stat().st_mtime_ns for i in (1, 2, 4)} == finished
    table = pd.read_csv(paths.results_csv).set_index("index")
    assert table["status"].eq("completed").all()
    assert json.loads((paths.model_dir(3) / "train_result.json").read_text())["resumed_from_step"] == 0


def test_a_deleted_sweep_folder_is_rebuilt_not_taken_from_the_task_cache(prefect_server, sweep_env):
    """Same inputs, folder gone (rm -rf runs, or a fresh checkout at the same path): retrain, not "Cached"."""
    import shutil

    from flows.regmix import regmix

    paths = SweepPaths.of(_config(sweep_env))
    assert (paths.model_dir(1) / "train_result.json").is_file()  # finished by the tests above
    old_instance = json.loads(paths.config_file.read_text())["instance"]
    shutil.rmtree(paths.root)
    regmix(**FLOW_ARGS, indices=[1, 2], output_root=str(sweep_env / "runs"))
    assert json.loads(paths.config_file.read_text())["instance"] != old_instance
    table = pd.read_csv(paths.results_csv).set_index("index")
    assert table.loc[[1, 2], "status"].eq("completed").all()
    for index in (1, 2):
        assert math.isfinite(table.loc[index, loss_column("pile_cc")])
        assert (paths.model_dir(index) / "train_result.json").is_file()
        assert (paths.mirror / f"model-index-{index}" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_models": 0}, "n_models: must be a positive integer, got 0"),
        ({"n_models": -3}, "n_models: must be a positive integer, got -3"),
        ({"indices": [2, 9]}, r"indices: 9 is out of range 1..5"),
        ({"indices": [0]}, r"indices: 0 is out of range 1..5"),
        ({"preset": "gpt5"}, "preset: unknown preset 'gpt5'"),
        ({"corpus": "/nonexistent/regmix-data"}, "corpus: folder '/nonexistent/regmix-data' does not exist"),
        ({"cpu_slots": 0}, "cpu_slots: must be a positive integer, got 0"),
        ({"mode": "cloud"}, "mode: must be 'local' or 'work-pool', got 'cloud'"),
        ({"hub_repo": "not a repo id"}, "not a repo id"),
    ],
)
def test_bad_parameters_fail_before_any_training(prefect_server, tmp_path, monkeypatch, overrides, message):
    from flows.regmix import regmix

    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))
    state = regmix(**{**FLOW_ARGS, "output_root": str(tmp_path / "runs"), **overrides}, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=message):
        state.result()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
