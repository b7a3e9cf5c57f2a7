"""Tokenizers, encoding with aligned labels, the three heads, re-init/freeze, BertAdam and fine-tuning runs."""

import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

from transferlab import text_world as tw  # noqa: E402
from transferlab.bertadam import BertAdam, bias_correction_factor  # noqa: E402
from transferlab.text_finetune import TextRecipe, finetune, is_failed, prepare, task_correct  # noqa: E402
from transferlab.text_heads import encoder_layers, freeze_bottom, make_task_model, reinit_top, text_features  # noqa: E402
from transferlab.text_models import CBOW, tiny_bert, tiny_gpt, train_bpe, train_wordpiece  # noqa: E402
from transferlab.text_tasks import IGNORE_INDEX  # noqa: E402

CORPUS = tw.corpus(400, seed=0)


@pytest.fixture(scope="module")
def wp():
    return train_wordpiece(CORPUS, 300)


@pytest.fixture(scope="module")
def bert(wp):
    return tiny_bert(len(wp), hidden=32, layers=2, heads=2, pad_token_id=wp.pad_token_id)


def test_tokenizers_are_deterministic_and_cover_every_letter(wp):
    again = train_wordpiece(list(CORPUS), 300)  # a list, not the cached tuple: trained afresh
    assert wp.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()
    assert wp.unk_token_id not in wp("zzqx yyh")["input_ids"]  # letters never seen still tokenize
    bpe = train_bpe(CORPUS, 300)
    ids = bpe("the " + CORPUS[0])["input_ids"]
    assert ids[-1] == bpe.eos_token_id and bpe.unk_token_id not in ids


def test_encoding_aligns_tags_with_first_subtokens_and_spans_with_the_context(wp):
    tag = tw.text_task("tagging", n_per_class=1, n_val=3, n_test=3, similarity=0.0)  # novel words: sub-tokens
    enc = tag.encode(wp)
    y, x = enc.labels("train"), enc.data["train"]["x"]
    for i, (words, tags) in enumerate(zip(tag.texts["train"], tag.targets["train"], strict=True)):
        kept = y[i][y[i] != IGNORE_INDEX].tolist()
        assert kept == list(tags)  # one label per word, in order
        n_tokens = int(x["attention_mask"][i].sum())
        assert n_tokens > len(words) + 2 or all(len(wp.tokenize(w)) == 1 for w in words)
    span = tw.text_task("span", n_per_class=1, n_val=3, n_test=3)
    enc = span.encode(wp)
    for i, ((_, context), (a, b)) in enumerate(zip(span.texts["test"], span.targets["test"], strict=True)):
        s, e = enc.labels("test", final=True)[i].tolist()
        ids = enc.data["test"]["x"]["input_ids"][i]
        assert enc.data["test"]["x"]["span_mask"][i, s] == 1
        assert wp.decode(ids[s: e + 1]).replace(" ", "") == (context[a] + context[b])


def test_loader_batches_are_trimmed_and_shuffle_is_seeded(wp):
    from transferlab.tasks import SealedSplitError

    enc = tw.text_task("tagging", n_per_class=2, n_val=3, n_test=3).encode(wp)
    with pytest.raises(SealedSplitError):
        enc.loader("test")
    assert len(enc.loader("test", final=True).y) == 3
    a = [y.tolist() for _, y in enc.loader("train", 4, seed=1)]
    b = [y.tolist() for _, y in enc.loader("train", 4, seed=1)]
    assert a == b
    for x, y in enc.loader("train", 4, seed=1):
        assert x["input_ids"].shape == y.shape and x["attention_mask"][:, -1].any()


@pytest.mark.parametrize("kind, shape", [("topic", (4, 10)), ("same_topic", (4, 2)), ("tagging", None),
                                         ("span", None)])
def test_three_heads_on_one_encoder(kind, shape, wp, bert):
    task = tw.text_task(kind, n_per_class=2, n_val=4, n_test=4).encode(wp)
    model = make_task_model(bert, task.kind, task.num_classes, seed=0)
    x, y = next(iter(task.loader("train", 4)))
    out = model(**x)
    if kind == "tagging":
        assert out.shape == (*x["input_ids"].shape, 11)
    elif kind == "span":
        assert out.shape == (4, 2, x["input_ids"].shape[1])
        assert (out[:, 0][x["span_mask"] == 0] <= -1e4 + 1).all()  # the question cannot hold the answer
    else:
        assert out.shape == shape
    c, n = task_correct(task.kind, out, y)
    assert 0 <= c <= n


