"""The RegMix-Data layout reader and the mini-pile generator, on real files."""

from __future__ import annotations

import ast
import gzip
import json
import math
import operator
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from model.corpus import (
    encode_documents,
    iter_documents,
    list_files,
    parse_file_name,
    regmix_allow_patterns,
    validate_corpus,
    write_documents,
)
from model.domains import DOMAINS, TOKEN_PRIOR
from model.minipile import MIN_TRAIN_DOCS, generate_mini_pile

SMALL = dict(train_tokens=60_000, valid_docs=8)
DOCS = ["plain text", "ünïcode ✓ and \"quotes\"\nwith a newline", "x" * 5000, ""]


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return generate_mini_pile(tmp_path_factory.mktemp("mp") / "corpus", seed=0, **SMALL)


def _write_minimal_corpus(root: Path, domains=("pile_cc", "enron_emails")) -> None:
    for domain in domains:
        write_documents(root / "train" / f"{domain}-0-0.jsonl", [f"{domain} train doc"])
        write_documents(root / "valid" / f"{domain}-0-0.jsonl", [f"{domain} valid doc"])


# ---------------------------------------------------------------- layout

@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_round_trip_each_compression(tmp_path, suffix):
    path = write_documents(tmp_path / f"arxiv-3-7{suffix}", DOCS)
    assert list(iter_documents(path)) == DOCS
    if suffix == ".jsonl.gz":
        assert gzip.decompress(path.read_bytes()).count(b"\n") == len(DOCS)


