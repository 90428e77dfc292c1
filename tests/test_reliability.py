"""Faults a long sweep meets, each survived with nothing lost: real processes killed, a full disk,
two sweeps side by side, a server restart and a worker lost in work-pool mode."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from model import pipeline
from model.mixture import Mixture
from model.presets import get_preset
from model.slots import SlotCrashed, SlotPool, plan_slots
from model.train import CHECKPOINT_DIR, TrainSpec, latest_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
CI = get_preset("ci")  # 40 steps, a checkpoint every 20
PILE_HEAVY = Mixture.from_dict({"pile_cc": 0.8, "wikipedia_en": 0.2})


def _weights(run_dir: Path) -> dict:
    return load_file(run_dir / "final" / "model.safetensors")


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, token_store, tokenizer):
    """The reference: one CI run trained start to end without a fault."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    spec = TrainSpec(PILE_HEAVY, CI, seed=0, tokens_key=token_store.key)
    return spec, train(run_dir, spec, token_store, tokenizer), _weights(run_dir), run_dir


# --- a training killed with SIGKILL --------------------------------------------------------------

def test_training_killed_midway_resumes_from_its_checkpoint_and_ends_as_uninterrupted(
        tmp_path, monkeypatch, token_store, tokenizer_dir, uninterrupted):
    spec, reference, reference_weights, _ = uninterrupted
    run_dir = tmp_path / "run"
    faults = tmp_path / "faults"
    faults.write_text("kill-train-midway:7\n")  # the slot's process SIGKILLs itself at step 20 of 40
    monkeypatch.setenv("REGMIX_FAULTS", str(faults))
    pool = SlotPool(plan_slots(cpu_slots=1))
    args = (pipeline.train_index, 7, str(run_dir), spec, str(token_store.path), str(tokenizer_dir), None)
    try:
        with pytest.raises(SlotCrashed, match="worker process died"):
            pool.run(*args)
        assert not (run_dir / "train_result.json").exists()
        assert latest_checkpoint(run_dir / CHECKPOINT_DIR, spec.hash())["step"] == 20
        faults.write_text("")
        resumed = pool.run(*args)  # the retry: a fresh slot process on the same folder
    finally:
        pool.shutdown()
    assert resumed["resumed_from_step"] == 20
    assert resumed["final_train_loss"] == reference["final_train_loss"]
    assert resumed["val_loss"] == reference["val_loss"]
    assert _same_weights(_weights(run_dir), reference_weights)


# --- a crash while a file is being written ---------------------------------------------------------

# A child process that writes through the product's own code and is SIGKILLed mid-write: its first
# fsync (the data is in the temporary file, the rename has not happened) announces itself and hangs.
_STALLED_WRITER = """
import os, pathlib, sys, time
sys.path.insert(0, {root!r})
marker = pathlib.Path({marker!r})
def hang(fd):
    marker.write_text("writing")
    time.sleep(600)
os.fsync = hang
{body}
"""


def _kill_mid_write(tmp_path: Path, body: str) -> None:
    marker = tmp_path / "writing"
    script = _STALLED_WRITER.format(root=str(ROOT), marker=str(marker), body=textwrap.dedent(body))
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(f"the writer exited before writing: {child.stderr.read()}")
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _copy_checkpoint(source_dir: Path, run_dir: Path, step: int) -> None:
    name = f"step-{step:07d}.pt"
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    (run_dir / CHECKPOINT_DIR / name).write_bytes((source_dir / CHECKPOINT_DIR / name).read_bytes())


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one_in_use(tmp_path, token_store, tokenizer,
                                                                        uninterrupted):
    spec, _, reference_weights, reference_dir = uninterrupted
    run_dir = tmp_path / "run"
    _copy_checkpoint(reference_dir, run_dir, 20)  # a run that got to step 20
    _kill_mid_write(tmp_path, f"""
    import torch
    from model.train import _save_checkpoint
    state = torch.load({str(reference_dir / CHECKPOINT_DIR / "step-0000040.pt")!r}, weights_only=False)
    _save_checkpoint(pathlib.Path({str(run_dir / CHECKPOINT_DIR)!r}), 40, state)
    """)
    assert list((run_dir / CHECKPOINT_DIR).glob(".step-0000040.pt.*.tmp")), "the killed writer left its temp file"
    assert sorted(p.name for p in (run_dir / CHECKPOINT_DIR).glob("step-*.pt")) == ["step-0000020.pt"]
    assert latest_checkpoint(run_dir / CHECKPOINT_DIR, spec.hash())["step"] == 20
    assert train(run_dir, spec, token_store, tokenizer)["resumed_from_step"] == 20
    assert _same_weights(_weights(run_dir), reference_weights)
    assert not list((run_dir / CHECKPOINT_DIR).glob(".step-*.tmp")), "the retry cleared the leftover"


