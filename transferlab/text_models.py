"""Tokenizers trained on this machine, tiny Hugging Face Transformers built from configs, and a CBOW model.

Nothing here downloads anything: the tokenizers are trained with the ``tokenizers`` library on the text world's
corpus (deterministically: the same corpus gives the same vocabulary), and the models are
``transformers`` classes built from a config with random weights, which the zoo then pretrains
(:mod:`transferlab.text_zoo`):

- :func:`train_wordpiece` for the encoder (BERT's ``[CLS] a [SEP] b [SEP]`` inputs, ``##`` continuations),
  :func:`train_bpe` for the decoder (GPT-style byte-pair merges, ``</s>`` closing every text);
- :func:`tiny_bert` (``BertForMaskedLM``: an encoder with a masked-word head) and :func:`tiny_gpt`
  (``GPT2LMHeadModel``: a decoder with a next-word head);
- :class:`CBOW`: word embeddings trained to predict a word from the mean of its context's embeddings.

``transformers`` and ``tokenizers`` are the kit's optional ``nlp`` extra; :func:`require_nlp` says how to install
them when they are missing.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import nn

from ._validate import as_int
from .device import seeded

__all__ = ["require_nlp", "train_wordpiece", "train_bpe", "tiny_bert", "tiny_gpt", "CBOW", "LETTERS"]

LETTERS = "abcdefghijklmnopqrstuvwxyz"  # every letter is in every tokenizer's alphabet: no word becomes [UNK]


def require_nlp():
    """Import ``transformers`` (offline-safe) or raise ``ImportError`` saying how to install the nlp extra."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import tokenizers  # noqa: F401
        import transformers
    except ImportError as err:
        raise ImportError("lesson 06 and transferlab's text models need Hugging Face transformers and tokenizers: "
                          "pip install 'transferlab[nlp]' (or: pip install transformers tokenizers peft)") from err
    transformers.logging.set_verbosity_error()
    return transformers


def _fast(tok, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


@functools.lru_cache(maxsize=8)
def _trained(kind: str, texts: tuple, vocab_size: int) -> str:
    """The trained tokenizer as JSON (cached: the zoo asks for the same one many times)."""
    require_nlp()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if kind == "wordpiece":
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special,
                                            initial_alphabet=list(LETTERS), show_progress=False)
    else:
        special = ["<pad>", "<unk>", "</s>"]
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, initial_alphabet=list(LETTERS),
                                      show_progress=False)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # every letter also as a continuation ("##q"): one line of all letter pairs, so no word becomes [UNK]
    alphabet = [" ".join(a + b for a in LETTERS for b in LETTERS)] if kind == "wordpiece" else []
    tok.train_from_iterator(list(texts) + alphabet, trainer)
    if kind == "wordpiece":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        tok.decoder = decoders.WordPiece()
    else:
        eos = tok.token_to_id("</s>")
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B:1 </s>:1",
                                                           special_tokens=[("</s>", eos)])
        tok.decoder = decoders.BPEDecoder()
    return tok.to_str()


def _load(json_text: str, **special):
    from tokenizers import Tokenizer

    return _fast(Tokenizer.from_str(json_text), **special)


def train_wordpiece(texts, vocab_size: int = 600):
    """A WordPiece tokenizer (the encoder's) trained on ``texts``, as a ``PreTrainedTokenizerFast``.

    Examples
    --------
    >>> tok = train_wordpiece(["the big cat sat", "the small dog ran"] * 5, vocab_size=80)
    >>> tok.convert_ids_to_tokens(tok("the cat")["input_ids"])
    ['[CLS]', 'the', 'cat', '[SEP]']
    >>> tok("the cat", "sat")["token_type_ids"]  # segment ids for sentence pairs
    [0, 0, 0, 0, 1, 1]
    """
    vocab_size = as_int("vocab_size", vocab_size, min=40)
    text = _trained("wordpiece", tuple(texts), vocab_size)
    return _load(text, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                 mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def train_bpe(texts, vocab_size: int = 600):
    """A byte-pair-encoding tokenizer (the decoder's) trained on ``texts``; every text ends with ``</s>``.

    Examples
    --------
    >>> tok = train_bpe(["the big cat sat", "the small dog ran"] * 5, vocab_size=80)
    >>> tok.convert_ids_to_tokens(tok("the cat")["input_ids"])[-1]
    '</s>'
    """
    vocab_size = as_int("vocab_size", vocab_size, min=40)
    text = _trained("bpe", tuple(texts), vocab_size)
    return _load(text, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


def tiny_bert(vocab_size: int, *, hidden: int = 128, layers: int = 2, heads: int = 2, max_length: int = 64,
              seed: int = 0, pad_token_id: int = 0):
    """A ``BertForMaskedLM`` built from a config (random weights drawn from ``seed``; no download).

    Examples
    --------
    >>> m = tiny_bert(100, hidden=32, layers=1, heads=2)
    >>> type(m).__name__, m.config.num_hidden_layers
    ('BertForMaskedLM', 1)
    """
    transformers = require_nlp()
    cfg = transformers.BertConfig(vocab_size=as_int("vocab_size", vocab_size, min=8), hidden_size=hidden,
                                  num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=2 * hidden,
                                  max_position_embeddings=max_length, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, type_vocab_size=2, pad_token_id=pad_token_id,
                                  tie_word_embeddings=True)
    with seeded(seed):
        return transformers.BertForMaskedLM(cfg)


def tiny_gpt(vocab_size: int, *, hidden: int = 128, layers: int = 2, heads: int = 2, max_length: int = 64,
             seed: int = 0, pad_token_id: int = 0, eos_token_id: int = 2):
    """A ``GPT2LMHeadModel`` built from a config (random weights drawn from ``seed``; no download).

    Examples
    --------
    >>> m = tiny_gpt(100, hidden=32, layers=1, heads=2)
    >>> type(m).__name__, m.config.n_layer
    ('GPT2LMHeadModel', 1)
    """
    transformers = require_nlp()
    cfg = transformers.GPT2Config(vocab_size=as_int("vocab_size", vocab_size, min=8), n_embd=hidden, n_layer=layers,
                                  n_head=heads, n_positions=max_length, n_inner=2 * hidden, resid_pdrop=0.0,
                                  embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=pad_token_id,
                                  bos_token_id=eos_token_id, eos_token_id=eos_token_id,
                                  tie_word_embeddings=True)
    with seeded(seed):
        return transformers.GPT2LMHeadModel(cfg)


class CBOW(nn.Module):
    """Continuous bag of words: predict the middle token from the mean embedding of its neighbours.

    ``forward(context)`` takes ``[B, 2 * window]`` token ids (``pad_id`` where the sentence ends) and returns
    ``[B, vocab]`` logits for the middle word. After training, ``embed.weight`` holds the word vectors: words that
    occur in the same contexts get similar vectors.

    Examples
    --------
    >>> m = CBOW(50, 8); m(torch.tensor([[1, 2, 0, 3]])).shape
    torch.Size([1, 50])
    """

    def __init__(self, vocab_size: int, dim: int = 64, *, pad_id: int = 0, seed: int = 0):
        super().__init__()
        self.pad_id = as_int("pad_id", pad_id, min=0)
        with seeded(seed):
            self.embed = nn.Embedding(as_int("vocab_size", vocab_size, min=2), as_int("dim", dim, min=1))
            self.out = nn.Linear(dim, vocab_size)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        keep = (context != self.pad_id).unsqueeze(-1).float()
        mean = (self.embed(context) * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.out(mean)
