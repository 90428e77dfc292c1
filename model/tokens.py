"""Tokenizer and bulk tokenisation: each (corpus, tokenizer) pair is tokenised once into flat files.

    <cache_root>/tokens/<key>/<domain>.<split>.bin   one token array per domain and split, EOS after each doc
    <cache_root>/tokens/<key>/meta.json              dtype, eos_id, vocab_size, token counts, key

The key hashes the corpus files (names, sizes, digests) and the tokenizer's serialized JSON, so a
changed file or tokenizer gets a new folder and an unchanged pair reuses the finished one.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .corpus import SPLITS, iter_domain_documents, list_files, validate_corpus
from .domains import DOMAINS, check_domain
from .io import atomic_dir, atomic_write_json, config_hash, file_digest

EOS_TOKEN = "<|endoftext|>"
TOKEN_FORMAT_VERSION = 1
ENCODE_CHUNK_DOCS = 2048  # documents per batch call: large enough for the Rust thread pool, small in memory
REAL_TOKENIZER = "EleutherAI/gpt-neox-20b"


def _corpus_documents(corpus_root: Path, split: str) -> Iterator[str]:
    for domain in DOMAINS:
        yield from iter_domain_documents(corpus_root, domain, split)


def corpus_fingerprint(corpus_root: str | os.PathLike, domains: Sequence[str] = DOMAINS) -> list:
    """(relative name, size, sha256) of every file of `domains`: what a cache key must see change."""
    root = Path(corpus_root)
    return [[f"{split}/{path.name}", path.stat().st_size, file_digest(path)]
            for domain in domains for split in SPLITS for path in list_files(root, domain, split)]


def train_bpe_tokenizer(corpus_root: str | os.PathLike, out_dir: str | os.PathLike, vocab_size: int = 2048):
    """A byte-level BPE trained on the train split, saved so AutoTokenizer.from_pretrained(out_dir) works offline.

    An existing folder trained on the same corpus files with the same vocab_size is reused.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or not 257 <= vocab_size <= 1 << 20:
        raise ValueError(f"vocab_size: expected an integer in [257, 2**20] (256 bytes + EOS), got {vocab_size!r}")
    corpus_root, out_dir = Path(corpus_root), Path(out_dir)
    validate_corpus(corpus_root)
    provenance = {"corpus": corpus_fingerprint(corpus_root), "vocab_size": vocab_size, "format": TOKEN_FORMAT_VERSION}
    provenance_path = out_dir / "bpe_training.json"
    if provenance_path.is_file() and json.loads(provenance_path.read_text()) == json.loads(json.dumps(provenance)):
        return load_tokenizer(out_dir)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS_TOKEN], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus_documents(corpus_root, "train"), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN, unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN, model_max_length=2048,
    )
    with atomic_dir(out_dir) as tmp:
        fast.save_pretrained(tmp)
        atomic_write_json(tmp / "bpe_training.json", provenance)
    return fast