def test_gpt_classifies_from_the_last_real_token(wp):
    bpe = train_bpe(CORPUS, 300)
    gpt = tiny_gpt(len(bpe), hidden=32, layers=1, heads=2, pad_token_id=bpe.pad_token_id,
                   eos_token_id=bpe.eos_token_id)
    task = tw.text_task("topic", n_per_class=1, n_val=2, n_test=2).encode(bpe)
    model = make_task_model(gpt, "sentence", 10)
    assert model.pooling == "last"
    x, _ = next(iter(task.loader("train", 3)))
    padded = {k: torch.nn.functional.pad(v, (0, 3), value=bpe.pad_token_id if k == "input_ids" else 0)
              for k, v in x.items()}
    torch.testing.assert_close(model(**x), model(**padded))  # padding on the right changes nothing


def test_reinit_top_resets_only_the_top_layers_and_freeze_bottom_freezes_from_the_input(bert):
    model = make_task_model(bert, "sentence", 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert reinit_top(model, 1, seed=0) == [1]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("encoder.encoder.layer.1.") for k in changed)
    layers = encoder_layers(model.encoder)
    assert len(layers) == 2
    names = freeze_bottom(model, 2)
    assert names == ["encoder.embeddings", "encoder.encoder.layer.0"]
    assert not any(p.requires_grad for p in model.encoder.embeddings.parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    with pytest.raises(ValueError, match="k must be an integer"):
        reinit_top(model, 3)


def test_bertadam_with_bias_correction_is_adamw_step_for_step():
    torch.manual_seed(0)
    w = torch.randn(5, 3)
    a, b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    mine = BertAdam([a], lr=1e-2, weight_decay=0.01, eps=1e-6, bias_correction=True)
    ref = torch.optim.AdamW([b], lr=1e-2, weight_decay=0.01, eps=1e-6)
    for step in range(25):
        g = torch.randn(5, 3, generator=torch.Generator().manual_seed(step))
        a.grad, b.grad = g.clone(), g.clone()
        mine.step()
        ref.step()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_bertadam_without_bias_correction_matches_a_hand_computation():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = BertAdam([p], lr=0.1, betas=(0.9, 0.999), eps=0.0)
    m = v = torch.zeros(2)
    expected = p.detach().clone()
    for t in range(1, 4):
        g = torch.tensor([0.5, -1.0]) * t
        p.grad = g.clone()
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        expected = expected - 0.1 * m / v.sqrt()
        torch.testing.assert_close(p.detach(), expected)
    # the first uncorrected step is bias_correction_factor(1) times Adam's (lr): ~3.16
    q = torch.nn.Parameter(torch.zeros(1))
    opt2 = BertAdam([q], lr=1.0, eps=0.0)
    q.grad = torch.ones(1)
    opt2.step()
    assert -q.item() == pytest.approx(bias_correction_factor(1), rel=1e-6)
    assert bias_correction_factor(10) == pytest.approx((1 - 0.9 ** 10) / math.sqrt(1 - 0.999 ** 10))


def test_finetune_runs_every_variation_and_leaves_the_callers_rng_alone(wp, bert):
    task = tw.text_task("topic", n_per_class=2, n_val=10, n_test=10).encode(wp)
    torch.manual_seed(3)
    before = torch.rand(1)
    torch.manual_seed(3)
    rows = [finetune(bert, task, TextRecipe(epochs=1, **kw), seed=0) for kw in
            (dict(), dict(optimizer="bertadam"), dict(reinit=1), dict(freeze=1), dict(head_only=True),
             dict(lora_rank=2))]
    assert torch.equal(torch.rand(1), before)
    assert all(0 <= r["test_acc"] <= 1 and 0 <= r["val_acc"] <= 1 for r in rows)
    full, head, lora = rows[0]["trainable"], rows[4]["trainable"], rows[5]["trainable"]
    assert head < lora < full
    again = finetune(bert, task, TextRecipe(epochs=1), seed=0)
    assert again["test_acc"] == rows[0]["test_acc"] and again["train_loss"] == rows[0]["train_loss"]


def test_lora_starts_as_the_model_it_adapts(wp, bert):
    task = tw.text_task("topic", n_per_class=1, n_val=2, n_test=2).encode(wp)
    x, _ = next(iter(task.loader("train", 4)))
    plain = prepare(bert, task, TextRecipe(), seed=0)
    lora = prepare(bert, task, TextRecipe(lora_rank=4), seed=0)
    torch.testing.assert_close(plain.eval()(**x), lora.eval()(**x))  # LoRA's B starts at zero


def test_features_and_failure_rule(wp, bert):
    task = tw.text_task("topic", n_per_class=1, n_val=3, n_test=3).encode(wp)
    f, y = text_features(bert, task.loader("val", 2))
    assert f.shape == (3, 32) and y.shape == (3,)
    cbow = CBOW(len(wp), 8, pad_id=wp.pad_token_id)
    f, _ = text_features(cbow, task.loader("val", 2))
    assert f.shape == (3, 8)
    assert is_failed(0.19, 0.1) and not is_failed(0.21, 0.1)