def test_file_names_are_parsed_strictly():
    assert parse_file_name("pubmed_central-12-3.jsonl.zst") == ("pubmed_central", 12, 3)
    for bad in ("pile-cc-0-0.jsonl", "pile_cc-0.jsonl", "pile_cc-0-0.json", "pile_cc-a-0.jsonl", "_x-0-0.jsonl"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_file_name(bad)


def test_list_files_sorted_by_shard_and_domain_exact(tmp_path):
    for name in ("pubmed_central-10-0.jsonl", "pubmed_central-2-1.jsonl.gz", "pubmed_central-2-0.jsonl",
                 "pubmed_abstracts-0-0.jsonl"):
        write_documents(tmp_path / "train" / name, ["d"])
    (tmp_path / "train" / "README.md").write_text("not a corpus file")
    names = [p.name for p in list_files(tmp_path, "pubmed_central", "train")]
    assert names == ["pubmed_central-2-0.jsonl", "pubmed_central-2-1.jsonl.gz", "pubmed_central-10-0.jsonl"]
    with pytest.raises(ValueError, match="unknown domain 'pile-cc'"):
        list_files(tmp_path, "pile-cc", "train")
    with pytest.raises(ValueError, match="split.*'test'"):
        list_files(tmp_path, "arxiv", "test")


@pytest.mark.parametrize("content, message", [
    (b'{"text": "ok"}\n{"text": "broken\n', r"arxiv-0-0.jsonl:2: corrupt JSON line"),
    (b'{"text": "ok"}\n\n{"body": "no text"}\n', r"arxiv-0-0.jsonl:3: JSON object has no 'text' field"),
    (b'[1, 2]\n', r"arxiv-0-0.jsonl:1: JSON object has no 'text' field"),
    (b'{"text": 42}\n', r"arxiv-0-0.jsonl:1: 'text' must be a string, got int"),
    (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', r"arxiv-0-0.jsonl:2: not valid UTF-8"),
    (b"", r"arxiv-0-0.jsonl: empty corpus file"),
    (b"\n  \n", r"arxiv-0-0.jsonl: empty corpus file"),
])
def test_bad_lines_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "arxiv-0-0.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        list(iter_documents(path))


def test_bad_line_inside_compressed_file(tmp_path):
    path = tmp_path / "arxiv-0-0.jsonl.zst"
    import zstandard
    path.write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "a"}\n{"text": \n'))
    with pytest.raises(ValueError, match=r"arxiv-0-0.jsonl.zst:2: corrupt JSON line"):
        list(iter_documents(path))


def test_validate_corpus_summary(tmp_path):
    _write_minimal_corpus(tmp_path)
    summary = validate_corpus(tmp_path, domains=("pile_cc", "enron_emails"))
    size = len(encode_documents(["pile_cc train doc"]))
    assert summary["domains"]["pile_cc"]["train"] == {"files": 1, "bytes": size}
    assert summary["total_files"] == 4
    assert validate_corpus(tmp_path, ("pile_cc",), deep=True)["domains"]["pile_cc"]["valid"]["documents"] == 1


def test_validate_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus root .*nowhere.* does not exist"):
        validate_corpus(tmp_path / "nowhere")
    write_documents(tmp_path / "train" / "pile_cc-0-0.jsonl", ["d"])
    with pytest.raises(FileNotFoundError, match="has no valid/ folder"):
        validate_corpus(tmp_path, ("pile_cc",))
    _write_minimal_corpus(tmp_path, ("pile_cc",))
    with pytest.raises(FileNotFoundError, match="domain 'enron_emails' has no train file in .*train"):
        validate_corpus(tmp_path, ("pile_cc", "enron_emails"))
    write_documents(tmp_path / "train" / "enron_emails-0-0.jsonl", ["d"])
    with pytest.raises(FileNotFoundError, match="domain 'enron_emails' has no valid file in .*valid"):
        validate_corpus(tmp_path, ("pile_cc", "enron_emails"))
    (tmp_path / "valid" / "enron_emails-0-0.jsonl").write_bytes(b"")
    with pytest.raises(ValueError, match="domain 'enron_emails': empty file .*enron_emails-0-0.jsonl in valid/"):
        validate_corpus(tmp_path, ("pile_cc", "enron_emails"))
    (tmp_path / "valid" / "enron_emails-0-0.jsonl").write_bytes(b'{"text": 1}\n')
    validate_corpus(tmp_path, ("pile_cc", "enron_emails"))  # cheap check reads no lines
    with pytest.raises(ValueError, match="'text' must be a string"):
        validate_corpus(tmp_path, ("pile_cc", "enron_emails"), deep=True)
    write_documents(tmp_path / "valid" / "enron_emails-1-0.jsonl", ["shard 1 is not allowed in valid/"])
    with pytest.raises(ValueError, match="valid files must have shard 0"):
        validate_corpus(tmp_path, ("pile_cc",))


def test_allow_patterns_select_exactly_the_asked_domains():
    assert regmix_allow_patterns(["pubmed_central", "enron_emails"]) == [
        "train/pubmed_central-*", "valid/pubmed_central-*", "train/enron_emails-*", "valid/enron_emails-*"]
    assert len(regmix_allow_patterns()) == 2 * len(DOMAINS)
    with pytest.raises(ValueError, match="domains: unknown domain 'pile-cc'"):
        regmix_allow_patterns(["pile-cc"])


def test_download_offline_gives_a_clear_error(tmp_path):
    code = ("from model.corpus import download_regmix_data\n"
            f"download_regmix_data({str(tmp_path / 'data')!r}, domains=['enron_emails'])\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode != 0
    assert "ConnectionError: download_regmix_data: cannot fetch dataset 'sail/regmix-data-sample'" in done.stderr


# ---------------------------------------------------------------- mini-pile

def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _docs(root: Path, domain: str, split: str) -> list[str]:
    return [d for p in list_files(root, domain, split) for d in iter_documents(p)]


def test_mini_pile_layout_is_valid(mini):
    summary = validate_corpus(mini, deep=True)
    assert set(summary["domains"]) == set(DOMAINS)
    manifest = json.loads((mini / "corpus.json").read_text())
    assert manifest["seed"] == 0 and manifest["train_tokens"] == SMALL["train_tokens"]
    for domain in DOMAINS:
        assert summary["domains"][domain]["train"]["documents"] == manifest["domains"][domain]["train_docs"]


def test_mini_pile_is_deterministic(mini, tmp_path):
    same = generate_mini_pile(tmp_path / "same", seed=0, **SMALL)
    other = generate_mini_pile(tmp_path / "other", seed=1, **SMALL)
    assert _all_files(same) == _all_files(mini)
    assert _all_files(other).keys() == _all_files(mini).keys()
    differing = [k for k, v in _all_files(other).items() if v != _all_files(mini)[k]]
    assert len(differing) >= len(_all_files(mini)) - 1  # only corpus.json layout may coincide; data differs


def test_mini_pile_reuses_complete_folder_and_refuses_other_params(mini, tmp_path):
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in mini.rglob("*")}
    assert generate_mini_pile(mini, seed=0, **SMALL) == mini
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in mini.rglob("*")} == before
    with pytest.raises(ValueError, match="already holds a mini-pile with other parameters"):
        generate_mini_pile(mini, seed=5, **SMALL)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in mini.rglob("*")} == before


