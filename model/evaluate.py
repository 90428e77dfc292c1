"""Evaluation of trained models: per-domain validation loss and lm-eval downstream scores.

`validation_losses` reads the same fixed slice of every domain's valid tokens for every model, so
the 64 models of a sweep are compared on identical data. `Evaluator` indexes and builds the lm-eval
tasks once and then scores any number of in-memory models; scores follow RegMix: per task the mean
over the configured shots of acc_norm where the task has it, else acc.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from model.domains import DOMAINS
from model.io import atomic_write_json, config_hash
from model.offline_tasks import (
    REGMIX_TASKS,
    UNAVAILABLE_REASONS,
    default_cache_dir,
    lm_eval_tasks_root,
    offline_tasks_dir,
    read_offline_status,
)

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"
DEFAULT_SHOTS = (0, 1, 2, 3, 4, 5)
ACCURACY_METRICS = ("acc_norm", "acc")  # preference order, as RegMix reports
PERPLEXITY_METRIC = "bits_per_byte"

# lm-eval's own definition of each RegMix task, for the Hub route: indexing only these folders
# instead of lm-eval's whole task tree saves ~10 s per process.
HUB_TASK_YAMLS: dict[str, str] = {
    "social_iqa": "siqa/siqa.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml",
    "piqa": "piqa/piqa.yaml",
    "openbookqa": "openbookqa/openbookqa.yaml",
    "lambada_standard": "lambada/lambada_standard.yaml",
    "lambada_openai": "lambada/lambada_openai.yaml",
    "sciq": "sciq/sciq.yaml",
    "arc_easy": "arc/arc_easy.yaml",
    "copa": "super_glue/copa/default.yaml",
    "race": "race/race.yaml",
    "logiqa": "logiqa/logiqa.yaml",
    "qqp": "glue/qqp/default.yaml",
    "multirc": "super_glue/multirc/default.yaml",
    "winogrande": "winogrande/default.yaml",
}


# ----------------------------------------------------------------------------- validation loss
class TokenSource(Protocol):
    def tokens(self, domain: str, split: str) -> np.ndarray: ...


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sum_window_losses(model, batch: torch.Tensor, rows_per_chunk: int = 4096) -> tuple[float, int]:
    """Summed next-token cross-entropy of a batch of windows, computing logits a chunk at a time
    so a 50k vocabulary never materialises (batch x seq x vocab) at once."""
    hidden = model.base_model(input_ids=batch).last_hidden_state[:, :-1]
    targets = batch[:, 1:].reshape(-1)
    hidden = hidden.reshape(-1, hidden.shape[-1])
    head = model.get_output_embeddings()
    total = 0.0
    for start in range(0, hidden.shape[0], rows_per_chunk):
        logits = head(hidden[start : start + rows_per_chunk]).float()
        total += torch.nn.functional.cross_entropy(
            logits, targets[start : start + rows_per_chunk], reduction="sum"
        ).item()
    return total, targets.numel()


def validation_windows(tokens: np.ndarray, seq_len: int, max_tokens: int) -> list[np.ndarray]:
    """The fixed slice: the first max_tokens tokens cut into non-overlapping seq_len windows (the
    last may be shorter; one of a single token predicts nothing and is dropped)."""
    if seq_len < 2:
        raise ValueError(f"seq_len: must be >= 2, got {seq_len!r}")
    if max_tokens < 2:
        raise ValueError(f"max_tokens: must be >= 2, got {max_tokens!r}")
    head = np.asarray(tokens[:max_tokens], dtype=np.int64)
    windows = [head[i : i + seq_len] for i in range(0, len(head), seq_len)]
    return [w for w in windows if len(w) >= 2]


@torch.no_grad()
def validation_losses(
    model,
    store: TokenSource,
    domains: Sequence[str] = DOMAINS,
    seq_len: int = 512,
    max_tokens: int = 16384,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Mean token cross-entropy (nats) per domain over the fixed valid slice of each domain."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    losses: dict[str, float] = {}
    try:
        for domain in domains:
            windows = validation_windows(store.tokens(domain, "valid"), seq_len, max_tokens)
            if not windows:
                raise ValueError(f"domain {domain!r}: valid split has fewer than 2 tokens")
            total, count = 0.0, 0
            full = [w for w in windows if len(w) == seq_len]
            groups = [full[i : i + batch_size] for i in range(0, len(full), batch_size)]
            groups += [[w] for w in windows if len(w) != seq_len]
            for group in groups:
                batch = torch.from_numpy(np.stack(group)).to(device)
                with _autocast(device):
                    s, n = _sum_window_losses(model, batch)
                total, count = total + s, count + n
            losses[domain] = total / count
    finally:
        model.train(was_training)
    return losses


# ----------------------------------------------------------------------------- lm-eval scores
@dataclass
class TaskScore:
    task: str  # the results-table column: the RegMix name or the corpus task name
    status: str  # "ok" | "unavailable" | "failed"
    lm_eval_task: str | None = None
    source: str | None = None  # "offline" | "hub" | "local"
    metric: str | None = None  # acc_norm | acc | bits_per_byte
    score: float | None = None  # mean of per_shot
    per_shot: dict[int, float] = field(default_factory=dict)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # everything lm-eval reported
    reason: str | None = None


@dataclass
class EvalReport:
    config: dict
    config_hash: str
    tasks: dict[str, TaskScore]
    average: float | None  # mean over ok accuracy tasks
    regmix_average: float | None  # the same over RegMix tasks only
    seconds: float

    def scores(self) -> dict[str, float | None]:
        """Flat columns for the results table."""
        out: dict[str, float | None] = {t.task: t.score for t in self.tasks.values()}
        out["average"] = self.average
        out["regmix_average"] = self.regmix_average
        return out

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "EvalReport":
        tasks = {}
        for name, t in data["tasks"].items():
            t = dict(t)
            t["per_shot"] = {int(k): v for k, v in t["per_shot"].items()}
            t["metrics"] = {int(k): v for k, v in t["metrics"].items()}
            tasks[name] = TaskScore(**t)
        return cls(data["config"], data["config_hash"], tasks, data["average"], data["regmix_average"], data["seconds"])


def hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _index_names(include_paths: Sequence[Path]) -> set[str]:
    """Task names defined by YAMLs in the include paths (cheap scan, to route names)."""
    import yaml

    names = set()
    for root in include_paths:
        for path in Path(root).rglob("*.yaml"):
            with contextlib.suppress(Exception):
                config = yaml.load(path.read_text(), Loader=_IgnoreTagsLoader)
                if isinstance(config, dict) and isinstance(config.get("task"), str):
                    names.add(config["task"])
    return names


def _build_ignore_tags_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    return Loader


_IgnoreTagsLoader = _build_ignore_tags_loader()


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


class Evaluator:
    """lm-eval tasks built once, then any number of models scored with them.

    tasks: RegMix names (routed to the offline copy, else the Hub) or names defined in
    include_paths (e.g. corpus tasks). prefer: "offline" or "hub" for RegMix tasks that have both.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        shots: Sequence[int] = DEFAULT_SHOTS,
        limit: int | None = None,
        include_paths: Sequence[str | os.PathLike] = (),
        batch_size: int = 16,
        cache_dir: str | os.PathLike | None = None,
        prefer: str = "offline",
        hub: bool | None = None,
        fewshot_seed: int = 1234,
    ) -> None:
        if not tasks:
            raise ValueError("tasks: expected at least one task name, got none")
        if not shots or any(int(s) < 0 for s in shots):
            raise ValueError(f"shots: expected non-negative shot counts, got {shots!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit: must be >= 1 or None, got {limit!r}")
        if prefer not in ("offline", "hub"):
            raise ValueError(f"prefer: expected 'offline' or 'hub', got {prefer!r}")
        self.shots = tuple(sorted({int(s) for s in shots}))
        self.limit = limit
        self.batch_size = batch_size
        self.fewshot_seed = fewshot_seed
        self.evaluations_run = 0
        self.timings: dict[str, float] = {}
        cache_dir = Path(cache_dir or default_cache_dir()).resolve()
        self.include_paths = [Path(p).resolve() for p in include_paths]
        for p in self.include_paths:
            if not p.is_dir():
                raise FileNotFoundError(f"include_paths: {p} is not a folder")

        t0 = time.perf_counter()
        offline_status = read_offline_status(cache_dir) or {}
        local_names = _index_names(self.include_paths)
        self.hub = hub_reachable() if hub is None else hub
        self.scores: dict[str, TaskScore] = {}
        routes: dict[str, str] = {}  # column name -> lm-eval task name
        index_paths = list(self.include_paths)
        for name in dict.fromkeys(tasks):
            entry = offline_status.get(name, {})
            offline_ok = entry.get("status") == "offline"
            if name in local_names:
                routes[name], source = name, "local"
            elif offline_ok and (prefer == "offline" or not self.hub):
                routes[name], source = entry["lm_eval_task"], "offline"
                if offline_tasks_dir(cache_dir) not in index_paths:
                    index_paths.append(offline_tasks_dir(cache_dir))
            elif name in HUB_TASK_YAMLS and self.hub:
                routes[name], source = name, "hub"
                folder = (lm_eval_tasks_root() / HUB_TASK_YAMLS[name]).parent
                if folder not in index_paths:
                    index_paths.append(folder)
            else:
                if name in HUB_TASK_YAMLS:
                    why = entry.get("reason") or UNAVAILABLE_REASONS.get(name) or (
                        "offline copy not prepared (run python -m model.offline_tasks)"
                    )
                    reason = f"Hub unreachable and {why}" if not self.hub else why
                else:
                    reason = f"unknown task {name!r}: not a RegMix task and not defined in include_paths"
                self.scores[name] = TaskScore(name, "unavailable", reason=reason)
                continue
            self.scores[name] = TaskScore(name, "ok", lm_eval_task=routes[name], source=source)
        self.timings["route_s"] = time.perf_counter() - t0

        from lm_eval.tasks import TaskManager

        t0 = time.perf_counter()
        # Only the folders we route to are indexed; lm-eval's full tree is never scanned.
        self.task_manager = TaskManager(include_path=[str(p) for p in index_paths], include_defaults=False)
        self.timings["index_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self._tasks: dict[str, Any] = {}  # column -> built lm-eval Task
        for name, lm_name in routes.items():
            try:
                self._tasks[name] = self.task_manager.load([lm_name])["tasks"][lm_name]
            except Exception as e:  # a dataset that cannot be had must not stop the others
                self.scores[name].status = "unavailable"
                self.scores[name].reason = f"could not build {lm_name}: {type(e).__name__}: {str(e)[:300]}"
                log.warning("task %s unavailable: %s", name, self.scores[name].reason)
        self.timings["build_s"] = time.perf_counter() - t0

        import lm_eval

        self.config = {
            "tasks": {n: [s.lm_eval_task, s.source, s.status] for n, s in self.scores.items()},
            "shots": list(self.shots),
            "limit": limit,
            "fewshot_seed": fewshot_seed,
            "include_paths": [str(p) for p in self.include_paths],
            "lm_eval": getattr(lm_eval, "__version__", "unknown"),
        }
        self.config_hash = config_hash(self.config)

    def _is_rolling(self, task) -> bool:
        return task.get_config("output_type") == "loglikelihood_rolling"

    def evaluate(self, model, tokenizer, device: str | torch.device | None = None) -> EvalReport:
        from lm_eval.evaluator import evaluate as lm_evaluate
        from lm_eval.models.huggingface import HFLM

        t0 = time.perf_counter()
        device = torch.device(device) if device is not None else next(model.parameters()).device
        was_training = model.training
        model.to(device).eval()
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=self.batch_size)
        results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in self._tasks}
        try:
            for shots in self.shots:
                # A rolling perplexity has no few-shot form: it is scored once, at 0 shots.
                todo = {n: t for n, t in self._tasks.items() if shots == 0 or not self._is_rolling(t)}
                if not todo:
                    continue
                for task in todo.values():
                    task.set_config(key="num_fewshot", value=shots)
                    task.set_fewshot_seed(seed=self.fewshot_seed)
                loaded = {"tasks": {t.task_name: t for t in todo.values()}, "groups": {}, "group_map": {}}
                with torch.no_grad(), _autocast(device):
                    out = lm_evaluate(lm=lm, task_dict=loaded, limit=self.limit, bootstrap_iters=0, log_samples=False)
                for name, task in todo.items():
                    raw = out["results"].get(task.task_name, {})
                    results[name][shots] = {
                        k.split(",")[0]: float(v) for k, v in raw.items()
                        if "," in k and "stderr" not in k and isinstance(v, (int, float))
                    }
        finally:
            model.train(was_training)
        self.evaluations_run += 1
        return self._report(results, time.perf_counter() - t0)

    def _report(self, results: dict[str, dict[int, dict[str, float]]], seconds: float) -> EvalReport:
        tasks: dict[str, TaskScore] = {}
        for name, base in self.scores.items():
            score = TaskScore(**{**asdict(base), "per_shot": {}, "metrics": {}})
            per_shot_metrics = results.get(name)
            if base.status == "ok" and per_shot_metrics is not None:
                score.metrics = per_shot_metrics
                available = set.intersection(*(set(m) for m in per_shot_metrics.values())) if per_shot_metrics else set()
                metric = next((m for m in (*ACCURACY_METRICS, PERPLEXITY_METRIC) if m in available), None)
                if metric is None:
                    score.status, score.reason = "failed", f"lm-eval reported no usable metric: {sorted(available)}"
                else:
                    score.metric = metric
                    score.per_shot = {s: m[metric] for s, m in per_shot_metrics.items()}
                    score.score = _mean(list(score.per_shot.values()))
            tasks[name] = score
        accuracy = {n: t.score for n, t in tasks.items() if t.status == "ok" and t.metric in ACCURACY_METRICS and t.score is not None and not math.isnan(t.score)}
        return EvalReport(
            config=self.config,
            config_hash=self.config_hash,
            tasks=tasks,
            average=_mean(list(accuracy.values())),
            regmix_average=_mean([v for n, v in accuracy.items() if n in REGMIX_TASKS]),
            seconds=seconds,
        )

    def evaluate_dir(
        self,
        model_dir: str | os.PathLike,
        model=None,
        tokenizer=None,
        device: str | torch.device | None = None,
        filename: str = EVAL_FILE,
    ) -> EvalReport:
        """Scores of the model in model_dir, read from model_dir/eval.json when it was written with
        this evaluator's config; otherwise evaluated (loading the model unless given) and written."""
        model_dir = Path(model_dir)
        path = model_dir / filename
        if path.exists():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                data = json.loads(path.read_text())
                if data.get("config_hash") == self.config_hash:
                    return EvalReport.from_json(data)
        if model is None or tokenizer is None:
            if not model_dir.is_dir():
                raise FileNotFoundError(f"model_dir: {model_dir} does not exist")
            from transformers import AutoModelForCausalLM, AutoTokenizer

            model = model or AutoModelForCausalLM.from_pretrained(model_dir)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir)
        report = self.evaluate(model, tokenizer, device)
        atomic_write_json(path, report.to_json())
        return report
