"""Tokenizer training and bulk tokenisation into the token cache, on a small real mini-pile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from model.corpus import list_files, iter_documents, write_documents
from model.domains import DOMAINS
from model.minipile import generate_mini_pile
from model.tokens import (
    EOS_TOKEN,
    TokenStore,
    token_dtype,
    tokenize_corpus,
    train_bpe_tokenizer,
)

VOCAB = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_mini_pile(tmp_path_factory.mktemp("mp") / "corpus", seed=3, train_tokens=30_000, valid_docs=4)


@pytest.fixture(scope="module")
def tokenizer_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "bpe"
    train_bpe_tokenizer(corpus, out, vocab_size=VOCAB)
    return out


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="module")
def store(corpus, tokenizer, tmp_path_factory) -> TokenStore:
    return tokenize_corpus(corpus, tokenizer, tmp_path_factory.mktemp("cache"))


def _stats(folder: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_tokenizer_round_trips_through_auto_tokenizer(corpus, tokenizer):
    assert len(tokenizer) == VOCAB
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token == EOS_TOKEN
    assert tokenizer.convert_tokens_to_ids(EOS_TOKEN) == tokenizer.eos_token_id
    texts = [d for domain in ("github", "dm_mathematics", "ubuntu_irc") for d in iter_documents(
        list_files(corpus, domain, "valid")[0])] + ["ünïcode ✓ never seen in training\n\ttabs"]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert len(ids) < len(text.encode("utf-8"))  # merges were learned: fewer tokens than bytes
    assert tokenizer(EOS_TOKEN, add_special_tokens=False)["input_ids"] == [tokenizer.eos_token_id]


def test_tokenizer_training_is_deterministic_and_reused(corpus, tokenizer_dir, tmp_path):
    again = tmp_path / "again"
    train_bpe_tokenizer(corpus, again, vocab_size=VOCAB)
    assert (again / "tokenizer.json").read_bytes() == (tokenizer_dir / "tokenizer.json").read_bytes()
    before = _stats(again)
    train_bpe_tokenizer(corpus, again, vocab_size=VOCAB)
    assert _stats(again) == before  # same corpus and vocab size: the finished folder is reused


def test_tokenizer_bad_input_leaves_nothing(corpus, tmp_path):
    with pytest.raises(ValueError, match="vocab_size: expected an integer in \\[257, 2\\*\\*20\\].*got 100"):
        train_bpe_tokenizer(corpus, tmp_path / "bpe", vocab_size=100)
    with pytest.raises(FileNotFoundError, match="corpus root .* does not exist"):
        train_bpe_tokenizer(tmp_path / "missing", tmp_path / "bpe")
    assert list(tmp_path.iterdir()) == []


def test_token_files_equal_direct_tokenisation(corpus, tokenizer, store):
    assert store.dtype == np.uint16 and store.vocab_size == VOCAB
    assert store.eos_id == tokenizer.eos_token_id and store.domains == DOMAINS
    for domain in DOMAINS:
        for split in ("train", "valid"):
            docs = [d for p in list_files(corpus, domain, split) for d in iter_documents(p)]
            expected = [t for d in docs for t in tokenizer.encode(d, add_special_tokens=False) + [tokenizer.eos_token_id]]
            tokens = store.tokens(domain, split)
            assert tokens.ndim == 1 and tokens.dtype == np.uint16
            assert tokens.tolist() == expected, (domain, split)
            assert store.num_tokens(domain, split) == len(expected)
            assert store.num_documents(domain, split) == len(docs) == int((tokens == store.eos_id).sum())
    with pytest.raises(ValueError, match="read-only"):
        store.tokens("pile_cc", "train")[0] = 1
    meta = json.loads((store.path / "meta.json").read_text())
    assert meta["key"] == store.key == store.path.name and meta["dtype"] == "uint16"


def test_second_call_reuses_the_key_folder(corpus, tokenizer, store):
    before = _stats(store.path)
    again = tokenize_corpus(corpus, tokenizer, store.path.parent.parent)
    assert again.key == store.key and _stats(again.path) == before


def test_changed_corpus_gets_a_new_key(corpus, tokenizer, store, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    path = list_files(copy, "enron_emails", "valid")[0]
    write_documents(path, list(iter_documents(path)) + ["one more document"])
    changed = tokenize_corpus(copy, tokenizer, tmp_path / "cache")
    assert changed.key != store.key
    assert changed.num_documents("enron_emails", "valid") == store.num_documents("enron_emails", "valid") + 1
    assert changed.tokens("pile_cc", "train").tolist() == store.tokens("pile_cc", "train").tolist()


def test_corrupt_line_fails_and_leaves_no_key_folder(corpus, tokenizer, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    path = list_files(copy, "philpapers", "valid")[0]
    path.write_bytes(path.read_bytes() + b'{"text": "cut off\n')
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"philpapers-0-0.jsonl:\d+: corrupt JSON line"):
        tokenize_corpus(copy, tokenizer, cache)
    assert list((cache / "tokens").iterdir()) == []


def test_token_store_errors(store, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete token folder"):
        TokenStore(tmp_path)
    with pytest.raises(ValueError, match="domain: 'pile-cc' is not in this token store"):
        store.tokens("pile-cc", "train")
    with pytest.raises(ValueError, match="split: expected one of .* got 'test'"):
        store.num_tokens("pile_cc", "test")
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


def test_hub_tokenizer_offline_gives_a_clear_error(tmp_path):
    code = "from model.tokens import load_tokenizer\nload_tokenizer('EleutherAI/gpt-neox-20b')\n"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode != 0
    assert "load_tokenizer: 'EleutherAI/gpt-neox-20b' is not a local folder" in done.stderr
