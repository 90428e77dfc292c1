"""Downstream tasks made from a corpus's own valid split, one pair per domain.

Even a small embedded corpus then gives a downstream signal that depends on the mixture:
- `corpus_mc_<domain>`: multiple choice. Context = the first words of a held-out document;
  choices = its true continuation and the continuations (same word offset) of other documents
  of the same domain. Scored with acc / acc_norm like any lm-eval MC task.
- `corpus_ppl_<domain>`: loglikelihood_rolling over whole (clipped) documents:
  word_perplexity, byte_perplexity, bits_per_byte.
Written as lm-eval YAML + JSONL under <cache>/corpus_tasks/<hash>/, the hash covering the corpus
files and the settings, so the same corpus always yields the same tasks.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import yaml

from model.corpus import iter_documents, list_files
from model.domains import DOMAINS, check_domain
from model.io import atomic_dir, atomic_write_json, config_hash, file_digest
from model.offline_tasks import default_cache_dir

MC_PREFIX = "corpus_mc_"
PPL_PREFIX = "corpus_ppl_"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class CorpusTaskSettings:
    mc_documents: int = 40  # MC questions per domain (at most; fewer if the split is small)
    choices: int = 4
    context_words: int = 32
    continuation_words: int = 8
    ppl_documents: int = 8
    ppl_max_chars: int = 2000  # clip documents so a rolling pass stays cheap
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("mc_documents", "context_words", "continuation_words", "ppl_documents", "ppl_max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        if self.choices < 2:
            raise ValueError(f"choices: must be >= 2, got {self.choices!r}")


@dataclass
class CorpusTasks:
    include_path: Path
    corpus_hash: str
    mc_tasks: dict[str, str] = field(default_factory=dict)  # domain -> task name
    ppl_tasks: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # task name -> why

    @property
    def task_names(self) -> list[str]:
        return [*self.mc_tasks.values(), *self.ppl_tasks.values()]


def mc_task_name(domain: str) -> str:
    return MC_PREFIX + domain


def ppl_task_name(domain: str) -> str:
    return PPL_PREFIX + domain


def _valid_files(corpus_root: Path, domains: Sequence[str]) -> dict[str, list[Path]]:
    return {d: list_files(corpus_root, d, "valid") for d in domains}


def corpus_hash(corpus_root: str | os.PathLike, domains: Sequence[str], settings: CorpusTaskSettings) -> str:
    files = _valid_files(Path(corpus_root), domains)
    fingerprint = {d: [[p.name, file_digest(p)] for p in paths] for d, paths in files.items()}
    return config_hash({"valid_files": fingerprint, "settings": asdict(settings), "format": 1})


def make_mc_questions(documents: Sequence[str], settings: CorpusTaskSettings, rng: random.Random) -> list[dict]:
    """MC questions from one domain's documents; deterministic given rng's seed."""
    need = settings.context_words + settings.continuation_words
    split_docs = [doc.split() for doc in documents]
    usable = [i for i, words in enumerate(split_docs) if len(words) >= need]
    if len(usable) < settings.choices:
        return []
    segments = {
        i: (
            " ".join(split_docs[i][: settings.context_words]),
            " ".join(split_docs[i][settings.context_words : need]),
        )
        for i in usable
    }
    questions = []
    chosen = rng.sample(usable, min(settings.mc_documents, len(usable)))
    for i in chosen:
        context, truth = segments[i]
        # Distinct texts only: two equal choices would make the question ambiguous.
        others = list(dict.fromkeys(segments[j][1] for j in usable if segments[j][1] != truth))
        if len(others) < settings.choices - 1:
            continue
        distractors = rng.sample(others, settings.choices - 1)
        label = rng.randrange(settings.choices)
        choices = distractors[:label] + [truth] + distractors[label:]
        questions.append({"context": context, "choices": choices, "label": label})
    return questions


def _mc_yaml(name: str, data: Path, corpus_id: str) -> dict:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"validation": str(data)}},
        "output_type": "multiple_choice",
        "validation_split": "validation",
        "doc_to_text": "context",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0, "corpus_hash": corpus_id},
    }


def _ppl_yaml(name: str, data: Path, corpus_id: str) -> dict:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "output_type": "loglikelihood_rolling",
        "test_split": "test",
        "doc_to_text": "",
        "doc_to_target": "text",
        "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"}, {"metric": "bits_per_byte"}],
        "metadata": {"version": 1.0, "corpus_hash": corpus_id},
    }


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _load_manifest(folder: Path) -> CorpusTasks:
    m = json.loads((folder / MANIFEST).read_text())
    return CorpusTasks(folder / "tasks", m["corpus_hash"], m["mc_tasks"], m["ppl_tasks"], m["unavailable"])


def prepare_corpus_tasks(
    corpus_root: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    domains: Sequence[str] = DOMAINS,
    settings: CorpusTaskSettings = CorpusTaskSettings(),
) -> CorpusTasks:
    """Write (once) the corpus tasks of `domains` and return where they are and their names."""
    corpus_root = Path(corpus_root).resolve()
    for d in domains:
        check_domain(d)
    digest = corpus_hash(corpus_root, domains, settings)
    folder = Path(cache_dir or default_cache_dir()).resolve() / "corpus_tasks" / digest  # YAMLs hold absolute paths
    if (folder / MANIFEST).exists():
        return _load_manifest(folder)

    files = _valid_files(corpus_root, domains)
    mc_tasks, ppl_tasks, unavailable = {}, {}, {}
    with atomic_dir(folder) as build:
        for domain in domains:
            documents = [doc for path in files[domain] for doc in iter_documents(path)]
            # One rng per domain, seeded by name: adding a domain leaves the others unchanged.
            rng = random.Random(f"{settings.seed}:{domain}")
            questions = make_mc_questions(documents, settings, rng)
            name = mc_task_name(domain)
            if questions:
                _write_jsonl(build / "data" / f"{name}.jsonl", questions)
                _write_yaml(build / "tasks" / f"{name}.yaml", _mc_yaml(name, folder / "data" / f"{name}.jsonl", digest))
                mc_tasks[domain] = name
            else:
                unavailable[name] = (
                    f"{domain}: fewer than {settings.choices} valid documents with "
                    f"{settings.context_words + settings.continuation_words} words"
                )
            texts = [doc[: settings.ppl_max_chars] for doc in documents if doc.strip()][: settings.ppl_documents]
            name = ppl_task_name(domain)
            if texts:
                _write_jsonl(build / "data" / f"{name}.jsonl", [{"text": t} for t in texts])
                _write_yaml(build / "tasks" / f"{name}.yaml", _ppl_yaml(name, folder / "data" / f"{name}.jsonl", digest))
                ppl_tasks[domain] = name
            else:
                unavailable[name] = f"{domain}: no valid documents"
        (build / "tasks").mkdir(exist_ok=True)
        atomic_write_json(build / MANIFEST, {
            "corpus_root": str(corpus_root), "corpus_hash": digest, "settings": asdict(settings),
            "mc_tasks": mc_tasks, "ppl_tasks": ppl_tasks, "unavailable": unavailable,
        })
    return _load_manifest(folder)


def _write_yaml(path: Path, config: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
