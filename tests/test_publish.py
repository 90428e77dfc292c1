"""Publishing models as branches model-index-N: a local mirror end to end, and the Hub target
up to the network (huggingface_hub's own HTTP client talks to an in-memory Hub)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import pickle
from pathlib import Path

import httpx2
import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import constants as hf_constants
from huggingface_hub import set_client_factory
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from model import publish
from model.publish import (
    MANIFEST_NAME,
    HubTarget,
    LocalMirror,
    MissingTokenError,
    PublishConflict,
    publish_command,
    publish_model,
    push_mirror,
    render_model_card,
    update_main,
    validate_repo_id,
)

# huggingface_hub's own LFS upload passes bytes as `data=`, which httpx2 flags; not our code.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

TOKEN = "hf_TestSecretToken0123456789"
REPO = "regmix-test/random-suite"
SCORES = {"hellaswag": 0.2875, "piqa": 0.6012, "pile_cc_val_loss": 3.9121}
SENTENCES = [
    "the cat sat on the mat",
    "a mixture of domains trains a small model",
    "the pile has many domains such as arxiv and github",
    "validation loss on pile cc is the regression target",
]


# ---------------------------------------------------------------------------------------------
# A trained model folder, as the trainer leaves it


def make_model_folder(folder: Path, seed: int) -> Path:
    tokenizer_model = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer_model.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer_model.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["<unk>", "<eos>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer_model, unk_token="<unk>", eos_token="<eos>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    mixture = {"train": {"train_the_pile_arxiv": 0.25 + 0.01 * seed, "train_the_pile_pile_cc": 0.75 - 0.01 * seed},
               "valid": {"valid_the_pile_pile_cc": 1.0}, "model_name": "tinyllama_1M"}
    (folder / "train_config.yaml").write_text(yaml.safe_dump(mixture))
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "step-10.pt").write_bytes(b"optimizer state, not published")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    return {name: make_model_folder(root / name, seed) for seed, name in enumerate(["a", "b"])}


def weights_equal(left, right) -> bool:
    a, b = left.state_dict(), right.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def file_stats(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Local mirror


def test_local_publish_loads_back_and_republish_rewrites_nothing(tmp_path, trained):
    mirror = LocalMirror(tmp_path / "hub")
    result = publish_model(mirror, 3, trained["a"], SCORES)
    branch = tmp_path / "hub" / "model-index-3"

    assert result.branch == "model-index-3" and not result.skipped
    assert set(result.files) == set(result.uploaded)
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
            "train_config.yaml", "eval_results.json"} <= set(result.files)
    assert sorted(p.name for p in branch.iterdir()) == sorted([*result.files, MANIFEST_NAME])
    assert json.loads((branch / "eval_results.json").read_text()) == SCORES
    numpy_scores = {name: np.float64(value) for name, value in SCORES.items()}
    assert publish.scores_json(numpy_scores) == (branch / "eval_results.json").read_bytes()
    assert yaml.safe_load((branch / "train_config.yaml").read_text())["model_name"] == "tinyllama_1M"

    original = AutoModelForCausalLM.from_pretrained(trained["a"])
    loaded = AutoModelForCausalLM.from_pretrained(branch, local_files_only=True)
    assert weights_equal(original, loaded)
    assert AutoTokenizer.from_pretrained(branch)("the cat sat")["input_ids"]

    manifest = json.loads((branch / MANIFEST_NAME).read_text())
    assert manifest["revision"] == result.revision
    assert manifest["files"]["model.safetensors"]["sha256"] == sha256((trained["a"] / "model.safetensors").read_bytes())

    before = file_stats(branch)
    again = publish_model(mirror, 3, trained["a"], SCORES)
    assert again.skipped and again.uploaded == () and again.revision == result.revision
    assert file_stats(branch) == before


def test_local_conflict_leaves_branch_intact_unless_overwrite(tmp_path, trained):
    mirror = LocalMirror(tmp_path / "hub")
    publish_model(mirror, 1, trained["a"], SCORES)
    branch = tmp_path / "hub" / "model-index-1"
    before = {p.name: p.read_bytes() for p in branch.iterdir()}

    with pytest.raises(PublishConflict) as caught:
        publish_model(mirror, 1, trained["b"], SCORES)
    assert "model.safetensors" in caught.value.paths and "model-index-1" in str(caught.value)
    assert {p.name: p.read_bytes() for p in branch.iterdir()} == before

    replaced = publish_model(mirror, 1, trained["b"], SCORES, overwrite=True)
    assert not replaced.skipped and "model.safetensors" in replaced.uploaded
    assert weights_equal(AutoModelForCausalLM.from_pretrained(trained["b"]), AutoModelForCausalLM.from_pretrained(branch))


def test_local_scores_added_later_keep_the_weights_file(tmp_path, trained):
    mirror = LocalMirror(tmp_path / "hub")
    first = publish_model(mirror, 2, trained["a"], None)
    assert "eval_results.json" not in first.files
    weights = tmp_path / "hub" / "model-index-2" / "model.safetensors"
    inode = weights.stat().st_ino

    second = publish_model(mirror, 2, trained["a"], SCORES)
    assert second.uploaded == ("eval_results.json",) and not second.skipped
    assert weights.stat().st_ino == inode  # carried over by hard link, not rewritten
    different_scores = {**SCORES, "piqa": 0.5}
    with pytest.raises(PublishConflict):
        publish_model(mirror, 2, trained["a"], different_scores)


def test_local_interrupted_publish_is_completed_on_retry(tmp_path, trained, monkeypatch):
    reference = publish_model(LocalMirror(tmp_path / "clean"), 5, trained["a"], SCORES)
    root = tmp_path / "hub"
    mirror = LocalMirror(root)
    real_copy = publish._copy_file
    copied = []

    def copy_then_fail(file, destination):
        if len(copied) == 2:
            raise OSError(5, "Input/output error", str(file.source))
        copied.append(file.path)
        return real_copy(file, destination)

    monkeypatch.setattr(publish, "_copy_file", copy_then_fail)
    with pytest.raises(OSError):
        publish_model(mirror, 5, trained["a"], SCORES)
    assert len(copied) == 2
    assert not (root / "model-index-5").exists()
    assert [p.name for p in root.iterdir() if p.name != ".locks"] == []

    # A writer killed outright leaves its staging folder behind; the next publish clears it.
    leftover = root / ".model-index-5.k1ll3d.tmp"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half a file")
    monkeypatch.setattr(publish, "_copy_file", real_copy)
    retried = publish_model(mirror, 5, trained["a"], SCORES)

    assert not retried.skipped and retried.revision == reference.revision
    assert [p.name for p in root.iterdir() if p.name != ".locks"] == ["model-index-5"]
    assert sorted(p.name for p in (root / "model-index-5").iterdir()) == sorted([*reference.files, MANIFEST_NAME])
    assert json.loads((root / "model-index-5" / MANIFEST_NAME).read_text())["files"] == json.loads(
        (tmp_path / "clean" / "model-index-5" / MANIFEST_NAME).read_text())["files"]


def test_local_main_is_updated_in_place_without_conflict(tmp_path):
    mirror = LocalMirror(tmp_path / "hub")
    card = render_model_card({"repo_id": REPO, "num_models": 2}, [])
    first = update_main(mirror, card, {"model_type": "llama"})
    assert (tmp_path / "hub" / "main" / "README.md").read_text() == card
    assert json.loads((tmp_path / "hub" / "main" / "config.json").read_text()) == {"model_type": "llama"}
    assert update_main(mirror, card, {"model_type": "llama"}).skipped

    newer = render_model_card({"repo_id": REPO, "num_models": 2}, [{"index": 1, "pile_cc_val_loss": 3.9}])
    second = update_main(mirror, newer, {"model_type": "llama"})
    assert second.uploaded == ("README.md",) and second.revision != first.revision
    assert (tmp_path / "hub" / "main" / "README.md").read_text() == newer


def test_bad_inputs_are_refused_with_the_value_named(tmp_path, trained):
    mirror = LocalMirror(tmp_path / "hub")
    with pytest.raises(ValueError, match="index must be a positive integer, got 0"):
        publish_model(mirror, 0, trained["a"], None)
    with pytest.raises(FileNotFoundError, match="train_config.yaml"):
        empty = tmp_path / "untrained"
        empty.mkdir()
        (empty / "config.json").write_text("{}")
        publish_model(mirror, 1, empty, None)
    with pytest.raises(ValueError, match="finite"):
        publish_model(mirror, 1, trained["a"], {"piqa": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        publish_model(mirror, 1, trained["a"], {"piqa": object()})
    assert not (tmp_path / "hub" / "model-index-1").exists()


# ---------------------------------------------------------------------------------------------
# Model card


def test_model_card_describes_suite_training_loading_and_results():
    sweep = {"repo_id": REPO, "num_models": 64, "model_name": "tinyllama_1_1b", "tokens": 25_000_000_000,
             "train": {"lr": 4e-4, "min_lr": 1e-5, "batch_size": 512, "betas": [0.9, 0.95]},
             "mixtures": [{"arxiv": 0.1}, {"arxiv": 0.2}], "license": "mit"}
    rows = [{"index": 2, "pile_cc_val_loss": 3.5, "note": "a|b"}, {"index": 1, "pile_cc_val_loss": 3.25}]
    card = render_model_card(sweep, rows)

    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and "regmix" in meta["tags"] and meta["license"] == "mit"
    assert "64 language models (tinyllama_1_1b)" in body
    assert f'from_pretrained("{REPO}", revision="model-index-7")' in body
    assert "| train.lr | 0.0004 |" in body and "| train.betas | 0.9000, 0.9500 |" in body
    assert "| mixtures | (2 entries) |" in body
    table = body[body.index("| index |"):].splitlines()
    assert table[0] == "| index | pile_cc_val_loss | note |"
    assert table[2] == "| 1 | 3.2500 |  |" and table[3] == "| 2 | 3.5000 | a\\|b |"
    assert "2 of 64 models finished" in body
    assert "No model has finished yet (0 of 64)" in render_model_card(sweep, [])


# ---------------------------------------------------------------------------------------------
# Hub target, with huggingface_hub's HTTP client answered by an in-memory Hub


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class FakeHub:
    """Answers the Hub endpoints HfApi uses for publishing, keeping repos, branches and commits."""

    S3 = "fake-s3.example"

    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[httpx2.Request] = []
        self.faults: list[dict] = []

    def fail(self, method: str, path_part: str, *, status: int | None = None, after_apply: bool = False,
             connection_error: bool = False):
        self.faults.append(dict(method=method, path_part=path_part, status=status, after_apply=after_apply,
                                connection_error=connection_error))

    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.path}" if r.url.host != self.S3 else f"{r.method} s3" for r in self.requests]

    def branch_files(self, repo_id: str, branch: str) -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo["commits"][repo["branches"][branch]]["files"]

    def commit_count(self, repo_id: str) -> int:
        return len(self.repos[repo_id]["commits"])

    # -- plumbing
    @staticmethod
    def error(status: int, code: str | None = None) -> httpx2.Response:
        headers = {"X-Error-Code": code, "X-Error-Message": code} if code else {}
        return httpx2.Response(status, headers=headers, json={"error": code or f"status {status}"})

    def _commit(self, repo: dict, parent: str | None, files: dict[str, bytes], title: str) -> str:
        oid = hashlib.sha1(json.dumps([parent, title, sorted((p, sha256(d)) for p, d in files.items())]).encode()).hexdigest()
        repo["commits"][oid] = {"parent": parent, "files": files, "title": title}
        return oid

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/agent-harnesses":  # the client's own once-a-day registry fetch
            return self.error(404)
        self.requests.append(request)
        fault = next((f for f in self.faults if f["method"] == request.method and f["path_part"] in request.url.path), None)
        if fault:
            self.faults.remove(fault)
            if fault["connection_error"]:
                raise httpx2.ConnectError("connection reset by peer", request=request)
            if not fault["after_apply"]:
                return self.error(fault["status"])
        response = self.route(request)
        return self.error(fault["status"]) if fault else response

    def route(self, request: httpx2.Request) -> httpx2.Response:
        path, method = request.url.path, request.method
        if request.url.host == self.S3 and method == "PUT":
            data = request.read()
            oid = path.rsplit("/", 1)[-1]
            if sha256(data) != oid:
                return self.error(400)
            self.lfs[oid] = data
            return httpx2.Response(200)
        if path == "/api/repos/create" and method == "POST":
            body = json.loads(request.content)
            repo_id = f"{body['organization']}/{body['name']}"
            if repo_id in self.repos:
                return self.error(409)
            repo = self.repos[repo_id] = {"commits": {}, "branches": {}, "private": body.get("visibility") == "private"}
            attributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
            repo["branches"]["main"] = self._commit(repo, None, {".gitattributes": attributes}, "initial commit")
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{repo_id}"})
        if path == "/api/validate-yaml" and method == "POST":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if path.endswith(".git/info/lfs/objects/batch") and method == "POST":
            objects = json.loads(request.content)["objects"]
            answer = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                       **({} if o["oid"] in self.lfs else
                          {"actions": {"upload": {"href": f"https://{self.S3}/upload/{o['oid']}"}}})}
                      for o in objects]
            return httpx2.Response(200, json={"transfer": "basic", "objects": answer})
        parts = path.split("/")  # /api/models/<owner>/<name>/<action>/<revision>
        if parts[:3] != ["", "api", "models"] or len(parts) < 7:
            return self.error(404)
        repo_id, action, revision = f"{parts[3]}/{parts[4]}", parts[5], "/".join(parts[6:])
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(404, "RepoNotFound")
        if action == "branch" and method == "POST":
            if revision in repo["branches"]:
                return self.error(409)
            start = json.loads(request.content or b"{}").get("startingPoint") or repo["branches"]["main"]
            repo["branches"][revision] = start
            return httpx2.Response(200, json={})
        head = repo["branches"].get(revision)
        if head is None:
            return self.error(404, "RevisionNotFound")
        files = repo["commits"][head]["files"]
        if action == "revision" and method == "GET":
            siblings = []
            for name, data in sorted(files.items()):
                entry = {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
                if name.endswith(".safetensors"):
                    entry["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 130}
                siblings.append(entry)
            return httpx2.Response(200, json={"id": repo_id, "sha": head, "siblings": siblings, "private": repo["private"]})
        if action == "commits" and method == "GET":
            history, oid = [], head
            while oid is not None:
                history.append({"id": oid, "title": repo["commits"][oid]["title"], "message": "", "authors": [],
                                "date": "2025-01-01T00:00:00.000Z"})
                oid = repo["commits"][oid]["parent"]
            return httpx2.Response(200, json=history)
        if action == "preupload" and method == "POST":
            answer = [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".safetensors") else "regular",
                       "shouldIgnore": False} for f in json.loads(request.content)["files"]]
            return httpx2.Response(200, json={"files": answer})
        if action == "commit" and method == "POST":
            lines = [json.loads(line) for line in request.content.decode().splitlines() if line]
            new_files = dict(files)
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    new_files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "lfsFile":
                    if value["oid"] not in self.lfs:
                        return self.error(422)
                    new_files[value["path"]] = self.lfs[value["oid"]]
            oid = self._commit(repo, head, new_files, lines[0]["value"]["summary"])
            repo["branches"][revision] = oid
            return httpx2.Response(200, json={"commitUrl": f"https://huggingface.co/{repo_id}/commit/{oid}",
                                              "commitOid": oid, "success": True})
        return self.error(404)


@pytest.fixture
def hub(monkeypatch):
    fake = FakeHub()
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)  # Xet uploads leave Python's HTTP client
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(fake.handle),
                                             event_hooks={"request": [hf_request_event_hook]}, follow_redirects=True))
    yield fake
    set_client_factory(default_client_factory)


def make_target(**kwargs) -> HubTarget:
    return HubTarget(REPO, token=TOKEN, backoff_base_s=0.0, **kwargs)


def assert_token_hidden(caplog, *objects):
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in repr(record.args)
    for obj in objects:
        assert TOKEN not in repr(obj) and TOKEN not in str(obj)


FRESH_PUBLISH = [
    f"GET /api/models/{REPO}/revision/model-index-1",
    "POST /api/repos/create",
    f"GET /api/models/{REPO}/commits/main",
    f"POST /api/models/{REPO}/branch/model-index-1",
    f"POST /api/models/{REPO}/preupload/model-index-1",
    f"POST /{REPO}.git/info/lfs/objects/batch",
    "PUT s3",
    f"POST /api/models/{REPO}/commit/model-index-1",
]


def test_hub_publish_sends_the_hub_sequence_and_skips_when_identical(hub, trained, caplog):
    caplog.set_level(logging.DEBUG)
    target = make_target(private=True)
    result = publish_model(target, 1, trained["a"], SCORES)

    assert hub.calls() == FRESH_PUBLISH
    for request in hub.requests:
        expected = f"Bearer {TOKEN}" if request.url.host == "huggingface.co" else None
        assert request.headers.get("authorization") == expected
    assert json.loads(hub.requests[1].content)["visibility"] == "private"
    first_commit = list(hub.repos[REPO]["commits"])[0]
    assert json.loads(hub.requests[3].content) == {"startingPoint": first_commit}

    published = hub.branch_files(REPO, "model-index-1")
    assert set(published) == {".gitattributes", *result.files}
    for name in result.files:
        local = (trained["a"] / name).read_bytes() if name != "eval_results.json" else None
        assert local is None or published[name] == local
    assert json.loads(published["eval_results.json"]) == SCORES
    assert result.revision == hub.repos[REPO]["branches"]["model-index-1"] and not result.skipped

    hub.requests.clear()
    again = publish_model(target, 1, trained["a"], SCORES)
    assert hub.calls() == [f"GET /api/models/{REPO}/revision/model-index-1"]
    assert again.skipped and again.revision == result.revision and again.uploaded == ()
    assert_token_hidden(caplog, result, again, target)
    assert TOKEN.encode() not in pickle.dumps(target)


def test_hub_conflict_is_refused_before_any_upload(hub, trained):
    target = make_target()
    publish_model(target, 1, trained["a"], SCORES)
    commits = hub.commit_count(REPO)
    hub.requests.clear()
    with pytest.raises(PublishConflict) as caught:
        publish_model(target, 1, trained["b"], SCORES)
    assert {"model.safetensors", "train_config.yaml"} <= set(caught.value.paths)
    assert hub.calls() == [f"GET /api/models/{REPO}/revision/model-index-1"]
    assert hub.commit_count(REPO) == commits


@pytest.mark.parametrize("fault", [
    dict(method="POST", path_part="/commit/", status=503),
    dict(method="POST", path_part="/repos/create", connection_error=True),
])
def test_hub_transient_errors_are_retried(hub, trained, caplog, fault):
    caplog.set_level(logging.DEBUG)
    hub.fail(**fault)
    result = publish_model(make_target(), 1, trained["a"], SCORES)
    assert not result.skipped and result.revision == hub.repos[REPO]["branches"]["model-index-1"]
    assert hub.calls().count(f"POST /api/models/{REPO}/commit/model-index-1") == (2 if fault.get("status") else 1)
    assert hub.commit_count(REPO) == 2  # the initial commit and ours
    assert any("transient error" in r.getMessage() for r in caplog.records)
    assert_token_hidden(caplog, result)


def test_hub_commit_applied_but_answer_lost_is_not_committed_twice(hub, trained):
    hub.fail("POST", "/commit/", status=502, after_apply=True)
    result = publish_model(make_target(), 1, trained["a"], SCORES)
    assert hub.commit_count(REPO) == 2
    assert hub.calls()[-1] == f"GET /api/models/{REPO}/revision/model-index-1"
    assert not result.skipped and set(result.uploaded) == set(result.files)
    assert result.revision == hub.repos[REPO]["branches"]["model-index-1"]


def test_hub_client_errors_are_not_retried_and_hide_the_token(hub, trained, caplog):
    caplog.set_level(logging.DEBUG)
    hub.fail("POST", "/branch/", status=403)
    with pytest.raises(HfHubHTTPError) as caught:
        publish_model(make_target(), 1, trained["a"], SCORES)
    assert caught.value.response.status_code == 403
    assert hub.calls().count(f"POST /api/models/{REPO}/branch/model-index-1") == 1
    error, chain = caught.value, []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert_token_hidden(caplog, *chain)


def test_hub_needs_a_token_and_a_valid_repo_id_before_any_request(hub, monkeypatch):
    with pytest.raises(MissingTokenError, match="HF_TOKEN"):
        HubTarget(REPO)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert repr(HubTarget(REPO)) == f"HubTarget('{REPO}', private=False)"
    for bad in ["noslash", "a/b/c", "owner/na--me", "owner/na..me", "owner/" + "x" * 97, "own er/name",
                "-owner/name", "owner/name.git", "owner/"]:
        with pytest.raises(ValueError, match="not a valid Hub repository id") as caught:
            HubTarget(bad, token=TOKEN)
        assert repr(bad) in str(caught.value)
    assert validate_repo_id("sail/data-mixture-random-1b") == "sail/data-mixture-random-1b"
    assert hub.requests == []


def test_hub_main_update_validates_the_card_and_is_idempotent(hub, trained):
    target = make_target()
    card = render_model_card({"repo_id": REPO, "num_models": 1}, [])
    update_main(target, card, {"model_type": "llama"})  # before any model: creates the repository
    assert hub.calls()[:3] == [f"GET /api/models/{REPO}/revision/main", "POST /api/repos/create",
                               f"GET /api/models/{REPO}/revision/main"]
    publish_model(target, 1, trained["a"], SCORES)
    assert set(hub.branch_files(REPO, "model-index-1")) == {".gitattributes", *publish.model_bundle(trained["a"], SCORES)}
    hub.requests.clear()
    card = render_model_card({"repo_id": REPO, "num_models": 1}, [{"index": 1, **SCORES}])
    result = update_main(target, card, {"model_type": "llama"})
    assert hub.calls() == [
        f"GET /api/models/{REPO}/revision/main",
        "POST /api/validate-yaml",
        f"POST /api/models/{REPO}/preupload/main",
        f"POST /api/models/{REPO}/commit/main",
    ]
    assert hub.branch_files(REPO, "main")["README.md"].decode() == card
    assert not result.skipped and update_main(target, card, {"model_type": "llama"}).skipped


def test_push_mirror_uploads_every_branch_once(hub, trained, tmp_path, monkeypatch, capsys):
    mirror = LocalMirror(tmp_path / "hub")
    publish_model(mirror, 1, trained["a"], SCORES)
    publish_model(mirror, 2, trained["b"], None)
    update_main(mirror, render_model_card({"repo_id": REPO}, []), {"model_type": "llama"})

    results = push_mirror(tmp_path / "hub", REPO, token=TOKEN)
    assert [r.branch for r in results] == ["model-index-1", "model-index-2", "main"]
    for branch in ("model-index-1", "model-index-2", "main"):
        manifest = mirror.read_manifest(branch)["files"]
        remote = hub.branch_files(REPO, branch)
        assert {name: sha256(remote[name]) for name in manifest} == {n: e["sha256"] for n, e in manifest.items()}
        assert MANIFEST_NAME not in remote

    hub.requests.clear()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert publish_command(["--mirror", str(tmp_path / "hub"), "--repo", REPO]) == 0
    assert [c.split()[0] for c in hub.calls()] == ["GET", "GET", "GET"]
    out = capsys.readouterr().out
    assert out.count("unchanged") == 3 and TOKEN not in out

    monkeypatch.delenv("HF_TOKEN")
    assert publish_command(["--mirror", str(tmp_path / "hub"), "--repo", REPO]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
