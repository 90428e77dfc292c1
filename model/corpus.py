"""The RegMix-Data layout on disk: read, validate and download it.

    <root>/train/{domain}-{shard}-{id}.jsonl[.gz|.zst]
    <root>/valid/{domain}-0-{id}.jsonl[.gz|.zst]

One JSON object with a string `text` field per line. Domain names hold underscores and never
'-', so a strict regex splits a file name unambiguously.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

import zstandard

from .domains import DOMAINS, check_domain
from .io import atomic_write_bytes

SPLITS = ("train", "valid")
SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")
DEFAULT_REPO_ID = "sail/regmix-data-sample"

FILE_NAME_RE = re.compile(
    r"^(?P<domain>[a-z0-9]+(?:_[a-z0-9]+)*)-(?P<shard>\d+)-(?P<id>\d+)\.jsonl(?P<compression>\.gz|\.zst)?$"
)


def parse_file_name(name: str) -> tuple[str, int, int]:
    """(domain, shard, id) of a corpus file name; ValueError if it does not follow the layout."""
    match = FILE_NAME_RE.match(name)
    if match is None:
        raise ValueError(
            f"file name {name!r} does not follow the layout {{domain}}-{{shard}}-{{id}}.jsonl[.gz|.zst]"
        )
    return match["domain"], int(match["shard"]), int(match["id"])


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    return split


def _is_corpus_file_name(name: str) -> bool:
    return name.endswith(SUFFIXES) and not name.startswith(".")


def _split_files(folder: Path) -> dict[str, list[tuple[int, int, Path]]]:
    """Every layout file of one split folder, grouped by domain; a misnamed .jsonl file is an error."""
    by_domain: dict[str, list[tuple[int, int, Path]]] = {}
    for path in folder.iterdir():
        if not path.is_file() or not _is_corpus_file_name(path.name):
            continue
        domain, shard, file_id = parse_file_name(path.name)
        if folder.name == "valid" and shard != 0:
            raise ValueError(f"{path}: valid files must have shard 0, got shard {shard}")
        by_domain.setdefault(domain, []).append((shard, file_id, path))
    return by_domain


def _require_split_folder(root: Path, split: str) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"corpus root {str(root)!r} does not exist or is not a folder")
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus {str(root)!r} has no {split}/ folder (expected {folder})")
    return folder


def list_files(root: str | os.PathLike, domain: str, split: str) -> list[Path]:
    """The files of one domain and split, ordered by (shard, id)."""
    check_domain(domain)
    _check_split(split)
    folder = _require_split_folder(Path(root), split)
    entries = _split_files(folder).get(domain, [])
    return [path for _, _, path in sorted(entries, key=lambda e: (e[0], e[1], e[2].name))]


def _open_binary(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        raw = open(path, "rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(path, "rb")


def iter_documents(path: str | os.PathLike) -> Iterator[str]:
    """The `text` of every line of one layout file, decompressing by suffix; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist")
    count = 0
    with _open_binary(path) as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{line_number}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_number}: corrupt JSON line ({e.msg})") from None
            if not isinstance(obj, dict) or "text" not in obj:
                raise ValueError(f"{path}:{line_number}: JSON object has no 'text' field")
            text = obj["text"]
            if not isinstance(text, str):
                raise ValueError(f"{path}:{line_number}: 'text' must be a string, got {type(text).__name__}")
            count += 1
            yield text
    if count == 0:
        raise ValueError(f"{path}: empty corpus file (no documents)")


def iter_domain_documents(root: str | os.PathLike, domain: str, split: str) -> Iterator[str]:
    for path in list_files(root, domain, split):
        yield from iter_documents(path)


def encode_documents(texts: Iterable[str], compression: str = "") -> bytes:
    """The bytes of a layout file holding `texts`; compression is '', '.gz' or '.zst'."""
    payload = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode("utf-8")
    if compression == ".gz":
        return gzip.compress(payload, mtime=0)  # mtime 0: same documents, same bytes
    if compression == ".zst":
        return zstandard.ZstdCompressor(level=3).compress(payload)
    if compression:
        raise ValueError(f"compression: expected '', '.gz' or '.zst', got {compression!r}")
    return payload