def load_tokenizer(name_or_path: str | os.PathLike):
    """AutoTokenizer.from_pretrained with a clear error when a Hub name cannot be reached."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except OSError as e:
        if Path(name_or_path).exists():
            raise
        raise OSError(
            f"load_tokenizer: {str(name_or_path)!r} is not a local folder and could not be fetched from the "
            f"Hugging Face Hub (offline or unknown name?). Use a local tokenizer folder, e.g. one made by "
            f"train_bpe_tokenizer, or run online ({type(e).__name__})"
        ) from e
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ValueError(f"load_tokenizer: {str(name_or_path)!r} has no fast (tokenizers) backend")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"load_tokenizer: {str(name_or_path)!r} has no eos token")
    return tokenizer


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def _tokenizer_identity(tokenizer) -> tuple[str, int, int]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"tokenizer: expected a fast tokenizer with a backend_tokenizer, got {type(tokenizer).__name__}")
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer: has no eos_token_id; documents need an EOS")
    return backend.to_str(), int(tokenizer.eos_token_id), len(tokenizer)


def token_cache_key(corpus_root: str | os.PathLike, tokenizer, domains: Sequence[str] = DOMAINS) -> str:
    serialized, eos_id, vocab_size = _tokenizer_identity(tokenizer)
    return config_hash({"corpus": corpus_fingerprint(corpus_root, domains), "tokenizer": serialized,
                        "eos_id": eos_id, "vocab_size": vocab_size, "format": TOKEN_FORMAT_VERSION})


def _write_token_file(path: Path, documents: Iterator[str], backend, eos_id: int, dtype: np.dtype) -> tuple[int, int]:
    """Tokenise `documents` in batches, append EOS to each, stream to `path`; returns (tokens, documents).

    The tokenizer releases the GIL, so one batch is encoded on a helper thread while this one reads
    and parses the next batch and writes the previous: reading and writing hide behind encoding.
    """
    n_tokens = n_docs = 0

    def encode(chunk: list[str]):
        return backend.encode_batch_fast(chunk, add_special_tokens=False)

    with open(path, "wb") as f, ThreadPoolExecutor(max_workers=1) as encoder:
        pending = None
        for chunk in _batches(documents, ENCODE_CHUNK_DOCS):
            submitted = encoder.submit(encode, chunk)
            if pending is not None:
                n_tokens += _write_encodings(f, pending.result(), eos_id, dtype)
            pending, n_docs = submitted, n_docs + len(chunk)
        if pending is not None:
            n_tokens += _write_encodings(f, pending.result(), eos_id, dtype)
    return n_tokens, n_docs


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_encodings(f, encodings, eos_id: int, dtype: np.dtype) -> int:
    flat: list[int] = []
    for encoding in encodings:
        flat += encoding.ids
        flat.append(eos_id)
    np.asarray(flat, dtype=dtype).tofile(f)
    return len(flat)


def tokenize_corpus(corpus_root: str | os.PathLike, tokenizer, cache_root: str | os.PathLike,
                    domains: Sequence[str] = DOMAINS) -> "TokenStore":
    """Tokenise every (domain, split) of the corpus once; an existing complete key folder is reused."""
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    domains = tuple(check_domain(d, "domains") for d in domains)
    corpus_root = Path(corpus_root)
    validate_corpus(corpus_root, domains)
    _, eos_id, vocab_size = _tokenizer_identity(tokenizer)
    key = token_cache_key(corpus_root, tokenizer, domains)
    key_dir = Path(cache_root) / "tokens" / key
    if (key_dir / "meta.json").is_file():
        return TokenStore(key_dir)

    dtype = token_dtype(vocab_size)
    backend = tokenizer.backend_tokenizer
    counts, documents = {}, {}
    with atomic_dir(key_dir) as tmp:
        for domain in domains:
            for split in SPLITS:
                name = f"{domain}.{split}"
                counts[name], documents[name] = _write_token_file(
                    tmp / f"{name}.bin", iter_domain_documents(corpus_root, domain, split), backend, eos_id, dtype)
        atomic_write_json(tmp / "meta.json", {
            "key": key, "dtype": dtype.name, "eos_id": eos_id, "vocab_size": vocab_size, "domains": list(domains),
            "counts": counts, "documents": documents, "corpus_root": str(corpus_root.resolve()),
            "tokenizer": getattr(tokenizer, "name_or_path", ""), "format": TOKEN_FORMAT_VERSION,
        })
    return TokenStore(key_dir)


class TokenStore:
    """Read-only view of one tokenised key folder: 1-D memmaps of token ids per (domain, split)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"TokenStore: {str(self.path)!r} is not a complete token folder (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        self.key: str = self.meta["key"]
        self.dtype = np.dtype(self.meta["dtype"])
        self.eos_id: int = int(self.meta["eos_id"])
        self.vocab_size: int = int(self.meta["vocab_size"])
        self.domains: tuple[str, ...] = tuple(self.meta["domains"])

    def _name(self, domain: str, split: str) -> str:
        if domain not in self.domains:
            raise ValueError(f"domain: {domain!r} is not in this token store (has {', '.join(self.domains)})")
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        return f"{domain}.{split}"

    def num_tokens(self, domain: str, split: str) -> int:
        return int(self.meta["counts"][self._name(domain, split)])

    def num_documents(self, domain: str, split: str) -> int:
        return int(self.meta["documents"][self._name(domain, split)])

    def tokens(self, domain: str, split: str) -> np.ndarray:
        name = self._name(domain, split)
        count = int(self.meta["counts"][name])
        path = self.path / f"{name}.bin"
        if path.stat().st_size != count * self.dtype.itemsize:
            raise ValueError(f"TokenStore: {path} holds {path.stat().st_size} bytes, meta.json says {count} tokens")
        return np.memmap(path, dtype=self.dtype, mode="r", shape=(count,))

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r}, key={self.key!r}, dtype={self.dtype.name}, vocab_size={self.vocab_size})"
