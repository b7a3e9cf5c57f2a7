"""The text world: a fixed language, tasks whose test words fine-tuning never sees, a monotone similarity knob."""

import random

import pytest

from transferlab import text_world as tw


def _content_words(task, split):
    lang = tw.language()
    topic_of = lang.topic_of()
    words = set()
    for ex in task.texts[split]:
        if task.kind == "sentence":
            ws = ex.split()
        elif task.kind == "pair":
            ws = (ex[0] + " " + ex[1]).split()
        elif task.kind == "token":
            ws = list(ex)
        else:
            ws = list(ex[0]) + list(ex[1])
        words |= {w for w in ws if w in topic_of}
    return words


def test_language_is_fixed_and_partitions_are_disjoint():
    lang = tw.language()
    assert lang is tw.language()
    all_words = [w for g in (lang.nouns, lang.verbs, lang.adjs, lang.novel_nouns, lang.novel_verbs, lang.novel_adjs)
                 for topic in g for w in topic]
    assert len(all_words) == len(set(all_words)) == 2 * 10 * (16 + 8 + 8)
    for pos in "NVA":
        for t in range(10):
            parts = [set(lang.words(pos, t, part=p)) for p in ("train", "val", "test")]
            assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
            assert set().union(*parts) == set(lang.words(pos, t))


@pytest.mark.parametrize("kind", tw.KINDS)
def test_val_and_test_use_only_words_fine_tuning_never_sees(kind):
    task = tw.text_task(kind, n_per_class=5, n_val=50, n_test=50)
    train, val, test = (_content_words(task, s) for s in ("train", "val", "test"))
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    corpus_words = {w for s in tw.corpus(3000) for w in s.split()}
    assert val | test <= corpus_words  # ... but pretraining sees them all


def test_labels_follow_the_words():
    topic_of = tw.language().topic_of()
    t = tw.text_task("topic", n_per_class=3, n_val=5, n_test=5)
    for text, label in zip(t.texts["train"], t.targets["train"], strict=True):
        first_noun_topic = [topic_of[w] for w in text.split() if w in topic_of]
        assert label in first_noun_topic
    tag = tw.text_task("tagging", n_per_class=2, n_val=5, n_test=5)
    for words, tags in zip(tag.texts["test"], tag.targets["test"], strict=True):
        assert len(words) == len(tags)
        assert all(tg == (topic_of[w] + 1 if w in topic_of else 0) for w, tg in zip(words, tags, strict=True))
    span = tw.text_task("span", n_per_class=2, n_val=5, n_test=5)
    for (question, context), (a, b) in zip(span.texts["train"], span.targets["train"], strict=True):
        verb = [w for w in question if w in topic_of][0]
        assert b == a + 1 and topic_of[context[a]] == topic_of[context[b]] == topic_of[verb]
    pair = tw.text_task("same_topic", n_per_class=4, n_val=6, n_test=6)
    assert sorted(set(pair.targets["train"])) == [0, 1] and pair.classes == ("different", "same")


def test_similarity_swaps_whole_factors_in_order():
    assert [len(tw.novel_factors(s)) for s in (1.0, 0.67, 0.34, 0.0)] == [0, 1, 2, 3]
    corpus_words = {w for s in tw.corpus(3000) for w in s.split()}
    far = tw.text_task("topic", n_per_class=3, similarity=0.0, n_val=20, n_test=20)
    words = {w for s in far.texts["test"] for w in s.split()}
    assert not words & corpus_words  # nothing of the target's vocabulary or grammar was in the corpus
    grammar_only = tw.text_task("topic", n_per_class=3, similarity=0.67, n_val=20, n_test=20)
    content = _content_words(grammar_only, "test")
    assert content <= corpus_words  # the words are known; the templates are not
    assert any(w not in corpus_words for s in grammar_only.texts["test"] for w in s.split())


def test_same_seed_same_task_other_seed_other_sentences():
    a, b = (tw.text_task("topic", n_per_class=4, n_val=5, n_test=5, seed=3) for _ in range(2))
    assert a.texts == b.texts and a.targets == b.targets
    c = tw.text_task("topic", n_per_class=4, n_val=5, n_test=5, seed=4)
    assert c.texts["train"] != a.texts["train"]
    assert tw.corpus(10, seed=1) == tw.corpus(10, seed=1) != tw.corpus(10, seed=2)


def test_the_world_never_moves_the_callers_random_state():
    random.seed(5)
    before = random.random()
    random.seed(5)
    tw.text_task("span", n_per_class=2, n_val=3, n_test=3)
    tw.corpus(20)
    assert random.random() == before


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="topics"), "Did you mean 'topic'"),
    (dict(n_per_class=0), "n_per_class"),
    (dict(similarity=1.5), "similarity"),
    (dict(num_classes=11), "num_classes"),
    (dict(kind="span", num_classes=2), "num_classes"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tw.text_task(**kwargs)


def test_text_task_checks_its_splits_and_refuses_loaders_before_encoding():
    from transferlab.text_tasks import TextTask

    with pytest.raises(ValueError, match="split 'val' is missing"):
        TextTask("x", "sentence", {"train": ["a"], "test": ["b"]}, {"train": [0], "test": [0]}, ("a",))
    with pytest.raises(ValueError, match="unknown kind"):
        TextTask("x", "sentences", {}, {}, ())
    t = tw.text_task("topic", n_per_class=2, n_val=3, n_test=3)
    with pytest.raises(TypeError, match="encode it with a tokenizer"):
        t.loader("train")
    small = t.subset(5, seed=1)
    assert len(small.texts["train"]) == 5 and small.texts["test"] == t.texts["test"]
    assert t.majority_accuracy("train") == pytest.approx(0.1)
