"""The offline text world: a generated language whose structure pretraining can discover.

The counterpart of :mod:`transferlab.world` for text. Words are pseudo-words made of syllables; their meaning is
which **topic** they belong to:

- 10 topics, each with 16 nouns, 8 verbs and 8 adjectives of its own (the "source vocabulary"), and a dozen
  function words shared by all. Words of one topic occur in the same contexts ("the ADJ NOUN VERB ..."), so a
  model that predicts words from their context (CBOW, a masked or a causal language model) learns that they
  belong together: that is what pretraining can discover and fine-tuning can reuse.
- Sentences come from **templates** (the grammar): the subject's noun phrase, verb and modifiers are of one topic,
  an object of another. :func:`corpus` is the unlabelled pretraining text, drawn from all source words.
- Every topic's words are split into three **partitions**: ``"train"`` words (about half) are the only ones
  fine-tuning sees; ``"val"`` and ``"test"`` words appear only in the validation and test sentences. So a model
  can only classify a test sentence by what pretraining taught it about words it never saw labelled.
- ``similarity`` in [0, 1] says how much of a target's vocabulary and grammar come from the pretraining corpus:
  three factors (the grammar, the modifiers = verbs and adjectives, the nouns) are, in that order, replaced by
  **novel** counterparts (other templates and function words; pseudo-words of another syllable inventory that
  pretraining never saw), ``round((1 - similarity) * 3)`` of them. Whole factors are swapped, not blended, as
  in the image world, so the knob stays monotone.

Target tasks for the three kinds of head (:func:`text_task`): ``"topic"`` (sentence classification),
``"same_topic"`` (sentence pairs: same topic or not), ``"tagging"`` (the topic of every word, ``O`` for function
words) and ``"span"`` (extractive question answering: which noun phrase of the context does the question's
verb belong to). Each has ``train`` / ``val`` / ``test`` splits; the same arguments give the same sentences.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ._validate import as_choice, as_int, as_probability, as_seed

__all__ = ["TOPICS", "KINDS", "FACTORS", "Language", "language", "novel_factors", "corpus", "text_task",
           "make_sentence"]

TOPICS = ("food", "music", "sport", "weather", "travel", "health", "law", "space", "sea", "forest")
KINDS = ("topic", "same_topic", "tagging", "span")
FACTORS = ("grammar", "modifiers", "nouns")  # replaced by novel ones in this order as similarity falls
_N_NOUNS, _N_VERBS, _N_ADJS = 16, 8, 8
_SOURCE_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
_NOVEL_SYLLABLES = [c + v for c in ("kr", "sh", "th", "pl", "gw", "zh", "str") for v in ("y", "ou", "ei", "ae")]
_FUNCTION = ("the", "a", "is", "very", "and", "with", "near", "of", "to", "by", "which", "who")
_NOVEL_FUNCTION = ("qo", "xu", "wix", "jep", "yoq", "xel", "wuj", "qix")
# Templates: N/V/A = noun/verb/adjective of the subject's topic, O/M = noun/adjective of the object's topic;
# anything else is a function word.
_SLOTS = {"N": ("N", True), "V": ("V", True), "A": ("A", True), "O": ("N", False), "M": ("A", False)}
_SOURCE_TEMPLATES = (
    "the A N V the O",
    "a N V with the M O",
    "the N is very A and V near a O",
    "the A A N V the M O",
    "a N and a N V by the O",
)
_NOVEL_TEMPLATES = (  # the novel grammar: other word order, other function words
    "N A qo V xu O",
    "V wix N A jep M O",
    "N qo A yoq V xel O wuj",
    "xu N N A V qix O",
)
_WORLD_SEED = 6021  # the language itself is fixed; task seeds only choose sentences


@dataclass(frozen=True)
class Language:
    """The words of the text world: per topic, nouns/verbs/adjectives, source and novel, and their partitions."""

    nouns: tuple  # [topic] -> tuple of words (source vocabulary)
    verbs: tuple
    adjs: tuple
    novel_nouns: tuple
    novel_verbs: tuple
    novel_adjs: tuple

    def words(self, pos: str, topic: int, *, novel: bool = False, part: str | None = None) -> tuple:
        """The words of part of speech ``pos`` ("N", "V", "A") of ``topic``; ``part`` picks a partition."""
        table = {"N": (self.nouns, self.novel_nouns), "V": (self.verbs, self.novel_verbs),
                 "A": (self.adjs, self.novel_adjs)}[pos][int(novel)]
        words = table[topic]
        return words if part is None else _partition(words, part)

    def topic_of(self) -> dict:
        """``{word: topic}`` for every content word, source and novel."""
        out = {}
        for group in (self.nouns, self.verbs, self.adjs, self.novel_nouns, self.novel_verbs, self.novel_adjs):
            for t, words in enumerate(group):
                out.update(dict.fromkeys(words, t))
        return out


def _partition(words: tuple, part: str) -> tuple:
    """Half of a topic's words for fine-tuning, a quarter for validation, a quarter for test."""
    n = len(words)
    a, b = n // 2, n // 2 + n // 4
    return {"train": words[:a], "val": words[a:b], "test": words[b:], "all": words}[
        as_choice("part", part, ("train", "val", "test", "all"))]


