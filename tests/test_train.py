import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from model.mixture import Mixture
from model.presets import get_preset
from model.train import TrainingInterrupted, TrainSpec, latest_checkpoint, learning_rate, train

CI = get_preset("ci")
PILE_HEAVY = Mixture.from_dict({"pile_cc": 0.8, "wikipedia_en": 0.2})
CODE_HEAVY = Mixture.from_dict({"github": 0.7, "dm_mathematics": 0.3})


def _spec(mixture, store, **overrides):
    preset = CI.with_overrides(**overrides) if overrides else CI
    return TrainSpec(mixture, preset, seed=0, tokens_key=store.key)


@pytest.fixture(scope="module")
def pile_run(tmp_path_factory, token_store, tokenizer):
    run_dir = tmp_path_factory.mktemp("pile") / "run"
    return run_dir, train(run_dir, _spec(PILE_HEAVY, token_store), token_store, tokenizer)


@pytest.fixture(scope="module")
def code_run(tmp_path_factory, token_store, tokenizer):
    run_dir = tmp_path_factory.mktemp("code") / "run"
    return run_dir, train(run_dir, _spec(CODE_HEAVY, token_store), token_store, tokenizer)


def test_training_lowers_pile_cc_loss_well_below_its_start(pile_run):
    _, result = pile_run
    first_eval = next(r["val_loss"] for r in result["history"] if "val_loss" in r)
    initial = result["history"][0]["loss"]  # the untrained model: about log(vocab)
    assert initial > 5.5
    assert result["val_loss"]["pile_cc"] < initial - 1.5
    assert result["val_loss"]["pile_cc"] <= first_eval["pile_cc"]
    assert result["tokens"] == CI.train.steps * CI.train.batch_sequences * CI.train.seq_len


def test_different_mixtures_give_different_domain_losses(pile_run, code_run):
    pile, code = pile_run[1]["val_loss"], code_run[1]["val_loss"]
    # Each model is best on what it was trained on, by a clear margin.
    assert pile["pile_cc"] < code["pile_cc"] - 0.2
    assert code["github"] < pile["github"] - 0.2


def test_finished_run_is_not_trained_again(pile_run, token_store, tokenizer):
    run_dir, result = pile_run
    mtime = (run_dir / "train_result.json").stat().st_mtime_ns
    again = train(run_dir, _spec(PILE_HEAVY, token_store), token_store, tokenizer)
    assert again == result
    assert (run_dir / "train_result.json").stat().st_mtime_ns == mtime


def test_interrupted_and_resumed_equals_uninterrupted(pile_run, tmp_path, token_store, tokenizer):
    run_dir, full = pile_run
    resumed_dir = tmp_path / "resumed"
    spec = _spec(PILE_HEAVY, token_store)
    with pytest.raises(TrainingInterrupted):
        train(resumed_dir, spec, token_store, tokenizer, stop_after=27)  # checkpoint at 20, 7 steps lost
    assert latest_checkpoint(resumed_dir / "checkpoints", spec.hash())["step"] == 20
    resumed = train(resumed_dir, spec, token_store, tokenizer)
    assert resumed["resumed_from_step"] == 20
    assert resumed["final_train_loss"] == full["final_train_loss"]
    assert resumed["val_loss"] == full["val_loss"]
    a = load_file(run_dir / "final" / "model.safetensors")
    b = load_file(resumed_dir / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_exported_folder_loads_offline_with_transformers(pile_run):
    run_dir, _ = pile_run
    folder = run_dir / "final"
    assert {"model.safetensors", "config.json", "tokenizer.json", "train_config.yaml"} <= {p.name for p in folder.iterdir()}
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "ids = t('The committee said that the', return_tensors='pt').input_ids\n"
        "print(type(m).__name__, m(ids).logits.shape[-1], t.eos_token)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, env=env, check=True)
    name, vocab, eos = out.stdout.split()
    assert name == "LlamaForCausalLM" and int(vocab) % 64 == 0 and eos == "<|endoftext|>"


def test_schedule_warms_up_then_decays_to_min_lr():
    hyper = get_preset("tinyllama_1_1b").train
    assert learning_rate(0, hyper) == pytest.approx(hyper.lr / hyper.warmup_steps)
    assert learning_rate(hyper.warmup_steps - 1, hyper) == pytest.approx(hyper.lr)
    assert learning_rate(hyper.steps - 1, hyper) == pytest.approx(hyper.min_lr, rel=1e-3)
    proxy = get_preset("tinyllama_1M").train
    assert learning_rate(500, proxy) == proxy.lr  # RegMix proxies: constant after warm-up


def test_bad_training_inputs_are_refused(tmp_path, token_store, tokenizer):
    with pytest.raises(ValueError, match="batch_sequences 8 is not a multiple of micro_batch 3"):
        train(tmp_path / "a", _spec(PILE_HEAVY, token_store, micro_batch=3), token_store, tokenizer)
    with pytest.raises(ValueError, match="unknown field"):
        CI.with_overrides(learning_rate=1.0)
    assert not (tmp_path / "a" / "final").exists()
