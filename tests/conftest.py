"""Shared fixtures: one small real mini-pile, its BPE tokenizer and token files, per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Nothing in the suite may reach the Hub; downloads stay real code paths tested up to the call.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

TEST_CORPUS_TOKENS = 400_000


@pytest.fixture(scope="session")
def minipile(tmp_path_factory) -> Path:
    from model.minipile import generate_mini_pile

    return generate_mini_pile(tmp_path_factory.mktemp("corpus") / "mini-pile", seed=0,
                              train_tokens=TEST_CORPUS_TOKENS, valid_docs=40)


@pytest.fixture(scope="session")
def tokenizer_dir(minipile, tmp_path_factory) -> Path:
    from model.tokens import train_bpe_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer") / "bpe"
    train_bpe_tokenizer(minipile, folder, vocab_size=512)
    return folder


@pytest.fixture(scope="session")
def token_store(minipile, tokenizer_dir, tmp_path_factory):
    from model.tokens import tokenize_corpus

    return tokenize_corpus(minipile, tokenizer_dir, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from model.tokens import load_tokenizer

    return load_tokenizer(tokenizer_dir)