def _make_words(syllables: list, count: int, rng: random.Random, taken: set) -> list:
    out = []
    while len(out) < count:
        w = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 2, 3))))
        if w not in taken and w not in _FUNCTION and w not in _NOVEL_FUNCTION:
            taken.add(w)
            out.append(w)
    return out


_LANGUAGE: Language | None = None


def language() -> Language:
    """The text world's vocabulary (fixed: the same on every machine).

    Examples
    --------
    >>> lang = language(); len(lang.nouns), len(lang.nouns[0]), len(lang.verbs[0])
    (10, 16, 8)
    >>> len(lang.words("N", 0, part="train")), len(lang.words("N", 0, part="test"))
    (8, 4)
    """
    global _LANGUAGE
    if _LANGUAGE is None:
        rng, taken = random.Random(_WORLD_SEED), set()
        groups = []
        for syl in (_SOURCE_SYLLABLES, _NOVEL_SYLLABLES):
            for count in (_N_NOUNS, _N_VERBS, _N_ADJS):
                groups.append(tuple(tuple(_make_words(syl, count, rng, taken)) for _ in TOPICS))
        _LANGUAGE = Language(*groups)
    return _LANGUAGE


def novel_factors(similarity: float) -> tuple[str, ...]:
    """Which factors of a target are novel at ``similarity``: the first ``round((1 - s) * 3)`` of FACTORS.

    Examples
    --------
    >>> novel_factors(1.0), novel_factors(0.5), novel_factors(0.0)
    ((), ('grammar', 'modifiers'), ('grammar', 'modifiers', 'nouns'))
    """
    s = as_probability("similarity", similarity)
    return FACTORS[: int(round((1 - s) * len(FACTORS) + 1e-9))]


def make_sentence(rng: random.Random, topic: int, other: int, *, part: str = "all", novel: tuple = (),
                  template: str | None = None) -> tuple[list[str], list[int | None]]:
    """One sentence about ``topic`` (object of topic ``other``): its words and each word's topic (None: function).

    Examples
    --------
    >>> words, topics = make_sentence(random.Random(0), 2, 5, template="the A N V the O")
    >>> len(words), topics
    (6, [None, 2, 2, 2, None, 5])
    """
    lang = language()
    grammar_novel, mods_novel, nouns_novel = (f in novel for f in FACTORS)
    if template is None:
        template = rng.choice(_NOVEL_TEMPLATES if grammar_novel else _SOURCE_TEMPLATES)
    words, topics = [], []
    for slot in template.split():
        if slot in _SLOTS:
            pos, subject = _SLOTS[slot]
            t = topic if subject else other
            novel_here = nouns_novel if pos == "N" else mods_novel
            words.append(rng.choice(lang.words(pos, t, novel=novel_here, part=part)))
            topics.append(t)
        else:
            words.append(slot)
            topics.append(None)
    return words, topics


def corpus(n_sentences: int = 20000, *, seed: int = 0) -> list[str]:
    """Unlabelled pretraining text: sentences of the source grammar over every source word.

    Examples
    --------
    >>> corpus(2, seed=0)  # doctest: +ELLIPSIS
    ['...', '...']
    """
    n = as_int("n_sentences", n_sentences, min=1)
    rng = random.Random(as_seed(seed) * 7919 + 1)
    out = []
    for _ in range(n):
        topic, other = rng.sample(range(len(TOPICS)), 2)
        out.append(" ".join(make_sentence(rng, topic, other)[0]))
    return out


