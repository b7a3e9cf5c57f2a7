"""The zoo's text models: a tiny BERT (masked LM), a tiny GPT (causal LM) and CBOW, pretrained on the text world.

Each recipe is a :class:`TextZooSpec`, a :class:`transferlab.zoo.ZooEntry` of kind ``"text"``, so the zoo builds,
hash-verifies and loads text models exactly as it does image ones (``zoo.load("textbert-mlm")``). A loaded model
carries the tokenizer it was trained with as ``model.tokenizer``: tokenizers are trained here, deterministically,
from the recipe's corpus, and the recipe's fingerprint includes the ``tokenizers`` version, so a library that
trains a different vocabulary also rebuilds the weights.

Checkpoint entries (``checkpoint=<step>``) are the same pretraining run stopped early: built in one process
(``make zoo``) they share one run, which keeps copies of the weights at every step a recipe asks for.

Importing this module does not import ``transformers`` (the other lessons' zoo calls stay fast); building or loading
a text model does, and says how to install it when it is missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from importlib import metadata

from .zoo_entry import ZooEntry

__all__ = ["TextZooSpec", "TEXT_ZOO", "register", "tokenizer_for", "corpus_for"]

_TEXT_WORLD_VERSION = 2  # bump when the text world's language or corpus changes, so text models are rebuilt


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=4)
def corpus_for(size: int, seed: int) -> tuple[str, ...]:
    """The pretraining corpus of a recipe (cached)."""
    from .text_world import corpus

    return tuple(corpus(size, seed=seed))


def tokenizer_for(arch: str, corpus_size: int = 20000, vocab_size: int = 600, seed: int = 0):
    """The tokenizer a text recipe trains: WordPiece for "bert" and "cbow", BPE for "gpt"."""
    from .text_models import train_bpe, train_wordpiece

    texts = corpus_for(corpus_size, seed)
    return (train_bpe if arch == "gpt" else train_wordpiece)(texts, vocab_size)


@dataclass(frozen=True)
class TextZooSpec(ZooEntry):
    """How one text model of the zoo is built and pretrained on the text world's corpus."""

    arch: str  # "bert" (encoder, masked LM), "gpt" (decoder, causal LM), "cbow" (word embeddings)
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    corpus_size: int = 20000
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    vocab_size: int = 600
    checkpoint: int | None = None  # keep the weights at this optimiser step (None: the end of pretraining)
    embed_init: str | None = None  # "cbow": start the word embeddings from CBOW vectors trained on the same tokens
    mask_prob: float = 0.15  # masked LM: the fraction of tokens to predict
    seed: int = 0
    description: str = ""
    kind = "text"

    @property
    def objective(self) -> str:
        return {"bert": "mlm", "gpt": "clm", "cbow": "cbow"}[self.arch]

    def fingerprint(self) -> str:
        recipe = {k: v for k, v in asdict(self).items() if k != "description"}
        blob = (json.dumps(recipe, sort_keys=True) + f"|textworld{_TEXT_WORLD_VERSION}"
                f"|tokenizers{_version('tokenizers')}")
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def tokenizer(self):
        return tokenizer_for(self.arch, self.corpus_size, self.vocab_size, self.seed)

    def make_model(self):
        from .text_models import CBOW, tiny_bert, tiny_gpt

        tok = self.tokenizer()
        if self.arch == "bert":
            model = tiny_bert(len(tok), hidden=self.hidden, layers=self.layers, heads=self.heads, seed=self.seed,
                              pad_token_id=tok.pad_token_id)
        elif self.arch == "gpt":
            model = tiny_gpt(len(tok), hidden=self.hidden, layers=self.layers, heads=self.heads, seed=self.seed,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        elif self.arch == "cbow":
            model = CBOW(len(tok), self.hidden, pad_id=tok.pad_token_id, seed=self.seed)
        else:
            raise ValueError(f"unknown text architecture {self.arch!r}; expected 'bert', 'gpt' or 'cbow'")
        model.tokenizer = tok
        model.pretrained_cfg = dict(architecture=f"text-{self.arch}", objective=self.objective,
                                    hidden=self.hidden, layers=self.layers if self.arch != "cbow" else 0)
        return model

    def _run_key(self) -> TextZooSpec:
        return replace(self, checkpoint=None, description="")

    def pretrain(self, *, progress: bool, device):
        keep = _checkpoints_of(self._run_key()) | ({self.checkpoint} if self.checkpoint is not None else set())
        run = _pretraining_run(self._run_key(), keep,
                               progress, str(device) if device is not None else None)
        model = self.make_model()
        step = self.checkpoint if self.checkpoint is not None else run["last_step"]
        if step not in run["states"]:
            raise ValueError(f"checkpoint step {step} is beyond the end of pretraining ({run['last_step']} steps)")
        model.load_state_dict(run["states"][step])
        metrics = dict(run["metrics"][step], pretrain_steps=step, total_steps=run["last_step"],
                       curve=[r for r in run["curve"] if r["step"] <= step])
        return model.cpu(), metrics

    def summary(self) -> dict:
        stop = f", stopped at step {self.checkpoint}" if self.checkpoint is not None else ""
        budget = f"{self.epochs} epochs{stop}"
        return dict(arch=f"text-{self.arch}", label=self.objective, images=None, sentences=self.corpus_size,
                    epochs=self.epochs, label_noise=0.0, budget=budget)

    def loaded_info(self) -> dict:
        return dict(source=f"text world corpus ({self.corpus_size} sentences), {self.objective}")


def _checkpoints_of(run_key: TextZooSpec) -> set:
    from .zoo import ZOO

    return {s.checkpoint for s in ZOO.values() if isinstance(s, TextZooSpec) and s._run_key() == run_key
            and s.checkpoint is not None}


@functools.lru_cache(maxsize=4)
def _cached_run(run_key: TextZooSpec, keep: frozenset, progress: bool, device: str | None) -> dict:
    import torch

    from . import text_pretrain as P
    from .text_models import require_nlp

    require_nlp()
    model = run_key.make_model()
    tok = model.tokenizer
    texts = list(corpus_for(run_key.corpus_size, run_key.seed))
    held_out = list(corpus_for(1000, run_key.seed + 1))
    enc, val = tok(texts, padding=True, return_tensors="pt"), tok(held_out, padding=True, return_tensors="pt")
    special = [i for i in (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.eos_token_id) if i is not None]
    if run_key.arch == "cbow":
        ctx, mid = P.cbow_examples(enc["input_ids"], enc["attention_mask"], pad_id=tok.pad_token_id,
                                   special_ids=special)
        curve = P.pretrain_cbow(model, ctx, mid, epochs=run_key.epochs, lr=run_key.lr, seed=run_key.seed,
                                device=device, progress=progress)
        vctx, vmid = P.cbow_examples(val["input_ids"], val["attention_mask"], pad_id=tok.pad_token_id,
                                     special_ids=special)
        with torch.no_grad():
            logits = model(vctx.to(next(model.parameters()).device)).cpu()
        acc = float((logits.argmax(-1) == vmid).float().mean())
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        step = len(curve)
        return dict(curve=curve, states={step: state}, last_step=step,
                    metrics={step: dict(source_test_acc=round(acc, 4), final_loss=round(curve[-1]["loss"], 4))})
    if run_key.embed_init == "cbow":  # word embeddings first, then the Transformer
        _init_from_cbow(model, enc, tok, special, run_key, device)
    curve, states = P.pretrain(model, run_key.objective, enc["input_ids"], enc["attention_mask"],
                               epochs=run_key.epochs, lr=run_key.lr, batch_size=run_key.batch_size,
                               mask_id=tok.mask_token_id, special_ids=special, seed=run_key.seed, device=device,
                               checkpoints=sorted(keep), progress=progress, desc=f"pretrain text-{run_key.arch}",
                               mask_prob=run_key.mask_prob)
    metrics = {}
    for step, state in states.items():
        model.load_state_dict(state)
        ev = P.lm_accuracy(model, run_key.objective, val["input_ids"], val["attention_mask"],
                           mask_id=tok.mask_token_id, special_ids=special, seed=run_key.seed)
        metrics[step] = dict(source_test_acc=round(ev["acc"], 4), heldout_loss=round(ev["loss"], 4))
    return dict(curve=curve, states=states, last_step=max(states), metrics=metrics)


def _init_from_cbow(model, enc, tok, special, run_key, device) -> None:
    """Train CBOW vectors on the recipe's tokens and copy them (rescaled to the model's init) into its embeddings."""
    import torch

    from . import text_pretrain as P
    from .text_models import CBOW

    emb = model.get_input_embeddings().weight
    cbow = CBOW(len(tok), emb.shape[1], pad_id=tok.pad_token_id, seed=run_key.seed)
    ctx, mid = P.cbow_examples(enc["input_ids"], enc["attention_mask"], pad_id=tok.pad_token_id, special_ids=special)
    P.pretrain_cbow(cbow, ctx, mid, epochs=2, lr=3e-3, seed=run_key.seed, device=device, progress=False)
    vectors = cbow.embed.weight.detach().cpu()
    with torch.no_grad():
        emb.copy_((vectors - vectors.mean(0)) / vectors.std() * emb.std())


def _pretraining_run(run_key, keep, progress, device):
    return _cached_run(run_key, frozenset(keep), bool(progress), device)


# BERT masks 40% of the tokens, not BERT's 15%: a masked LM learns only from the tokens it hides, and at 15% the
# kit's ~900-step budget leaves it on the context-free plateau (Wettig et al., 2022, found 40% better at scale too).
_BERT = dict(embed_init="cbow", mask_prob=0.4)
TEXT_ZOO: dict[str, TextZooSpec] = {
    "textbert-mlm": TextZooSpec("bert", **_BERT,
                                description="tiny BERT (2 layers, hidden 128): CBOW word vectors, then masked LM"),
    "textbert-mlm-s0": TextZooSpec("bert", **_BERT, checkpoint=0,
                                   description="the same run before masked-LM training: CBOW vectors only"),
    "textbert-mlm-s300": TextZooSpec("bert", **_BERT, checkpoint=300,
                                     description="the same run after 300 masked-LM steps (on the plateau)"),
    "textbert-mlm-s600": TextZooSpec("bert", **_BERT, checkpoint=600,
                                     description="the same run after 600 masked-LM steps"),
    "textgpt-clm": TextZooSpec("gpt", embed_init="cbow",
                               description="tiny GPT (2 layers, hidden 128): CBOW word vectors, then causal LM"),
    "textcbow": TextZooSpec("cbow", hidden=64, epochs=2, lr=3e-3, batch_size=512,
                            description="CBOW word embeddings (64-d)"),
}


def register(zoo: dict) -> None:
    """Add the text recipes to a zoo registry (``transferlab.zoo.ZOO`` holds them from the start)."""
    for name, spec in TEXT_ZOO.items():
        zoo.setdefault(name, spec)