def test_truncated_newest_checkpoint_is_skipped_for_the_previous_one(tmp_path, token_store, tokenizer,
                                                                     uninterrupted):
    spec, _, reference_weights, reference_dir = uninterrupted
    run_dir = tmp_path / "run"
    for step in (20, 40):
        _copy_checkpoint(reference_dir, run_dir, step)
    newest = run_dir / CHECKPOINT_DIR / "step-0000040.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a torn write (power loss)
    assert latest_checkpoint(run_dir / CHECKPOINT_DIR, spec.hash())["step"] == 20
    assert train(run_dir, spec, token_store, tokenizer)["resumed_from_step"] == 20
    assert _same_weights(_weights(run_dir), reference_weights)


def _sweep_paths(tmp_path):
    from model.sweep import SweepConfig, SweepPaths

    config = SweepConfig(n_models=2, preset="ci", output_root=str(tmp_path / "runs"))
    return config, SweepPaths.of(config)


def _eval_file_case(tmp_path, final_dir):
    from model.io import atomic_write_json
    from model.sweep import results_rows

    config, paths = _sweep_paths(tmp_path)
    path = paths.model_dir(1) / "eval.json"
    atomic_write_json(path, {"config_hash": "old", "val_loss": {}, "scores": {"piqa": 0.25}})
    write = f"from model.io import atomic_write_json\natomic_write_json({str(path)!r}, {{'scores': {{'piqa': 0.75}}}})"
    return write, lambda: results_rows(paths, config)[0]["eval/piqa"], 0.25, 0.75


def _results_table_case(tmp_path, final_dir):
    from model.sweep import write_results

    _, paths = _sweep_paths(tmp_path)
    write_results(paths, [{"index": 1, "status": "completed"}, {"index": 2, "status": "pending"}])
    write = (f"from model.sweep import SweepPaths, write_results\n"
             f"write_results(SweepPaths(pathlib.Path({str(paths.root)!r})), [{{'index': 1, 'status': 'completed'}},"
             f" {{'index': 2, 'status': 'completed'}}])")

    def read():
        csv, parquet = pd.read_csv(paths.results_csv), pd.read_parquet(paths.results_parquet)
        assert csv.to_dict("records") == parquet.to_dict("records")  # the two files agree
        return list(csv["status"])

    return write, read, ["completed", "pending"], ["completed", "completed"]


def _published_branch_case(tmp_path, final_dir):
    from model.publish import LocalMirror, publish_model

    mirror = tmp_path / "hub"
    publish_model(LocalMirror(mirror), 1, final_dir, {"piqa": 0.25})
    write = (f"from model.publish import LocalMirror, publish_model\n"
             f"publish_model(LocalMirror({str(mirror)!r}), 1, {str(final_dir)!r}, {{'piqa': 0.75}}, overwrite=True)")

    def read():
        bundle = LocalMirror(mirror).read_bundle("model-index-1")  # checks every file against the manifest
        assert "model.safetensors" in bundle
        return json.loads((mirror / "model-index-1" / "eval_results.json").read_text())["piqa"]

    return write, read, 0.25, 0.75


@pytest.mark.parametrize("case", [_eval_file_case, _results_table_case, _published_branch_case],
                         ids=["evaluation-file", "results-table", "published-branch"])
def test_crash_while_writing_leaves_the_previous_version_whole_and_in_use(tmp_path, case, uninterrupted):
    reference_dir = uninterrupted[3]
    write, read, old, new = case(tmp_path, reference_dir / "final")
    assert read() == old
    _kill_mid_write(tmp_path, write)
    assert read() == old
    exec(compile(write, "retry", "exec"), {"pathlib": __import__("pathlib")})  # the retry, in this process
    assert read() == new


def test_replacing_a_folder_never_leaves_its_path_absent(tmp_path, monkeypatch):
    """atomic_dir swaps the new folder in: after every rename it makes, the path holds a whole folder."""
    from model.io import atomic_dir

    target = tmp_path / "model-index-1"
    with atomic_dir(target) as build:
        (build / "weights").write_text("old")
    real_replace, seen = os.replace, []

    def replace_and_look(src, dst):
        real_replace(src, dst)
        seen.append((target / "weights").read_text() if target.is_dir() else None)

    monkeypatch.setattr(os, "replace", replace_and_look)
    for version in ("new", "newer"):
        with atomic_dir(target) as build:
            (build / "weights").write_text(version)
        assert (target / "weights").read_text() == version
    assert None not in seen, seen  # never a moment without the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-index-1"]  # no temporary left


