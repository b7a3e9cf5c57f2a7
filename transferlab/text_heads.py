"""Fine-tuning a pretrained text encoder: replace the last layer, as in computer vision, once per kind of task.

The lecture's three heads, each a linear layer on the encoder's outputs (``last_hidden_state`` ``[B, T, D]``):

- :class:`TextClassifier`: sentence (and sentence-pair) classification from **one** token's output: the first
  (``[CLS]``, encoders), the last real token (decoders, which read left to right), or the mean (bag of embeddings);
- :class:`TokenTagger`: **every** token's output through the same linear layer (one tag per token);
- :class:`SpanExtractor`: every token gets a **start** and an **end** score; only the second segment (the context)
  may hold the answer.

They wrap any Hugging Face base model (the zoo's tiny BERT/GPT, or ``AutoModel.from_pretrained("bert-base-uncased")``
online), so the same code runs offline and at full scale. :func:`encoder_of` takes the encoder out of a model
with a pretraining head; :func:`reinit_top` and :func:`freeze_bottom` are the two practical tricks the lesson
measures; :func:`text_features` gives the pooled features a probe or LogME reads.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ._validate import as_choice, as_int, as_seed
from .device import model_device, seeded

__all__ = ["BagOfEmbeddings", "TextClassifier", "TokenTagger", "SpanExtractor", "encoder_of", "make_task_model",
           "encoder_layers", "reinit_top", "freeze_bottom", "text_features", "default_pooling"]


class _Out:
    def __init__(self, h):
        self.last_hidden_state = h


class BagOfEmbeddings(nn.Module):
    """An "encoder" that is only a word-embedding table (CBOW's): each token's output is its vector.

    Examples
    --------
    >>> enc = BagOfEmbeddings(nn.Embedding(10, 4)); enc(torch.tensor([[1, 2]])).last_hidden_state.shape
    torch.Size([1, 2, 4])
    """

    def __init__(self, embed: nn.Embedding):
        super().__init__()
        self.embed = embed
        self.config = type("BagConfig", (), {"model_type": "bag", "hidden_size": embed.embedding_dim})()

    def forward(self, input_ids, attention_mask=None, **_):
        return _Out(self.embed(input_ids))


def encoder_of(model: nn.Module) -> nn.Module:
    """The base encoder inside ``model`` (a masked/causal LM, a CBOW model, or already a base model)."""
    if hasattr(model, "embed") and hasattr(model, "out") and isinstance(model.embed, nn.Embedding):
        return BagOfEmbeddings(model.embed)
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def default_pooling(encoder: nn.Module) -> str:
    """"first" for bidirectional encoders, "last" for left-to-right decoders, "mean" for a bag of embeddings."""
    kind = getattr(getattr(encoder, "config", None), "model_type", "")
    return {"gpt2": "last", "bag": "mean", "gpt_neo": "last", "llama": "last", "opt": "last"}.get(kind, "first")


def _encode(encoder: nn.Module, input_ids, attention_mask, token_type_ids):
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask)
    model_type = getattr(getattr(encoder, "config", None), "model_type", "")
    if token_type_ids is not None and model_type != "gpt2" and \
            "token_type_ids" in inspect.signature(encoder.forward).parameters:
        kwargs["token_type_ids"] = token_type_ids
    return encoder(**kwargs).last_hidden_state


def _hidden(encoder: nn.Module) -> int:
    cfg = encoder.config
    for key in ("hidden_size", "n_embd", "dim", "d_model"):
        if isinstance(getattr(cfg, key, None), int):
            return getattr(cfg, key)
    raise ValueError(f"cannot tell the width of {type(encoder).__name__}'s outputs from its config")


class TextClassifier(nn.Module):
    """Encoder + one token's output (or the mean) + a linear layer: sentence and sentence-pair classification."""

    def __init__(self, encoder: nn.Module, num_classes: int, *, pooling: str | None = None, seed: int = 0):
        super().__init__()
        self.encoder = encoder
        self.pooling = as_choice("pooling", pooling or default_pooling(encoder), ("first", "last", "mean"))
        with seeded(as_seed(seed)):
            self.head = nn.Linear(_hidden(encoder), as_int("num_classes", num_classes, min=1))

    def features(self, input_ids, attention_mask, token_type_ids=None, **_) -> torch.Tensor:
        h = _encode(self.encoder, input_ids, attention_mask, token_type_ids)
        if self.pooling == "first":
            return h[:, 0]
        if self.pooling == "last":
            last = attention_mask.sum(1).clamp(min=1) - 1
            return h[torch.arange(len(h), device=h.device), last]
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, input_ids, attention_mask, token_type_ids=None, **_) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask, token_type_ids))