@pytest.mark.parametrize("kwargs, message", [
    (dict(train_tokens=10), "train_tokens: expected an integer >= 1000, got 10"),
    (dict(valid_docs=0), "valid_docs: expected an integer >= 1, got 0"),
    (dict(seed="zero"), "seed: expected an integer, got 'zero'"),
])
def test_mini_pile_bad_params_leave_nothing(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_mini_pile(tmp_path / "out", **{**SMALL, **kwargs})
    assert list(tmp_path.iterdir()) == []


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(expr: str) -> float:
    def walk(node):
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise ValueError(f"unexpected expression {expr!r}")
    return walk(ast.parse(expr, mode="eval").body)


def _check_math_line(line: str) -> None:
    question, answer = re.fullmatch(r"(.*) Answer: (-?\d+)", line).groups()
    expected = int(answer)
    if m := re.fullmatch(r"Solve (\d+)\*([a-z]) ([+-]) (\d+) = (-?\d+) for \2\.", question):
        a, sign, b, c = int(m[1]), m[3], int(m[4]), int(m[5])
        assert a * expected + (b if sign == "+" else -b) == c, line
    elif m := re.fullmatch(r"What is the remainder when (\d+) is divided by (\d+)\?", question):
        assert int(m[1]) % int(m[2]) == expected, line
    elif m := re.fullmatch(r"Calculate the greatest common divisor of (\d+) and (\d+)\.", question):
        assert math.gcd(int(m[1]), int(m[2])) == expected, line
    elif m := re.fullmatch(r"Let f be a function with f\(x\) = (\d+)\*x ([+-]) (\d+)\. What is f\((-?\d+)\)\?", question):
        k = int(m[4])
        assert _evaluate(f"{m[1]}*{k} {m[2]} {m[3]}") == expected, line
    elif m := re.fullmatch(r"(?:Calculate (.*)\.|What is (.*)\?)", question):
        assert _evaluate(m[1] or m[2]) == expected, line
    else:
        raise AssertionError(f"unrecognised problem {line!r}")


def test_dm_mathematics_answers_are_correct(mini):
    lines = [line for doc in _docs(mini, "dm_mathematics", "train") + _docs(mini, "dm_mathematics", "valid")
             for line in doc.split("\n")]
    assert len(lines) > 100
    for line in lines:
        _check_math_line(line)
    kinds = Counter(line.split()[0] + (" remainder" if "remainder" in line else "") for line in lines)
    assert {"Calculate", "What", "Solve", "Let", "What remainder"} <= set(kinds)
    with pytest.raises(AssertionError):
        _check_math_line("Calculate 37*12. Answer: 443")


def _unigrams(texts: list[str]) -> Counter:
    return Counter(w.lower() for t in texts for w in re.findall(r"[A-Za-z]+", t))


def _js_divergence(p: Counter, q: Counter) -> float:
    tp, tq = sum(p.values()), sum(q.values())
    total = 0.0
    for w in set(p) | set(q):
        a, b = p[w] / tp, q[w] / tq
        m = (a + b) / 2
        total += (a * math.log2(a / m) if a else 0) + (b * math.log2(b / m) if b else 0)
    return total / 2


def test_domains_are_distinct_but_share_function_words(mini):
    unigrams = {d: _unigrams(_docs(mini, d, "train")) for d in DOMAINS}
    for word in ("the", "of", "a", "and"):
        assert all(unigrams[d][word] > 0 for d in DOMAINS), word
    for i, a in enumerate(DOMAINS):
        for b in DOMAINS[i + 1:]:
            assert _js_divergence(unigrams[a], unigrams[b]) > 0.25, (a, b)
    # pile_cc borrows from wikipedia_en, hackernews and stackexchange, not from github or dm_mathematics
    near = max(_js_divergence(unigrams["pile_cc"], unigrams[d]) for d in ("wikipedia_en", "hackernews", "stackexchange"))
    far = min(_js_divergence(unigrams["pile_cc"], unigrams[d]) for d in ("github", "dm_mathematics", "arxiv"))
    assert near < far


def test_sizes_follow_the_prior_and_valid_is_balanced(mini):
    manifest = json.loads((mini / "corpus.json").read_text())["domains"]
    for domain in DOMAINS:
        record, wanted = manifest[domain], TOKEN_PRIOR[domain] * SMALL["train_tokens"]
        assert record["train_docs"] >= MIN_TRAIN_DOCS
        if record["train_docs"] > MIN_TRAIN_DOCS:  # sized by the prior, not by the minimum
            assert wanted <= record["train_words"] < wanted + 500, domain
        assert record["valid_docs"] == SMALL["valid_docs"]
    words = {d: manifest[d]["train_words"] for d in DOMAINS}
    assert min(words, key=words.get) == "enron_emails" and max(words, key=words.get) == "pile_cc"
    for domain in DOMAINS:
        assert not set(_docs(mini, domain, "train")) & set(_docs(mini, domain, "valid")), domain


def test_documents_vary_in_length(mini):
    lengths = [len(d.split()) for domain in DOMAINS for d in _docs(mini, domain, "train")]
    assert min(lengths) < 60 and max(lengths) > 250
    assert len(set(lengths)) > 100
