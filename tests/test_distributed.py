"""A model trained on two ranks (torchrun, DDP over gloo on CPU) ends where one process ends."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from model.distributed import launch
from model.mixture import Mixture
from model.presets import get_preset
from model.slots import plan_slots
from model.train import TrainSpec, read_result, train

MIXTURE = Mixture.from_dict({"pile_cc": 0.6, "github": 0.4})


def test_two_ranks_through_torchrun_match_one_process(tmp_path, token_store, tokenizer, monkeypatch):
    spec = TrainSpec(MIXTURE, get_preset("ci").with_overrides(steps=12, micro_batch=4, checkpoint_interval=6,
                                                               eval_interval=6), seed=0, tokens_key=token_store.key)
    single = train(tmp_path / "single", spec, token_store, tokenizer, device="cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    launch(2, tmp_path / "ddp", spec, str(token_store.path), str(tokenizer.name_or_path))
    ddp = read_result(tmp_path / "ddp")
    assert ddp["spec_hash"] == single["spec_hash"] and ddp["device"] == "2 x cpu (DDP)"
    # Same global batches, gradients averaged over the ranks: the same training up to float
    # summation order.
    for a, b in zip(single["history"], ddp["history"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    for domain, loss in single["val_loss"].items():
        assert ddp["val_loss"][domain] == pytest.approx(loss, rel=1e-4)
    a = load_file(tmp_path / "single" / "final" / "model.safetensors")
    b = load_file(tmp_path / "ddp" / "final" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-5) for k in a)
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").glob("step-*.pt")) == \
        ["step-0000006.pt", "step-0000012.pt"]  # written once, by rank 0


def test_batch_must_split_evenly_over_ranks(tmp_path, token_store, tokenizer, monkeypatch):
    spec = TrainSpec(MIXTURE, get_preset("ci").with_overrides(micro_batch=8), tokens_key=token_store.key)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="batch_sequences 8 is not a multiple of micro_batch 8 x 3 ranks"):
        train(tmp_path / "run", spec, token_store, tokenizer, device="cpu")


def test_gpu_slots_group_devices_per_model(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    slots = plan_slots(gpus_per_slot=4)
    assert [s.visible_devices for s in slots] == ["0,1,2,3", "4,5,6,7"]
    assert [s.visible_devices for s in plan_slots()] == [str(i) for i in range(8)]
    with pytest.raises(ValueError, match="gpus_per_model: 16 asked, 8 GPU"):
        plan_slots(gpus_per_slot=16)
