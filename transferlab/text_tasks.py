"""Text tasks: examples as words, encoded by a tokenizer into the batches a Transformer reads.

A :class:`TextTask` holds raw examples per split (``train`` / ``val`` / ``test``) and says which **head** it needs
(its ``kind``):

- ``"sentence"``: one text, one label (topic, sentiment);
- ``"pair"``: two texts, one label (same topic?, entailment, paraphrase); the tokenizer builds
  ``[CLS] a [SEP] b [SEP]``;
- ``"token"``: a sequence of words with one tag per word;
- ``"span"``: a question and a context (both as words) with the answer's first and last context word.

The input is constructed per task, as the lecture says: :meth:`TextTask.encode` runs a Hugging Face tokenizer
(the kit's own WordPiece/BPE ones or a real model's) and aligns the labels with the tokens it makes (a word's
tag goes to its first sub-token, the others get ``-100``, the index a loss ignores; a span's words become the
positions of its first and last token). The result, :class:`EncodedTextTask`, is a :class:`~transferlab.tasks.Task`
whose loaders yield ``(inputs, labels)`` with ``inputs`` a dict of tensors (``input_ids``, ``attention_mask``,
and ``token_type_ids`` / ``span_mask`` where they apply), so a model is called as ``model(**inputs)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from ._validate import as_choice, as_int, as_seed
from .tasks import Task, epoch_order

__all__ = ["HEAD_KINDS", "IGNORE_INDEX", "TextTask", "EncodedTextTask", "TextLoader"]

HEAD_KINDS = ("sentence", "pair", "token", "span")
IGNORE_INDEX = -100  # labels a loss skips (sub-tokens after a word's first, special tokens, padding)


@dataclass(frozen=True)
class TextTask(Task):
    """Raw text examples and their labels, per split; ``kind`` names the head the task needs.

    ``texts[split]`` holds strings (``"sentence"``), pairs of strings (``"pair"``), tuples of words
    (``"token"``) or ``(question_words, context_words)`` (``"span"``); ``targets[split]`` holds an int per
    example, a tag per word, or the answer's ``(first_word, last_word)`` in the context.

    Examples
    --------
    >>> t = TextTask("demo", "sentence", {"train": ["a b", "c"], "val": ["a"], "test": ["c"]},
    ...              {"train": [0, 1], "val": [0], "test": [1]}, ("x", "y"))
    >>> t.num_classes, t.labels("train").tolist(), t.majority_accuracy("train")
    (2, [0, 1], 0.5)
    """

    name: str
    kind: str
    texts: dict
    targets: dict
    classes: tuple
    info: dict = field(default_factory=dict)
    sealed: bool = True  # the test split needs final=True (every choice is made on "val")

    @property
    def has_val(self) -> bool:
        return True

    def __post_init__(self):
        as_choice("kind", self.kind, HEAD_KINDS)
        for split in self.splits:
            if split not in self.texts or split not in self.targets:
                raise ValueError(f"{self.name}: split {split!r} is missing (expected {self.splits})")
            if len(self.texts[split]) != len(self.targets[split]):
                raise ValueError(f"{self.name}: split {split!r} has {len(self.texts[split])} texts but "
                                 f"{len(self.targets[split])} targets")
            if not self.texts[split]:
                raise ValueError(f"{self.name}: split {split!r} is empty")

    def labels(self, split: str, *, final: bool = False) -> torch.Tensor:
        """The labels of ``split``: ``[N]`` class indices (sentence/pair) or ``[N, 2]`` word spans; ``token``
        tasks have one tag per word, returned flat (every word of every example)."""
        self._check_split(split, final)
        y = self.targets[split]
        if self.kind == "token":
            return torch.tensor([t for tags in y for t in tags], dtype=torch.long)
        return torch.tensor(y, dtype=torch.long)

    def majority_accuracy(self, split: str = "train") -> float:
        """Accuracy of always answering the most frequent label of ``split`` (sentence, pair and token tasks)."""
        if self.kind == "span":
            raise ValueError("a span task has no majority class (its answers are positions)")
        y = self.labels(split, final=True)  # label counts only: no model is evaluated
        return float(torch.bincount(y).max()) / len(y)

    def subset(self, n: int, *, seed: int = 0) -> TextTask:
        """The first ``n`` training examples after a seeded shuffle (val and test kept whole)."""
        n = as_int("n", n, min=1, max=len(self.texts["train"]))
        order = torch.randperm(len(self.texts["train"]), generator=torch.Generator().manual_seed(as_seed(seed)))
        idx = sorted(order[:n].tolist())
        texts = dict(self.texts, train=[self.texts["train"][i] for i in idx])
        targets = dict(self.targets, train=[self.targets["train"][i] for i in idx])
        return TextTask(self.name, self.kind, texts, targets, self.classes, dict(self.info, n_train=n), self.sealed)

    def loader(self, split="train", batch_size=128, *, shuffle=None, seed=0, final=False, **kwargs):
        raise TypeError("a TextTask holds words: encode it with a tokenizer first, "
                        "task.encode(tokenizer).loader(split, batch_size)")

    def encode(self, tokenizer, *, max_length: int = 128) -> EncodedTextTask:
        """Tokenize every split with ``tokenizer`` (a Hugging Face fast tokenizer) and align the labels."""
        max_length = as_int("max_length", max_length, min=4)
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(f"encode() needs a Hugging Face *fast* tokenizer (word alignment), got "
                            f"{type(tokenizer).__name__}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no padding token; set tokenizer.pad_token (e.g. to its eos token)")
        data = {s: _encode_split(self, s, tokenizer, max_length) for s in self.splits}
        return EncodedTextTask(self.name, self.kind, self.classes, data, dict(self.info), tokenizer.pad_token_id,
                               self.sealed)

    def __repr__(self):
        sizes = ", ".join(f"{s}={len(self.texts[s])}" for s in self.splits)
        return f"TextTask({self.name!r}, kind={self.kind!r}, classes={self.num_classes}, {sizes})"


def _encode_split(task: TextTask, split: str, tok, max_length: int) -> dict:
    texts, targets, kind = task.texts[split], task.targets[split], task.kind
    kw = dict(truncation=True, max_length=max_length)
    if kind == "sentence":
        enc = tok(list(texts), **kw)
        labels = list(targets)
    elif kind == "pair":
        enc = tok([a for a, _ in texts], [b for _, b in texts], **kw)
        labels = list(targets)
    elif kind == "token":
        enc = tok([list(w) for w in texts], is_split_into_words=True, **kw)
        labels = [_align_tags(enc.word_ids(i), tags) for i, tags in enumerate(targets)]
    else:
        enc = tok([list(q) for q, _ in texts], [list(c) for _, c in texts], is_split_into_words=True, **kw)
        labels = [_span_positions(enc, i, span) for i, span in enumerate(targets)]
    out = {"input_ids": _pad(enc["input_ids"], tok.pad_token_id), "attention_mask": _pad(enc["attention_mask"], 0)}
    if "token_type_ids" in enc and kind in ("pair", "span"):
        out["token_type_ids"] = _pad(enc["token_type_ids"], 0)
    if kind == "span":
        out["span_mask"] = _pad([[int(s == 1) for s in enc.sequence_ids(i)] for i in range(len(texts))], 0)
    y = _pad(labels, IGNORE_INDEX) if kind == "token" else torch.tensor(labels, dtype=torch.long)
    return {"x": out, "y": y}


def _align_tags(word_ids: list, tags) -> list[int]:
    out, previous = [], None
    for w in word_ids:
        out.append(IGNORE_INDEX if w is None or w == previous else int(tags[w]))
        previous = w
    return out


def _span_positions(enc, i: int, span) -> tuple[int, int]:
    first, last = span
    start = end = None
    for pos, (w, s) in enumerate(zip(enc.word_ids(i), enc.sequence_ids(i), strict=True)):
        if s != 1 or w is None:
            continue
        if w == first and start is None:
            start = pos
        if w == last:
            end = pos
    if start is None or end is None:
        raise ValueError(f"example {i}: the answer (context words {first}..{last}) was cut off by truncation; "
                         f"raise max_length")
    return start, end


def _pad(rows, value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return out


@dataclass(frozen=True)
class EncodedTextTask(Task):
    """A :class:`TextTask` after tokenization: padded tensors per split, ready for :class:`TextLoader`."""

    name: str
    kind: str
    classes: tuple
    data: dict
    info: dict
    pad_token_id: int
    sealed: bool = True

    @property
    def has_val(self) -> bool:
        return True

    def labels(self, split: str, *, final: bool = False) -> torch.Tensor:
        """``[N]`` class indices, ``[N, T]`` token tags (-100 = ignored) or ``[N, 2]`` token spans."""
        return self.data[self._check_split(split, final)]["y"]

    def num_examples(self, split: str) -> int:
        return len(self.data[self._check_split(split, final=True)]["y"])

    def loader(self, split: str = "train", batch_size: int = 32, *, shuffle: bool | None = None,
               seed: int = 0, final: bool = False) -> TextLoader:
        """Batches of ``split``; ``shuffle`` defaults to True for "train" only. The test split is sealed: it
        needs ``final=True`` (the one evaluation of a model whose every choice was made on "val")."""
        d = self.data[self._check_split(split, final)]
        return TextLoader(d["x"], d["y"], batch_size, shuffle=(split == "train") if shuffle is None else shuffle,
                          seed=seed, token_labels=self.kind == "token")


class TextLoader:
    """Mini-batches ``(inputs, labels)`` from padded tensors, each batch trimmed to its longest sequence.

    Shuffling is seeded and changes every epoch reproducibly; the global random state is never touched.
    ``token_labels=True``: ``y`` is ``[N, T]`` (one label per token) and is trimmed with the inputs.

    Examples
    --------
    >>> x = {"input_ids": torch.tensor([[5, 6, 0], [7, 0, 0], [8, 9, 4]]),
    ...      "attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])}
    >>> [tuple(b["input_ids"].shape) for b, _ in TextLoader(x, torch.tensor([0, 1, 0]), 2)]
    [(2, 2), (1, 3)]
    """

    def __init__(self, x: dict, y: torch.Tensor, batch_size: int = 32, *, shuffle: bool = False, seed: int = 0,
                 token_labels: bool = False):
        if "input_ids" not in x or "attention_mask" not in x:
            raise ValueError(f"inputs need 'input_ids' and 'attention_mask', got {sorted(x)}")
        n = len(x["input_ids"])
        if any(len(v) != n for v in x.values()) or len(y) != n:
            raise ValueError(f"inputs and labels disagree on the number of examples: "
                             f"{ {k: len(v) for k, v in x.items()} } and {len(y)} labels")
        self.x, self.y = x, y
        self.batch_size = as_int("batch_size", batch_size, min=1)
        self.shuffle, self.seed, self._epoch = bool(shuffle), as_seed(seed), 0
        self.token_labels = bool(token_labels)
        if self.token_labels and tuple(y.shape) != tuple(x["input_ids"].shape):
            raise ValueError(f"token labels must have the inputs' shape {tuple(x['input_ids'].shape)}, "
                             f"got {tuple(y.shape)}")

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def __iter__(self) -> Iterator[tuple[dict, torch.Tensor]]:
        order = epoch_order(len(self.y), shuffle=self.shuffle, seed=self.seed, epoch=self._epoch)
        self._epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size: (i + 1) * self.batch_size]
            width = int(self.x["attention_mask"][idx].sum(1).max())
            batch = {k: v[idx, :width] for k, v in self.x.items()}
            yield batch, (self.y[idx, :width] if self.token_labels else self.y[idx])