def write_documents(path: str | os.PathLike, texts: Iterable[str]) -> Path:
    """Write a layout file atomically; the suffix of `path` picks the compression."""
    path = Path(path)
    parse_file_name(path.name)
    compression = "".join(s for s in (".gz", ".zst") if path.name.endswith(s))
    return atomic_write_bytes(path, encode_documents(texts, compression))


def validate_corpus(root: str | os.PathLike, domains: Sequence[str] = DOMAINS, deep: bool = False) -> dict:
    """Check that every domain has non-empty train and valid files; a summary of files and bytes.

    Cheap by default (names and sizes only); deep=True also parses every line.
    """
    root = Path(root)
    for domain in domains:
        check_domain(domain, "domains")
    summary: dict = {"root": str(root), "domains": {}, "total_files": 0, "total_bytes": 0}
    for split in SPLITS:
        folder = _require_split_folder(root, split)
        by_domain = _split_files(folder)
        for domain in domains:
            entries = by_domain.get(domain)
            if not entries:
                raise FileNotFoundError(f"domain {domain!r} has no {split} file in {folder}")
            paths = [path for _, _, path in sorted(entries, key=lambda e: (e[0], e[1], e[2].name))]
            sizes = [path.stat().st_size for path in paths]
            for path, size in zip(paths, sizes):
                if size == 0:
                    raise ValueError(f"domain {domain!r}: empty file {path} in {split}/")
            record = {"files": len(paths), "bytes": sum(sizes)}
            if deep:
                record["documents"] = sum(sum(1 for _ in iter_documents(p)) for p in paths)
            summary["domains"].setdefault(domain, {})[split] = record
            summary["total_files"] += len(paths)
            summary["total_bytes"] += record["bytes"]
    return summary


def regmix_allow_patterns(domains: Sequence[str] | None = None) -> list[str]:
    """Hub file patterns that select exactly the train and valid files of `domains` (all if None)."""
    chosen = DOMAINS if domains is None else tuple(check_domain(d, "domains") for d in domains)
    if not chosen:
        raise ValueError("domains: empty list; pass None for all domains")
    # '-' after the name: no domain name is a prefix of another's files.
    return [f"{split}/{domain}-*" for domain in chosen for split in SPLITS]


def download_regmix_data(
    local_dir: str | os.PathLike,
    repo_id: str = DEFAULT_REPO_ID,
    domains: Sequence[str] | None = None,
    token: str | None = None,
) -> Path:
    """Download the asked domains of a RegMix-Data dataset repository into local_dir, then validate it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    patterns = regmix_allow_patterns(domains)
    try:
        snapshot_download(
            repo_id=repo_id, repo_type="dataset", local_dir=local_dir, allow_patterns=patterns, token=token
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError) as e:
        raise ConnectionError(
            f"download_regmix_data: cannot fetch dataset {repo_id!r} from the Hugging Face Hub "
            f"({type(e).__name__}); the Hub is unreachable or HF_HUB_OFFLINE is set. "
            f"Run online, or use a local corpus (e.g. model.minipile.generate_mini_pile)"
        ) from e
    validate_corpus(local_dir, DOMAINS if domains is None else tuple(domains))
    return Path(local_dir)


def download_command(argv: list[str]) -> int:
    """`regmix download`: fetch sail/regmix-data(-sample) into a folder the sweep can point at."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="regmix download", description=download_regmix_data.__doc__)
    parser.add_argument("--local-dir", required=True)
    parser.add_argument("--repo", default=DEFAULT_REPO_ID, help="sail/regmix-data-sample (5B tokens) or sail/regmix-data")
    parser.add_argument("--domains", type=lambda s: [d for d in s.split(",") if d], default=None)
    args = parser.parse_args(argv)
    try:
        folder = download_regmix_data(args.local_dir, args.repo, args.domains, token=os.environ.get("HF_TOKEN"))
    except (ConnectionError, ValueError, FileNotFoundError) as exc:
        print(f"regmix download: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0
