"""A sweep as data: its resolved config, where every output lives, and its results table.

The sweep folder is named by a hash of everything that decides the trained weights (number of
models, preset, corpus, tokenizer, seeds), so two sweeps with different configs never share
files and a rerun of the same config finds its finished work:

    <output_root>/<name>-<hash>/
      sweep.json                         the resolved config
      mixtures/model-index-N.train_config.yaml
      models/model-index-N/              checkpoints/, final/ (HF folder), train_result.json, eval.json
      hub/                               the local Hub mirror: main/, model-index-N/
      results.parquet, results.csv
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .domains import REGMIX_ORDER, check_domain, loss_column, train_key
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, config_hash
from .mixture import Mixture, SamplerConfig, read_train_config, sample_mixtures, write_train_config
from .presets import PRESETS, Preset, get_preset

EMBEDDED_CORPUS = "mini-pile"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class EvalSettings:
    tasks: tuple[str, ...] = ()  # lm-eval task names; () means none beyond validation loss
    shots: tuple[int, ...] = (0,)
    limit: int | None = None  # documents per task; None = the full set
    # Domains whose generated tasks (multiple choice + rolling perplexity on the corpus's own
    # valid split) are scored: downstream signal that depends on the mixture, on any corpus.
    corpus_tasks: tuple[str, ...] = ("pile_cc", "wikipedia_en", "github", "dm_mathematics")


@dataclass(frozen=True)
class SweepConfig:
    n_models: int = 64
    preset: str = "demo"
    steps: int | None = None  # overrides the preset's step count (quick runs, CI)
    corpus: str = EMBEDDED_CORPUS  # "mini-pile" or a folder in the RegMix-Data layout
    corpus_seed: int = 0  # mini-pile only
    corpus_tokens: int | None = None  # mini-pile size; None = the generator's default
    tokenizer: str | None = None  # None: the preset's ("bpe:<vocab>" trains one on the corpus)
    sampler_seed: int = 42
    train_seed: int = 0
    name: str = "regmix"
    output_root: str = "runs"
    eval: EvalSettings = field(default_factory=EvalSettings)

    # --- validation: every field checked before anything starts -------------------------
    def validate(self) -> "SweepConfig":
        _positive_int("n_models", self.n_models)
        if self.preset not in PRESETS:
            raise ValueError(f"preset: unknown preset {self.preset!r}; known presets: {', '.join(PRESETS)}")
        if self.steps is not None:
            _positive_int("steps", self.steps)
        for name in ("corpus_seed", "sampler_seed", "train_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
        if self.corpus_tokens is not None:
            _positive_int("corpus_tokens", self.corpus_tokens)
        if self.corpus != EMBEDDED_CORPUS:
            root = Path(self.corpus)
            if not root.is_dir():
                raise FileNotFoundError(f"corpus: folder {self.corpus!r} does not exist (or use {EMBEDDED_CORPUS!r})")
            from .corpus import validate_corpus

            validate_corpus(root)
        if not _NAME.match(str(self.name)):
            raise ValueError(f"name: {self.name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        if not str(self.output_root).strip():
            raise ValueError(f"output_root: empty path {self.output_root!r}")
        tokenizer = self.resolved_tokenizer()
        if tokenizer.startswith("bpe:"):
            _positive_int("tokenizer vocab", _int_or(tokenizer[4:], "tokenizer", tokenizer))
        if not isinstance(self.eval.shots, tuple) or not self.eval.shots or any(
            not isinstance(s, int) or s < 0 for s in self.eval.shots
        ):
            raise ValueError(f"eval_shots: must be a non-empty list of non-negative integers, got {self.eval.shots!r}")
        if self.eval.limit is not None:
            _positive_int("eval_limit", self.eval.limit)
        for domain in self.eval.corpus_tasks:
            check_domain(domain, "corpus_tasks")
        return self

    def validate_indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(1, self.n_models + 1))
        if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
            raise ValueError(f"indices: must be a list of model indices, got {indices!r}")
        out = []
        for i in indices:
            if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= self.n_models:
                raise ValueError(f"indices: {i!r} is out of range 1..{self.n_models}")
            if i not in out:
                out.append(i)
        if not out:
            raise ValueError("indices: empty list; leave it unset to run every index")
        return sorted(out)

    # --- resolved values ---------------------------------------------------------------
    def resolved_tokenizer(self) -> str:
        return self.tokenizer or get_preset(self.preset).tokenizer

    def resolved_preset(self) -> Preset:
        preset = get_preset(self.preset)
        return preset.with_overrides(steps=self.steps) if self.steps else preset

    def identity(self) -> dict:
        """What decides the trained weights; its hash names the sweep folder."""
        return {
            "n_models": self.n_models,
            "preset": self.resolved_preset().to_dict(),
            "corpus": self.corpus if self.corpus != EMBEDDED_CORPUS else
            {"mini-pile": {"seed": self.corpus_seed, "tokens": self.corpus_tokens}},
            "tokenizer": self.resolved_tokenizer(),
            "sampler_seed": self.sampler_seed,
            "train_seed": self.train_seed,
        }

    def hash(self) -> str:
        return config_hash(self.identity())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        data = dict(data)
        ev = data.pop("eval", None) or {}
        ev = EvalSettings(
            tasks=tuple(ev.get("tasks", ())), shots=tuple(ev.get("shots", (0,))),
            limit=ev.get("limit"), corpus_tasks=tuple(ev.get("corpus_tasks", EvalSettings.corpus_tasks)),
        )
        return cls(eval=ev, **data)


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return value


def _int_or(text: str, name: str, whole: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}: {whole!r} must be 'bpe:<vocab size>' or a tokenizer name/folder") from None


@dataclass(frozen=True)
class SweepPaths:
    root: Path

    @classmethod
    def of(cls, config: SweepConfig) -> "SweepPaths":
        return cls(Path(config.output_root).resolve() / f"{config.name}-{config.hash()}")

    @property
    def config_file(self) -> Path:
        return self.root / "sweep.json"

    def mixture_file(self, index: int) -> Path:
        return self.root / "mixtures" / f"{branch_name(index)}.train_config.yaml"

    def model_dir(self, index: int) -> Path:
        return self.root / "models" / branch_name(index)

    @property
    def mirror(self) -> Path:
        return self.root / "hub"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def results_parquet(self) -> Path:
        return self.root / "results.parquet"


def branch_name(index: int) -> str:
    return f"model-index-{index}"


def write_sweep_config(paths: SweepPaths, config: SweepConfig) -> None:
    """sweep.json: the config, and an `instance` id made once per folder (kept by reruns).

    A folder deleted and made again gets a new instance, so results cached for the old one
    (Prefect's task cache, keyed on it: tasks/caching.py) are never taken for the new one.
    """
    record = {"config": config.to_dict(), "identity": config.identity(), "hash": config.hash()}
    existing = json.loads(paths.config_file.read_text()) if paths.config_file.is_file() else {}
    if existing and existing.get("hash") != record["hash"]:
        raise ValueError(f"sweep folder {paths.root}: holds sweep {existing.get('hash')!r}, not {record['hash']!r}")
    record["instance"] = existing.get("instance") or uuid.uuid4().hex
    if record != existing:
        atomic_write_json(paths.config_file, record)


def sweep_instance(paths: SweepPaths) -> str | None:
    """The id of this incarnation of the sweep folder; None before sweep.json is written."""
    try:
        return json.loads(paths.config_file.read_text()).get("instance")
    except FileNotFoundError:
        return None


def prepare_mixtures(paths: SweepPaths, config: SweepConfig) -> dict[int, Mixture]:
    """Sample the sweep's mixtures once and store each index's train_config.yaml; reuse them after."""
    files = [paths.mixture_file(i) for i in range(1, config.n_models + 1)]
    if all(f.is_file() for f in files):
        return {i: read_train_config(f).mixture for i, f in enumerate(files, start=1)}
    mixtures = sample_mixtures(config.n_models, SamplerConfig(seed=config.sampler_seed))
    for path, mixture in zip(files, mixtures):
        write_train_config(path, mixture, config.preset)
    return dict(enumerate(mixtures, start=1))


# --- the results table --------------------------------------------------------------------

STATUS_COMPLETED = "completed"


def results_rows(paths: SweepPaths, config: SweepConfig, statuses: dict[int, str] | None = None,
                 hub_revisions: dict[int, str] | None = None) -> list[dict]:
    """One row per model index 1..N, from what is on disk (so a partial sweep shows what exists)."""
    from .train import read_result

    rows = []
    for index in range(1, config.n_models + 1):
        row: dict = {"index": index}
        mixture_file = paths.mixture_file(index)
        if mixture_file.is_file():
            weights = read_train_config(mixture_file).mixture.as_dict()
            row.update({train_key(d): weights[d] for d in REGMIX_ORDER})
        trained = read_result(paths.model_dir(index))
        evaluated = _read_json(paths.model_dir(index) / "eval.json")
        status = (statuses or {}).get(index)
        if status is None:
            status = STATUS_COMPLETED if trained and evaluated else ("trained" if trained else "pending")
        row["status"] = status
        if trained:
            row["train_tokens"] = trained["tokens"]
            row["train_seconds"] = round(trained["train_seconds"], 3)
            row["final_train_loss"] = trained["final_train_loss"]
            for d, loss in trained["val_loss"].items():
                row[loss_column(d)] = loss
        if evaluated:
            for d, loss in (evaluated.get("val_loss") or {}).items():
                row[loss_column(d)] = loss
            for task, score in (evaluated.get("scores") or {}).items():
                row[f"eval/{task}"] = score
        publish = _read_json(paths.model_dir(index) / "publish.json")
        row["hub_revision"] = (hub_revisions or {}).get(index) or (publish or {}).get("revision")
        rows.append(row)
    return rows


def write_results(paths: SweepPaths, rows: list[dict]):
    import io

    import pandas as pd

    frame = pd.DataFrame(rows).set_index("index", drop=False)
    atomic_write_text(paths.results_csv, frame.to_csv(index=False))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(paths.results_parquet, buffer.getvalue())
    return frame


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def default_cache_root() -> Path:
    return Path(os.environ.get("REGMIX_CACHE") or Path.cwd() / "cache").resolve()
