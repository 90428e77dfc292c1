"""Publish trained models as branches `model-index-N` of one Hub model repository, or of a local
folder that mirrors it (`<root>/main/`, `<root>/model-index-N/`).

Both targets hold the same files per branch and compare content by digest, so a rerun skips what
is already there, completes what an interruption left missing, and refuses to replace a branch
that holds a different model unless asked to.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import operator
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import yaml

from model.io import atomic_dir, atomic_write_json, canonical_json, file_digest

logger = logging.getLogger(__name__)

BRANCH_PREFIX = "model-index-"
MAIN_BRANCH = "main"
MANIFEST_NAME = ".publish-manifest.json"
SCORES_FILE = "eval_results.json"
CARD_FILE = "README.md"
CONFIG_FILE = "config.json"
TRAIN_CONFIG_FILE = "train_config.yaml"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# Top-level files of a trained folder that belong on a branch (checkpoints, optimizer state and
# anything hidden stay behind).
PUBLISHED_SUFFIXES = (".json", ".safetensors", ".yaml", ".yml", ".txt", ".model", ".jinja")
_COPY_CHUNK = 8 << 20

_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_MAX_REPO_PART = 96


class PublishConflict(RuntimeError):
    """A branch already holds different content for files we would publish."""

    def __init__(self, branch: str, paths: Sequence[str], where: str):
        self.branch = branch
        self.paths = tuple(paths)
        self.where = where
        super().__init__(
            f"branch {branch} of {where} already holds different content for {', '.join(self.paths)}; "
            "refusing to overwrite it (pass overwrite=True to replace it)"
        )


class MissingTokenError(ValueError):
    """No Hugging Face token was given to a HubTarget."""


@dataclass(frozen=True)
class PublishResult:
    branch: str
    revision: str  # Hub commit id, or the local mirror's content digest of the branch
    files: tuple[str, ...]  # every file this publish is responsible for
    uploaded: tuple[str, ...]  # the subset that had to be written
    skipped: bool  # True when the branch already held all of it


@dataclass(frozen=True)
class BundleFile:
    """One file to publish: on disk (`source`) or in memory (`content`)."""

    path: str
    sha256: str
    size: int
    source: Path | None = None
    content: bytes | None = None

    @classmethod
    def from_bytes(cls, path: str, content: bytes) -> BundleFile:
        return cls(path, hashlib.sha256(content).hexdigest(), len(content), content=content)

    @classmethod
    def from_file(cls, path: str, source: Path) -> BundleFile:
        return cls(path, file_digest(source), source.stat().st_size, source=source)

    def chunks(self) -> Iterator[bytes]:
        if self.content is not None:
            yield self.content
            return
        with open(self.source, "rb") as f:
            while block := f.read(_COPY_CHUNK):
                yield block

    def git_blob_id(self) -> str:
        """The id git gives this content (what the Hub reports for files not stored in LFS)."""
        h = hashlib.sha1(f"blob {self.size}\0".encode())
        for block in self.chunks():
            h.update(block)
        return h.hexdigest()


Bundle = dict[str, BundleFile]


class PublishTarget(Protocol):
    def sync_branch(self, branch: str, bundle: Bundle, *, replace_conflicting: bool, message: str) -> PublishResult: ...


# ---------------------------------------------------------------------------------------------
# Names and bundles


def validate_repo_id(repo_id: str) -> str:
    """Hub rules: `owner/name`, each of letters, digits, '-', '_', '.', no '--' or '..'."""
    problem = None
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        problem = "it must be 'owner/name'"
    else:
        for part in repo_id.split("/"):
            if not _REPO_PART.fullmatch(part):
                problem = "each part must use only letters, digits, '-', '_', '.' and not start or end with '-' or '.'"
            elif "--" in part or ".." in part:
                problem = "'--' and '..' are not allowed"
            elif len(part) > _MAX_REPO_PART:
                problem = f"each part has at most {_MAX_REPO_PART} characters"
            elif part.endswith(".git"):
                problem = "a name may not end with '.git'"
            if problem:
                break
    if problem:
        raise ValueError(f"repo_id {repo_id!r} is not a valid Hub repository id: {problem}")
    return repo_id


def branch_name(index: int) -> str:
    try:
        number = operator.index(index)
    except TypeError:
        number = None
    if number is None or isinstance(index, bool) or number < 1:
        raise ValueError(f"index must be a positive integer, got {index!r}")
    return f"{BRANCH_PREFIX}{number}"


def _is_published_name(name: str) -> bool:
    return not name.startswith(".") and name.endswith(PUBLISHED_SUFFIXES)


def scores_json(scores: Mapping[str, Any]) -> bytes:
    if not isinstance(scores, Mapping):
        raise ValueError(f"scores must be a dict of metric -> value, got {type(scores).__name__}")
    def plain(value: Any) -> Any:  # numpy scalars from a results table
        if hasattr(value, "item"):
            return value.item()
        raise TypeError(f"{type(value).__name__} is not JSON")

    try:
        text = json.dumps(scores, indent=2, sort_keys=True, allow_nan=False, default=plain)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores must be JSON with finite numbers ({exc}): {scores!r}") from None
    return (text + "\n").encode()


def model_bundle(model_dir: str | os.PathLike, scores: Mapping[str, Any] | None) -> Bundle:
    """The files of branch model-index-N: the trained folder's top-level files plus the scores."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model_dir {str(folder)!r} is not a folder")
    for required in (CONFIG_FILE, TRAIN_CONFIG_FILE):
        if not (folder / required).is_file():
            raise FileNotFoundError(f"model_dir {str(folder)!r} has no {required}")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(f"model_dir {str(folder)!r} has no weights ({' or '.join(WEIGHT_FILES)})")
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and _is_published_name(p.name))
    if scores is not None:
        names = [n for n in names if n != SCORES_FILE]
    bundle = {name: BundleFile.from_file(name, folder / name) for name in names}
    if scores is not None:
        bundle[SCORES_FILE] = BundleFile.from_bytes(SCORES_FILE, scores_json(scores))
    return bundle