# --- a disk that fills during a checkpoint write -------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs folder of a chosen size, remountable bigger (needs root, as in CI's container)."""
    folder = tmp_path / "disk"
    folder.mkdir()

    def mount(size_bytes: int, remount: bool = False) -> Path:
        options = f"{'remount,' if remount else ''}size={size_bytes}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (mount exited {done.returncode}: {done.stderr.strip()})")
        return folder

    yield mount
    subprocess.run(["umount", str(folder)], capture_output=True)


def test_disk_full_during_a_checkpoint_is_a_clear_error_and_the_previous_checkpoint_survives(
        small_disk, token_store, tokenizer, uninterrupted):
    spec, _, reference_weights, reference_dir = uninterrupted
    checkpoint_size = (reference_dir / CHECKPOINT_DIR / "step-0000020.pt").stat().st_size
    disk = small_disk(checkpoint_size * 3 // 2)  # room for the step-20 checkpoint, not for step 40 beside it
    run_dir = disk / "run"
    with pytest.raises(OSError) as failure:
        train(run_dir, spec, token_store, tokenizer)
    assert failure.value.errno == errno.ENOSPC
    newest = run_dir / CHECKPOINT_DIR / "step-0000040.pt"
    assert failure.value.filename == str(newest) and str(newest) in str(failure.value)
    assert "No space left on device" in str(failure.value)
    assert sorted(p.name for p in (run_dir / CHECKPOINT_DIR).iterdir()) == ["step-0000020.pt"]  # no temp left
    assert latest_checkpoint(run_dir / CHECKPOINT_DIR, spec.hash())["step"] == 20

    small_disk(checkpoint_size * 8, remount=True)  # space freed: the run resumes and ends as uninterrupted
    assert train(run_dir, spec, token_store, tokenizer)["resumed_from_step"] == 20
    assert _same_weights(_weights(run_dir), reference_weights)


# --- two sweeps with different configs at once --------------------------------------------------

_SWEEP_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from flows.regmix import regmix

if __name__ == "__main__":  # slot processes are spawned: they re-import this file
    summary = regmix(n_models=2, preset="ci", steps=4, corpus={corpus!r}, eval_limit=2, cpu_slots=1,
                     corpus_tasks=[], output_root={output!r}, sampler_seed={seed}, train_seed={seed})
    print(json.dumps(summary, default=str))
"""


def test_two_sweeps_with_different_configs_at_once_keep_to_their_own_files(tmp_path, minipile):
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from flows.regmix import build_config
    from model.sweep import SweepPaths

    output = tmp_path / "runs"
    children = []
    with prefect_test_harness(server_startup_timeout=180):
        env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), REGMIX_CACHE=str(tmp_path / "cache"))
        env.pop("REGMIX_FAULTS", None)
        for seed in (1, 2):
            script = tmp_path / f"sweep{seed}.py"
            script.write_text(_SWEEP_SCRIPT.format(root=str(ROOT), corpus=str(minipile), output=str(output), seed=seed))
            children.append(subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [child.communicate(timeout=900) for child in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err[-3000:]
    folders = {seed: SweepPaths.of(build_config(n_models=2, preset="ci", steps=4, corpus=str(minipile),
                                                output_root=str(output), sampler_seed=seed, train_seed=seed,
                                                eval_limit=2, corpus_tasks=[])).root for seed in (1, 2)}
    assert folders[1] != folders[2] and sorted(p.name for p in output.iterdir()) == sorted(f.name for f in folders.values())
    tables = {seed: pd.read_csv(folder / "results.csv") for seed, folder in folders.items()}
    for seed, folder in folders.items():
        table = tables[seed]
        assert list(table["index"]) == [1, 2] and table["status"].eq("completed").all()
        record = json.loads((folder / "sweep.json").read_text())
        assert record["config"]["sampler_seed"] == seed and record["hash"] == folder.name.rsplit("-", 1)[1]
        for index in (1, 2):
            result = json.loads((folder / "models" / f"model-index-{index}" / "train_result.json").read_text())
            assert result["spec"]["seed"] == seed and result["model_dir"].startswith(str(folder))
    weights = [c for c in tables[1].columns if c.startswith("train_the_pile_")]
    assert not tables[1][weights].equals(tables[2][weights])  # different mixtures, each in its own table