class TokenTagger(nn.Module):
    """Encoder + the same linear layer on every token's output: ``[B, T, num_tags]`` logits."""

    def __init__(self, encoder: nn.Module, num_tags: int, *, seed: int = 0):
        super().__init__()
        self.encoder = encoder
        with seeded(as_seed(seed)):
            self.head = nn.Linear(_hidden(encoder), as_int("num_tags", num_tags, min=1))

    def forward(self, input_ids, attention_mask, token_type_ids=None, **_) -> torch.Tensor:
        return self.head(_encode(self.encoder, input_ids, attention_mask, token_type_ids))


class SpanExtractor(nn.Module):
    """Encoder + a start and an end score per token; tokens outside ``span_mask`` (the question, padding)
    score -1e4. Returns ``[B, 2, T]``: row 0 start scores, row 1 end scores."""

    def __init__(self, encoder: nn.Module, *, seed: int = 0):
        super().__init__()
        self.encoder = encoder
        with seeded(as_seed(seed)):
            self.head = nn.Linear(_hidden(encoder), 2)

    def forward(self, input_ids, attention_mask, token_type_ids=None, span_mask=None, **_) -> torch.Tensor:
        scores = self.head(_encode(self.encoder, input_ids, attention_mask, token_type_ids)).transpose(1, 2)
        allowed = (span_mask if span_mask is not None else attention_mask).bool().unsqueeze(1)
        return scores.masked_fill(~allowed, -1e4)


def make_task_model(model: nn.Module, kind: str, num_classes: int = 2, *, seed: int = 0,
                    pooling: str | None = None) -> nn.Module:
    """The model for a task of ``kind`` ("sentence", "pair", "token", "span") on ``model``'s encoder, with a new,
    randomly initialised (``seed``) head. ``model`` is used as it is (copy it first to keep the original)."""
    kind = as_choice("kind", kind, ("sentence", "pair", "token", "span"))
    enc = encoder_of(model)
    if kind in ("sentence", "pair"):
        return TextClassifier(enc, num_classes, pooling=pooling, seed=seed)
    if kind == "token":
        return TokenTagger(enc, num_classes, seed=seed)
    return SpanExtractor(enc, seed=seed)


def encoder_layers(encoder: nn.Module) -> list[nn.Module]:
    """The encoder's Transformer blocks, bottom to top (BERT, GPT-2, DistilBERT, RoBERTa layouts)."""
    for path in ("encoder.layer", "h", "transformer.layer", "layers", "layer"):
        try:
            blocks = encoder.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList):
            return list(blocks)
    return []


def _embeddings(encoder: nn.Module) -> list[nn.Module]:
    for path in ("embeddings", "embed"):
        try:
            return [encoder.get_submodule(path)]
        except AttributeError:
            continue
    return [encoder.get_submodule(p) for p in ("wte", "wpe") if hasattr(encoder, p)]


def reinit_top(model: nn.Module, k: int, *, seed: int = 0) -> list[int]:
    """Re-initialise the top ``k`` Transformer blocks of ``model.encoder`` as before pretraining; returns their
    indices. Uses the model's own initialiser (``_init_weights``), drawing from ``seed``."""
    enc = model.encoder if hasattr(model, "encoder") else model
    layers = encoder_layers(enc)
    k = as_int("k", k, min=0, max=len(layers))
    init = getattr(enc, "_init_weights", None)
    if k and init is None:
        raise ValueError(f"{type(enc).__name__} has no _init_weights: cannot re-initialise its layers")
    with seeded(as_seed(seed)), torch.no_grad():
        for block in layers[len(layers) - k:]:
            for module in block.modules():
                init(module)
    return list(range(len(layers) - k, len(layers)))


def freeze_bottom(model: nn.Module, k: int) -> list[str]:
    """Freeze the embeddings (``k >= 1``) and the lowest ``k - 1`` Transformer blocks; returns the frozen names."""
    enc = model.encoder if hasattr(model, "encoder") else model
    layers = encoder_layers(enc)
    k = as_int("k", k, min=0, max=len(layers) + 1)
    parts = (_embeddings(enc) if k >= 1 else []) + layers[: max(0, k - 1)]
    names = {id(m): n for n, m in model.named_modules()}
    for part in parts:
        for p in part.parameters():
            p.requires_grad_(False)
    return [names.get(id(m), type(m).__name__) for m in parts]


@torch.no_grad()
def text_features(model: nn.Module, data, *, pooling: str | None = None, device=None):
    """Pooled features ``[N, D]`` (CPU, float32) and labels of every batch, with the encoder in eval mode.

    ``model`` is a :class:`TextClassifier` or anything :func:`encoder_of` accepts (a zoo text model).
    """
    clf = model if isinstance(model, TextClassifier) else TextClassifier(encoder_of(model), 1, pooling=pooling)
    device = model_device(clf, device)
    was = clf.training
    clf.eval()
    feats, labels = [], []
    try:
        for x, y in data:
            feats.append(clf.features(**{k: v.to(device) for k, v in x.items()}).float().cpu())
            labels.append(y.cpu())
    finally:
        clf.train(was)
    if not feats:
        raise ValueError("text_features() got no batches: the data is empty")
    return torch.cat(feats), torch.cat(labels)