def main_bundle(card_markdown: str, config: Mapping[str, Any]) -> Bundle:
    if not isinstance(card_markdown, str) or not card_markdown.strip():
        raise ValueError("card_markdown must be a non-empty string")
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    config_bytes = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    return {
        CARD_FILE: BundleFile.from_bytes(CARD_FILE, card_markdown.encode()),
        CONFIG_FILE: BundleFile.from_bytes(CONFIG_FILE, config_bytes),
    }


def _content_digest(digests: Mapping[str, str]) -> str:
    return hashlib.sha256(canonical_json(dict(sorted(digests.items()))).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Local mirror


def _copy_file(file: BundleFile, destination: Path) -> str:
    """Write one bundle file and return the sha256 of what was written."""
    h = hashlib.sha256()
    with open(destination, "wb") as out:
        for block in file.chunks():
            h.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def _link_or_copy(source: Path, destination: Path) -> None:
    # Unchanged files are hard-linked from the previous branch folder: no rewrite, same inode.
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


class LocalMirror:
    """A folder laid out like the Hub repository; each branch folder is replaced atomically."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalMirror({str(self.root)!r})"

    def branch_path(self, branch: str) -> Path:
        return self.root / branch

    def read_manifest(self, branch: str) -> dict | None:
        path = self.branch_path(branch) / MANIFEST_NAME
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def branches(self) -> list[str]:
        """Complete model branches (those with a manifest), by index."""
        if not self.root.is_dir():
            return []
        found = [
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and re.fullmatch(rf"{BRANCH_PREFIX}[1-9][0-9]*", p.name) and (p / MANIFEST_NAME).is_file()
        ]
        return sorted(found, key=lambda name: int(name[len(BRANCH_PREFIX) :]))

    def read_bundle(self, branch: str) -> Bundle:
        """The published files of a branch, checked against its manifest."""
        manifest = self.read_manifest(branch)
        if manifest is None:
            raise FileNotFoundError(f"{self.branch_path(branch)} is not a complete published branch (no {MANIFEST_NAME})")
        bundle = {}
        for name, recorded in sorted(manifest["files"].items()):
            file = BundleFile.from_file(name, self.branch_path(branch) / name)
            if file.sha256 != recorded["sha256"]:
                raise ValueError(f"{self.branch_path(branch) / name} changed since it was published (sha256 {file.sha256})")
            bundle[name] = file
        return bundle

    @contextlib.contextmanager
    def _branch_lock(self, branch: str) -> Iterator[None]:
        # One writer per branch, across threads and processes; staging folders left behind by a
        # killed writer can then be removed safely.
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{branch}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_stale_staging(self, branch: str) -> None:
        for pattern in (f".{branch}.*.tmp", f".{branch}.old-*"):
            for stale in self.root.glob(pattern):
                logger.info("removing %s left by an interrupted publish", stale)
                shutil.rmtree(stale, ignore_errors=True)

    def _existing_digests(self, folder: Path) -> dict[str, str] | None:
        if not folder.is_dir():
            return None
        manifest_path = folder / MANIFEST_NAME
        recorded = json.loads(manifest_path.read_text())["files"] if manifest_path.is_file() else {}
        digests = {}
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name == MANIFEST_NAME:
                continue
            entry = recorded.get(path.name)
            if entry is not None and entry["size"] == path.stat().st_size:
                digests[path.name] = entry["sha256"]
            else:  # a file the manifest does not vouch for: look at what is really there
                digests[path.name] = file_digest(path)
        return digests

    def sync_branch(self, branch: str, bundle: Bundle, *, replace_conflicting: bool, message: str) -> PublishResult:
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.branch_path(branch)
        with self._branch_lock(branch):
            self._remove_stale_staging(branch)
            existing = self._existing_digests(folder) or {}
            differing = [p for p, f in bundle.items() if p in existing and existing[p] != f.sha256]
            missing = [p for p in bundle if p not in existing]
            if differing and not replace_conflicting:
                raise PublishConflict(branch, differing, str(self.root))
            to_write = [p for p in bundle if p in differing or p in missing]
            final = {**existing, **{p: f.sha256 for p, f in bundle.items()}}
            revision = _content_digest(final)
            if not to_write and (folder / MANIFEST_NAME).is_file():
                return PublishResult(branch, revision, tuple(bundle), (), skipped=True)

            with atomic_dir(folder) as staging:
                for name in sorted(final):
                    if name in to_write:
                        written = _copy_file(bundle[name], staging / name)
                        if written != bundle[name].sha256:
                            raise ValueError(f"{bundle[name].source} changed while it was being published")
                    else:
                        _link_or_copy(folder / name, staging / name)
                manifest = {
                    "branch": branch,
                    "revision": revision,
                    "message": message,
                    "files": {
                        name: {"sha256": digest, "size": (staging / name).stat().st_size}
                        for name, digest in sorted(final.items())
                    },
                }
                atomic_write_json(staging / MANIFEST_NAME, manifest)
            logger.info("published %s to %s (%d file(s) written)", branch, folder, len(to_write))
            return PublishResult(branch, revision, tuple(bundle), tuple(to_write), skipped=False)


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub


def _transport_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            types.append(__import__(module_name).TransportError)
    return tuple(types)


_TRANSPORT_ERRORS = _transport_error_types()


def _is_transient(exc: BaseException) -> bool:
    """5xx, 429, connection errors and timeouts are worth retrying; other 4xx are not."""
    from huggingface_hub.errors import HfHubHTTPError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HfHubHTTPError) and getattr(exc, "response", None) is not None:
            status = exc.response.status_code
            return status >= 500 or status == 429
        if isinstance(exc, _TRANSPORT_ERRORS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def resolve_token(token: str | None) -> str:
    """The token argument, else the HF_TOKEN environment variable."""
    resolved = token or os.environ.get("HF_TOKEN") or None
    if not resolved:
        raise MissingTokenError(
            "no Hugging Face token: pass token=..., set the HF_TOKEN environment variable, "
            "or read it from a Prefect Secret block and pass its value"
        )
    return resolved


class HubTarget:
    """A Hub model repository; every network step is retried with exponential backoff."""

    def __init__(
        self,
        repo_id: str,
        token: str | None = None,
        private: bool = False,
        *,
        endpoint: str | None = None,
        max_attempts: int = 5,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 60.0,
    ):
        self.repo_id = validate_repo_id(repo_id)
        self.private = bool(private)
        self.endpoint = endpoint
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._connect(token)

    def _connect(self, token: str | None) -> None:
        from huggingface_hub import HfApi

        self._token = resolve_token(token)
        self._api = HfApi(endpoint=self.endpoint, token=self._token)

    def __repr__(self) -> str:
        return f"HubTarget({self.repo_id!r}, private={self.private})"

    # The token never travels in a pickle (Prefect hashes and persists task inputs); an unpickled
    # target reads HF_TOKEN where it lands.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_token", "_api")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._connect(None)

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _with_retries(self, what: str, attempt: Callable[[], PublishResult]) -> PublishResult:
        for number in range(1, self.max_attempts + 1):
            try:
                return attempt()
            except Exception as exc:
                if number == self.max_attempts or not _is_transient(exc):
                    raise
                delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (number - 1))
                logger.warning(
                    "%s: transient error (%s); attempt %d of %d, retrying in %.1fs",
                    what,
                    self._redact(f"{type(exc).__name__}: {exc}".splitlines()[0]),
                    number,
                    self.max_attempts,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _read_branch(self, branch: str) -> tuple[str, dict[str, Any]] | None:
        """(head commit, files by path) of a branch, or None when it does not exist."""
        from huggingface_hub.errors import RevisionNotFoundError

        try:
            info = self._api.model_info(self.repo_id, revision=branch, files_metadata=True)
        except RevisionNotFoundError:
            return None
        return info.sha, {sibling.rfilename: sibling for sibling in info.siblings or []}

    def _create_branch(self, branch: str) -> None:
        # Start from the repository's first commit so the branch holds only what we publish
        # (main's config.json would otherwise look like a conflicting file).
        first_commit = self._api.list_repo_commits(self.repo_id, revision=MAIN_BRANCH)[-1].commit_id
        self._api.create_branch(self.repo_id, branch=branch, revision=first_commit, exist_ok=True)

    @staticmethod
    def _same_content(remote: Any, local: BundleFile) -> bool:
        if remote.lfs is not None:
            return remote.lfs.sha256 == local.sha256
        return remote.blob_id == local.git_blob_id()

    def sync_branch(self, branch: str, bundle: Bundle, *, replace_conflicting: bool, message: str) -> PublishResult:
        tried_upload: list[str] = []

        def attempt() -> PublishResult:
            from huggingface_hub import CommitOperationAdd
            from huggingface_hub.errors import RepositoryNotFoundError

            try:
                state = self._read_branch(branch)
            except RepositoryNotFoundError:
                self._api.create_repo(self.repo_id, repo_type="model", private=self.private, exist_ok=True)
                state = self._read_branch(branch) if branch == MAIN_BRANCH else None
            if state is None:
                self._create_branch(branch)
                head, remote = None, {}
            else:
                head, remote = state
            differing = [p for p, f in bundle.items() if p in remote and not self._same_content(remote[p], f)]
            if differing and not replace_conflicting:
                raise PublishConflict(branch, differing, f"Hub repository {self.repo_id}")
            to_upload = [p for p in bundle if p not in remote or p in differing]
            if not to_upload:
                # An earlier attempt may have committed before its answer was lost.
                return PublishResult(branch, head, tuple(bundle), tuple(tried_upload), skipped=not tried_upload)
            tried_upload[:] = to_upload
            operations = [
                CommitOperationAdd(
                    path_in_repo=p,
                    path_or_fileobj=str(bundle[p].source) if bundle[p].source is not None else bundle[p].content,
                )
                for p in to_upload
            ]
            commit = self._api.create_commit(self.repo_id, operations, commit_message=message, revision=branch)
            logger.info("published %s to %s: %d file(s), commit %s", branch, self.repo_id, len(to_upload), commit.oid)
            return PublishResult(branch, commit.oid, tuple(bundle), tuple(to_upload), skipped=False)

        return self._with_retries(f"publish {branch} to {self.repo_id}", attempt)


# ---------------------------------------------------------------------------------------------
# Entry points


def publish_model(
    target: PublishTarget,
    index: int,
    model_dir: str | os.PathLike,
    scores: Mapping[str, Any] | None,
    *,
    overwrite: bool = False,
) -> PublishResult:
    """Put one trained model (and its scores) on branch model-index-<index>."""
    branch = branch_name(index)
    bundle = model_bundle(model_dir, scores)
    return target.sync_branch(branch, bundle, replace_conflicting=overwrite, message=f"Publish {branch}")


def update_main(target: PublishTarget, card_markdown: str, config: Mapping[str, Any]) -> PublishResult:
    """Write README.md and config.json to main; main may change as indices finish."""
    bundle = main_bundle(card_markdown, config)
    return target.sync_branch(MAIN_BRANCH, bundle, replace_conflicting=True, message="Update model card and config")


def push_mirror(
    mirror_root: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    *,
    private: bool = False,
    overwrite: bool = False,
    target: HubTarget | None = None,
) -> list[PublishResult]:
    """Push every complete branch of a local mirror, then its main, to the Hub."""
    mirror = LocalMirror(mirror_root)
    validate_repo_id(repo_id)
    branches = mirror.branches()
    has_main = (mirror.branch_path(MAIN_BRANCH) / MANIFEST_NAME).is_file()
    if not branches and not has_main:
        raise FileNotFoundError(f"mirror {str(mirror.root)!r} holds no published branch (no {BRANCH_PREFIX}N/ or main/)")
    target = target or HubTarget(repo_id, token=token, private=private)
    results = []
    for branch in branches:
        results.append(
            target.sync_branch(branch, mirror.read_bundle(branch), replace_conflicting=overwrite, message=f"Publish {branch}")
        )
    if has_main:
        bundle = mirror.read_bundle(MAIN_BRANCH)
        results.append(target.sync_branch(MAIN_BRANCH, bundle, replace_conflicting=True, message="Update model card and config"))
    return results


# ---------------------------------------------------------------------------------------------
# Model card


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        text = "" if value is None else str(value).lower()
    elif isinstance(value, float):
        text = "" if math.isnan(value) else (f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 else f"{value:.4g}")
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_format_value(v) for v in value)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Scalars and lists of scalars, nested keys joined with dots; bulky lists are summarised."""
    rows = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in value):
            rows.append((name, f"({len(value)} entries)"))
        else:
            rows.append((name, value))
    return rows


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_format_value(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_format_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _row_index(row: Mapping[str, Any]) -> int:
    value = row.get("index", row.get("model_index"))
    try:
        return int(value)
    except (TypeError, ValueError):
        return sys.maxsize


def render_model_card(sweep: Mapping[str, Any], results_rows: Sequence[Mapping[str, Any]]) -> str:
    """The README of main: what the suite is, how it was trained, how to load it, its results."""
    repo_id = sweep.get("repo_id") or sweep.get("hub_repo") or "<owner>/<repo>"
    num_models = sweep.get("num_models") or sweep.get("num_configs") or len(results_rows)
    model_name = sweep.get("model_name") or sweep.get("model") or sweep.get("preset")
    title = sweep.get("title") or sweep.get("name") or str(repo_id).split("/")[-1]

    front = {"library_name": "transformers", "tags": ["regmix", "data-mixture", "llama", "causal-lm"]}
    if sweep.get("license"):
        front["license"] = sweep["license"]
    if sweep.get("dataset"):
        front["datasets"] = [sweep["dataset"]]
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {title}", ""]
    lines += [
        f"A RegMix random-mixture suite (Liu et al. 2024, arXiv 2407.01492): {num_models} language models"
        + (f" ({model_name})" if model_name else "")
        + ", each trained on its own random mixture of the data domains, to study how the mixture"
        " shapes validation loss and downstream scores. Every model lives on its own branch"
        f" `{BRANCH_PREFIX}N` (N = 1..{num_models}) with its weights, config, tokenizer,"
        f" `{TRAIN_CONFIG_FILE}` (its mixture) and `{SCORES_FILE}`; `main` holds this card.",
        "",
        "## Training",
        "",
    ]
    settings = _flatten(sweep)
    lines.append(_markdown_table(["setting", "value"], settings) if settings else "No settings recorded.")
    lines += [
        "",
        "## Loading a model",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", revision="{BRANCH_PREFIX}7")',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision="{BRANCH_PREFIX}7")',
        "```",
        "",
        "## Results",
        "",
    ]
    if results_rows:
        columns: list[str] = []
        for row in results_rows:
            columns += [c for c in row if c not in columns]
        ordered = sorted(results_rows, key=_row_index)
        lines.append(f"{len(results_rows)} of {num_models} models finished.")
        lines.append("")
        lines.append(_markdown_table(columns, [[row.get(c) for c in columns] for row in ordered]))
    else:
        lines.append(f"No model has finished yet (0 of {num_models}).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line: regmix publish --mirror DIR --repo ID


def publish_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="regmix publish",
        description="Push a local mirror (main/ and model-index-N/ folders) to a Hub model repository. "
        "Branches that already hold the same files are skipped. The token comes from HF_TOKEN.",
    )
    parser.add_argument("--mirror", required=True, help="mirror folder, e.g. runs/<sweep>/hub/<repo>")
    parser.add_argument("--repo", required=True, help="Hub repository id, owner/name")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--overwrite", action="store_true", help="replace branches that hold different files")
    args = parser.parse_args(argv)
    from huggingface_hub.errors import HfHubHTTPError

    try:
        results = push_mirror(args.mirror, args.repo, private=args.private, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, PublishConflict, HfHubHTTPError) as exc:
        print(f"regmix publish: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ValueError, FileNotFoundError)) else 1
    for result in results:
        state = "unchanged" if result.skipped else f"uploaded {len(result.uploaded)} file(s)"
        print(f"{result.branch}: {state} @ {result.revision}")
    return 0


def main_cli(argv: list[str] | None = None) -> int:
    return publish_command(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main_cli())
