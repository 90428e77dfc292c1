import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from model.domains import DOMAINS, REGMIX_ORDER, TOKEN_PRIOR, train_key
from model.mixture import (
    Mixture,
    SamplerConfig,
    dump_train_config,
    parse_train_config,
    read_train_config,
    sample_mixtures,
    write_train_config,
)
from model.presets import PRESETS, get_preset

RELEASE = Path(__file__).resolve().parents[2] / "shared" / "regmix-release"


@pytest.fixture(scope="module")
def regmix_512():
    return np.array([m.weights for m in sample_mixtures(512)])


def test_sampler_reproduces_regmix_statistics(regmix_512):
    zeros_per_config = (regmix_512 == 0).sum(axis=1).mean()
    assert 9.5 <= zeros_per_config <= 11.5  # "about 10 of 17 domains end at 0"
    prior = np.array([TOKEN_PRIOR[d] for d in DOMAINS])
    cap = np.minimum(15 * prior / prior.sum(), 1.0)
    # Rounding to the 2e-4 grid and renormalising can move a capped weight by a grid step at most.
    assert np.all(regmix_512 <= cap + 5e-4)
    assert np.allclose(regmix_512.sum(axis=1), 1.0, atol=1e-9)
    assert len({tuple(np.round(r, 6)) for r in regmix_512}) == 512  # deduplicated
    # Every domain is sometimes present; the tempered prior spreads weight beyond the big ones.
    assert np.all((regmix_512 > 0).any(axis=0))


def test_sampler_is_seeded():
    a = sample_mixtures(8, SamplerConfig(seed=7))
    b = sample_mixtures(8, SamplerConfig(seed=7))
    c = sample_mixtures(8, SamplerConfig(seed=8))
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"pile_cc": 1.0, "reddit": 0.1}, "unknown domain 'reddit'"),
        ({"pile_cc": -0.5, "arxiv": 1.0}, "'pile_cc'.*negative"),
        ({"pile_cc": float("nan")}, "'pile_cc'.*not finite"),
        ({"pile_cc": 0.0, "arxiv": 0.0}, "all weights are zero"),
        ({"pile_cc": "lots"}, "'pile_cc'.*not a number"),
    ],
)
def test_bad_mixtures_are_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        Mixture.from_dict(weights)


def test_mixture_normalises():
    m = Mixture.from_dict({"pile_cc": 3, "arxiv": 1})
    assert math.isclose(m["pile_cc"], 0.75) and math.isclose(sum(m.weights), 1.0)
    assert m.active_domains() == ["pile_cc", "arxiv"]


@pytest.mark.parametrize("name", ["human", "doremi", "pile_cc_only", "regmix"])
def test_published_train_configs_load_and_round_trip(name, tmp_path):
    path = RELEASE / "config_1b" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"RegMix release data not found at {RELEASE}")
    loaded = read_train_config(path)
    assert loaded.model_name == "tinyllama_1_1b" and loaded.valid == {"pile_cc": 1.0}
    raw = yaml.safe_load(path.read_text())["train"]
    total = sum(raw.values())
    for key, value in raw.items():
        assert math.isclose(loaded.mixture[key.removeprefix("train_the_pile_")], value / total, rel_tol=1e-12)
    out = tmp_path / "train_config.yaml"
    write_train_config(out, loaded.mixture, loaded.model_name, valid=loaded.valid)
    again = read_train_config(out)
    assert again.mixture == loaded.mixture and again.model_name == loaded.model_name
    written_keys = list(yaml.safe_load(out.read_text())["train"])
    assert written_keys == [train_key(d) for d in REGMIX_ORDER]  # all 17, in RegMix's order
    if len(raw) == 17:
        assert written_keys == list(raw)


def test_train_config_format_errors():
    with pytest.raises(ValueError, match="no 'train:' section"):
        parse_train_config({"valid": {}})
    with pytest.raises(ValueError, match="'weights_arxiv'"):
        parse_train_config({"train": {"weights_arxiv": 1.0}})
    with pytest.raises(FileNotFoundError, match="no file"):
        read_train_config("/nonexistent/train_config.yaml")
    text = dump_train_config(Mixture.from_dict({"arxiv": 1}), "demo")
    assert "train_the_pile_arxiv: 1.0" in text and "model_name: demo" in text


def test_presets_match_regmix_shapes():
    expected = {"tinyllama_1M": 1.3e6, "tinyllama_60M": 59e6, "tinyllama_1_1b": 1.13e9}
    for name, params in expected.items():
        assert abs(PRESETS[name].model.non_embedding_params() - params) / params < 0.02
    big = get_preset("tinyllama_1_1b")
    assert big.train.batch_tokens == 512 * 2048 and big.train.total_tokens == pytest.approx(25e9, rel=0.05)
    assert big.train.warmup_steps == 1000 and big.train.min_lr == 1e-5
    config = big.model.llama_config()
    assert config.vocab_size == 50432 and not config.tie_word_embeddings
    assert config.num_key_value_heads == config.num_attention_heads == 16
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")