def _examples(kind, n, part, num_classes, novel, rng):
    """``n`` examples of ``kind`` whose content words come from partition ``part``."""
    texts, targets = [], []
    for i in range(n):
        if kind == "topic":
            topic = i % num_classes
            other = rng.choice([t for t in range(num_classes) if t != topic])
            texts.append(" ".join(make_sentence(rng, topic, other, part=part, novel=novel)[0]))
            targets.append(topic)
        elif kind == "same_topic":
            same = i % 2
            t1 = rng.randrange(num_classes)
            t2 = t1 if same else rng.choice([t for t in range(num_classes) if t != t1])
            pair = []
            for t in (t1, t2):
                pair.append(" ".join(make_sentence(rng, t, rng.choice([u for u in range(num_classes) if u != t]),
                                                   part=part, novel=novel)[0]))
            texts.append(tuple(pair))
            targets.append(same)
        elif kind == "tagging":
            topic = i % num_classes
            other = rng.choice([t for t in range(num_classes) if t != topic])
            words, topics = make_sentence(rng, topic, other, part=part, novel=novel)
            texts.append(tuple(words))
            targets.append(tuple(0 if t is None else t + 1 for t in topics))  # 0 = "O"
        else:  # span: which noun phrase does the question's verb belong to?
            texts_, target = _span_example(rng, num_classes, part, novel, i)
            texts.append(texts_)
            targets.append(target)
    return texts, targets


def _span_example(rng, num_classes, part, novel, i):
    lang = language()
    mods_novel, nouns_novel = "modifiers" in novel, "nouns" in novel
    topics = rng.sample(range(num_classes), 3)
    asked = topics[i % 3]
    phrases = []
    for t in topics:
        phrases.append([rng.choice(lang.words("A", t, novel=mods_novel, part=part)),
                        rng.choice(lang.words("N", t, novel=nouns_novel, part=part))])
    verb = rng.choice(lang.words("V", asked, novel=mods_novel, part=part))
    link = ("qo", "xu", "wix") if "grammar" in novel else ("and", "with", "near")
    context, start = [], None
    for j, (t, phrase) in enumerate(zip(topics, phrases, strict=True)):
        if j:
            context.append(link[j])
        context.append("the" if "grammar" not in novel else "jep")
        if t == asked:
            start = len(context)
        context.extend(phrase)
    question = ("which", verb) if "grammar" not in novel else (verb, "yoq")
    return (tuple(question), tuple(context)), (start, start + 1)  # answer: the adjective-noun phrase (words)


def text_task(kind: str = "topic", *, n_per_class: int = 20, similarity: float = 1.0, num_classes: int = 10,
              n_val: int = 200, n_test: int = 500, seed: int = 0):
    """A target task of the text world, split train / val / test (val and test use held-out words).

    Parameters
    ----------
    kind : "topic", "same_topic", "tagging" or "span"
    n_per_class : training examples per class ("topic", "same_topic": per label; "tagging", "span": the
        training set has ``n_per_class * num_classes`` sentences).
    similarity : how much of the target's vocabulary and grammar the pretraining corpus shares (see the module).
    num_classes : topics used (2..10).

    Returns
    -------
    transferlab.text_tasks.TextTask

    Examples
    --------
    >>> t = text_task("topic", n_per_class=2, n_val=4, n_test=4)
    >>> t.kind, len(t.texts["train"]), t.num_classes  # kind: the head it needs
    ('sentence', 20, 10)
    >>> text_task("span", n_per_class=1, n_val=2, n_test=2).texts["train"][0][0][0]
    'which'
    """
    from .tasks import split_seed
    from .text_tasks import TextTask

    kind = as_choice("kind", kind, KINDS)
    n_per_class = as_int("n_per_class", n_per_class, min=1)
    num_classes = as_int("num_classes", num_classes, min=2 if kind != "span" else 3, max=len(TOPICS))
    n_val, n_test = as_int("n_val", n_val, min=1), as_int("n_test", n_test, min=1)
    seed = as_seed(seed)
    novel = novel_factors(similarity)
    n_train = n_per_class * (2 if kind == "same_topic" else num_classes)
    texts, targets = {}, {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        rng = random.Random(split_seed(seed, split, f"text-{kind}-{num_classes}-{similarity}"))
        texts[split], targets[split] = _examples(kind, n, split, num_classes, novel, rng)
    if kind in ("topic", "tagging"):
        classes = TOPICS[:num_classes] if kind == "topic" else ("O", *TOPICS[:num_classes])
    elif kind == "same_topic":
        classes = ("different", "same")
    else:
        classes = ("start", "end")
    info = dict(kind=kind, n_per_class=n_per_class, similarity=float(similarity), novel=list(novel), seed=seed,
                num_classes=num_classes)
    head = {"topic": "sentence", "same_topic": "pair", "tagging": "token", "span": "span"}[kind]
    return TextTask(f"text world {kind} (sim {similarity:g})", head, texts, targets, tuple(classes), info)
