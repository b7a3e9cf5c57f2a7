"""The text online path offline: local CSV/JSONL tasks, a local model folder, GLUE and hub names failing fast;
and the zoo's text recipes built, hash-verified and loaded with their tokenizer (tiny recipes, temporary home)."""

import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).parent))

from realpath import make_text_csv, make_tiny_hf_model  # noqa: E402

from transferlab import zoo  # noqa: E402
from transferlab.text_data import load_text_model, load_text_task  # noqa: E402
from transferlab.text_finetune import TextRecipe, finetune  # noqa: E402
from transferlab.text_zoo import TextZooSpec  # noqa: E402


def test_a_local_csv_becomes_a_sealed_sentence_task(tmp_path):
    path = make_text_csv(tmp_path / "r.csv", rows=100)
    task = load_text_task(str(path), n_per_class=10, seed=0, n_val=15, n_test=20)
    assert task.kind == "sentence" and task.classes == ("negative", "positive")
    assert len(task.texts["train"]) == 20 and len(task.texts["val"]) == 15 and len(task.texts["test"]) == 20
    seen = set(task.texts["train"])
    assert not seen & set(task.texts["test"]) or len(seen) < 20  # rows split, never shared by index
    assert load_text_task(f"csv:{path}", n_per_class=10, seed=0, n_val=15, n_test=20).texts == task.texts
    assert load_text_task(str(path), n_per_class=10, seed=1, n_val=15, n_test=20).texts["train"] != task.texts["train"]


def test_jsonl_pairs_with_a_split_column(tmp_path):
    from transferlab.text_data import save_rows

    rows = [dict(sentence1=f"a {i}", sentence2=f"b {i}", label=i % 2, split=("train", "val", "test")[i % 3])
            for i in range(60)]
    path = save_rows(tmp_path / "p.jsonl", rows)
    task = load_text_task(str(path), n_per_class=None, n_val=100, n_test=None)
    assert task.kind == "pair" and len(task.texts["test"]) == 20 and task.texts["train"][0][0].startswith("a ")


@pytest.mark.parametrize("content, match", [
    ("text\nhello\n", "no 'label' column"),
    ("words,label\nhello,1\n", "expected a 'text' or 'sentence' column"),
])
def test_bad_files_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_text_task(str(path))
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_text_task(str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="Did you mean 'sst2'"):
        load_text_task("sst-2")


def test_glue_and_hub_names_fail_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises((OSError, ImportError), match="Hugging Face hub|datasets"):
        load_text_task("sst2")
    with pytest.raises(OSError, match="cannot reach the Hugging Face hub"):
        load_text_model("transferlab-no-such-org/no-such-model")
    assert time.perf_counter() - t0 < 10


def test_a_local_model_folder_loads_with_its_tokenizer_and_fine_tunes(tmp_path):
    csv_path = make_text_csv(tmp_path / "r.csv", rows=80)
    folder = make_tiny_hf_model(tmp_path / "tiny", [line.split(",")[0] for line in csv_path.read_text().splitlines()])
    model = load_text_model(str(folder))
    assert model.tokenizer.pad_token_id is not None and model.config.model_type == "bert"
    task = load_text_task(str(csv_path), n_per_class=8, n_val=10, n_test=10).encode(model.tokenizer)
    row = finetune(model, task, TextRecipe(epochs=1, batch_size=8), seed=0)
    assert 0 <= row["test_acc"] <= 1
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_text_model(str(tmp_path))


TINY_BERT = TextZooSpec("bert", hidden=16, layers=1, heads=2, corpus_size=300, epochs=1, batch_size=64,
                        vocab_size=200, description="test-only")


@pytest.fixture
def text_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(zoo.ZOO, "tiny-text", TINY_BERT)
    monkeypatch.setitem(zoo.ZOO, "tiny-text-s2", TextZooSpec(**{**TINY_BERT.__dict__, "checkpoint": 2}))
    monkeypatch.setitem(zoo.ZOO, "tiny-cbow", TextZooSpec("cbow", hidden=8, corpus_size=300, epochs=1,
                                                          vocab_size=200, batch_size=256))
    return tmp_path / "home" / "zoo"


def test_text_models_build_verify_and_load_with_their_tokenizer(text_zoo):
    path = zoo.build("tiny-text", progress=False)
    rec = zoo.manifest()["tiny-text"]
    assert rec["kind"] == "text" and rec["sha256"] == zoo.sha256(path) and rec["curve"]
    assert 0 <= rec["source_test_acc"] <= 1 and rec["pretrain_steps"] == rec["total_steps"] == 5
    a = zoo.load("tiny-text", device="cpu")
    b = zoo.load("tiny-text", device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert a.tokenizer.backend_tokenizer.to_str() == TINY_BERT.tokenizer().backend_tokenizer.to_str()
    assert a.pretrained_cfg["zoo_name"] == "tiny-text"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FileNotFoundError), pytest.warns(UserWarning, match="SHA-256"):
        zoo.load("tiny-text", build_missing=False)


def test_a_checkpoint_entry_is_the_same_run_stopped_early(text_zoo):
    zoo.build("tiny-text-s2", progress=False)
    early = zoo.manifest()["tiny-text-s2"]
    assert early["pretrain_steps"] == 2 and len(early["curve"]) <= len(early["curve"]) + 0
    assert early["fingerprint"] != TINY_BERT.fingerprint()
    zoo.build("tiny-cbow", progress=False)
    cbow = zoo.load("tiny-cbow", device="cpu")
    assert cbow.embed.weight.shape == (len(cbow.tokenizer), 8)
    assert json.loads((text_zoo / "tiny-cbow.json").read_text())["kind"] == "text"


def test_zoo_names_by_kind_and_status_rows():
    assert set(zoo.names("text")) >= {"textbert-mlm", "textgpt-clm", "textcbow"}
    assert not set(zoo.names("text")) & set(zoo.names("image"))
    rows = {r["name"]: r for r in zoo.status()}
    assert rows["textbert-mlm"]["kind"] == "text"
    with pytest.raises(ValueError, match="unknown zoo kind"):
        zoo.names("audio")
