"""The manifest: every claim of the source material, with where it comes from and which lesson measures it.

The ledger lists what the lessons *recorded*; the manifest lists what the sources *say*, so that a claim no
lesson measures shows up as "not measured yet" (with the reason) instead of silently missing. Each entry gives
the claim in the kit's own words (a brief paraphrase, not a quotation), its source, and the lesson that records
it under the same id, or ``lesson=None`` and why not. Tests check both directions: a lesson records only ids
listed here, and every entry that names a lesson is recorded by that lesson.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["Source", "ClaimEntry", "SOURCES", "MANIFEST", "coverage", "entries_for"]


@dataclass(frozen=True)
class Source:
    """A piece of source material: a lecture, an article, a paper."""

    key: str
    title: str
    author: str
    kind: str  # "lecture", "article", "paper", "docs"
    url: str = ""


@dataclass(frozen=True)
class ClaimEntry:
    """One claim of a source. ``lesson`` is the notebook stem that records ``id``, or None (then ``why``)."""

    id: str
    source: str
    says: str
    lesson: str | None = None
    why: str = ""

    @property
    def measured(self) -> bool:
        return self.lesson is not None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"claim {self.id!r} names an unknown source {self.source!r}; sources: {sorted(SOURCES)}")
        if self.lesson is None and not self.why:
            raise ValueError(f"claim {self.id!r} is not measured by any lesson: say why (why=...)")


SOURCES: dict[str, Source] = {s.key: s for s in (
    Source("stanford-finetuning", "Fine-tuning (Practical Machine Learning, lecture on transfer learning)",
           "Stanford CS 329P", "lecture"),
    Source("stanford-nlp", "Transfer learning in NLP (Practical Machine Learning, same lecture, second half)",
           "Stanford CS 329P", "lecture"),
    Source("freeze-advice", "Which layers to freeze: data size x data similarity", "the course's reading on "
           "fine-tuning strategies", "article"),
    Source("pytorch-freeze", "Four ways to freeze layers in PyTorch", "the course's reading on freezing", "article"),
    Source("swa-paper", "Averaging Weights Leads to Wider Optima and Better Generalization",
           "Izmailov, Podoprikhin, Garipov, Vetrov, Wilson (UAI 2018)", "paper", "https://arxiv.org/abs/1803.05407"),
    Source("swa-fastai", "Stochastic Weight Averaging in fast.ai", "fast.ai community post", "article"),
    Source("logme-paper", "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
           "You, Liu, Wang, Long (ICML 2021)", "paper", "https://arxiv.org/abs/2102.11005"),
    Source("keras-bn-pitfalls", "Keras vs PyTorch pretrained models: the BatchNorm layer and other pitfalls",
           "the course's reading on using pretrained models with care", "article"),
    Source("keras-guide", "Transfer learning & fine-tuning (Keras developer guide)", "Keras team", "docs",
           "https://keras.io/guides/transfer_learning/"),
    Source("bert-stability", "Revisiting few-sample BERT fine-tuning; On the stability of fine-tuning BERT",
           "Zhang et al. (ICLR 2021); Mosbach et al. (ICLR 2021)", "paper"),
)}


def _c(id: str, source: str, says: str, lesson: str | None = None, why: str = "") -> ClaimEntry:  # noqa: A002
    return ClaimEntry(id, source, says, lesson, why)


L00, L01, L02, L03, L04, L05 = ("00_transfer_learning_basics", "01_freezing_strategies", "02_freeze_methods",
                                "03_swa_optima_width", "04_logme", "05_batchnorm_pitfalls")

_ENTRIES: tuple[ClaimEntry, ...] = (
    # ---------------------------------------------------------------- the fine-tuning lecture (lesson 00)
    _c("pretrained-converges-faster", "stanford-finetuning",
       "Starting from pretrained weights converges much faster than starting from random weights.", L00),
    _c("pretrained-ends-more-accurate", "stanford-finetuning",
       "With little target data, fine-tuning a pretrained model ends more accurate than training from scratch.",
       L00),
    _c("lr-10x-smaller", "stanford-finetuning",
       "Fine-tune with a learning rate about ten times smaller than the one used from scratch.", L00),
    _c("few-epochs", "stanford-finetuning", "A few epochs of fine-tuning are enough.", L00),
    # ---------------------------------------------------------------- which layers to freeze (lesson 01)
    _c("small-similar-head-only", "freeze-advice",
       "Small data, similar to the pretraining data: change only the last layer.", L01),
    _c("small-dissimilar-freeze-k", "freeze-advice",
       "Small data, dissimilar: freeze the first k layers and retrain the rest.", L01),
    _c("large-dissimilar-scratch", "freeze-advice", "Large data, dissimilar: train from scratch.", L01),
    _c("large-similar-finetune-all", "freeze-advice",
       "Large data, similar: keep the initial weights and retrain the whole model.", L01),
    _c("head-first", "freeze-advice",
       "Train the new head with the base frozen first: a random head's gradients disturb the pretrained features.",
       L01),
    _c("discriminative-lr", "freeze-advice",
       "Lower layers should learn more slowly than upper layers (discriminative learning rates).", L01),
    # ---------------------------------------------------------------- four ways to freeze (lesson 02)
    _c("freeze-four-methods-keep-weights", "pytorch-freeze",
       "All four freezing methods keep the frozen weights unchanged.", L02),
    _c("freeze-requires-grad-cheaper", "pytorch-freeze",
       "requires_grad=False is cheaper in time and memory than leaving parameters out of the optimizer or "
       "restoring them after each step.", L02),
    _c("freeze-bn-stats-need-eval", "pytorch-freeze",
       "None of the four methods freezes BatchNorm running statistics; only eval mode does.", L02),
    _c("freeze-restore-stale-momentum", "pytorch-freeze",
       "Restoring weights after each step leaves stale optimizer momentum that moves them once unfrozen.", L02),
    _c("freeze-adamw-zero-grads", "pytorch-freeze",
       "AdamW's decoupled weight decay moves 'frozen' weights whose gradients are zeroed rather than None.", L02),
    # ---------------------------------------------------------------- SWA (lesson 03)
    _c("swa-beats-sgd", "swa-paper",
       "SWA gives lower test error than SGD at the same budget, and more so with 1.25 and 1.5 budgets.", L03),
    _c("swa-wider-optima", "swa-paper", "SWA finds wider optima than SGD along random directions.", L03),
    _c("sgd-at-periphery", "swa-paper",
       "SGD ends near the periphery of the low-error region, SWA nearer its centre.", L03),
    _c("swa-needs-update-bn", "swa-paper",
       "The averaged weights need their BatchNorm statistics recomputed before use.", L03),
    # ---------------------------------------------------------------- LogME (lesson 04)
    _c("toy-monotone", "logme-paper", "On toy data LogME falls monotonically as the features are degraded.", L04),
    _c("ranks-models", "logme-paper",
       "LogME ranks pretrained models by their fine-tuned accuracy better than LEEP, NCE and H-score.", L04),
    _c("fraction-of-finetune-time", "logme-paper",
       "Scoring with LogME costs a tiny fraction of fine-tuning (about 0.31 per mille of the wall-clock time).",
       L04),
    _c("optimised-faster", "logme-paper",
       "The optimised LogME (one decomposition, then a cheap fixed point) is much faster than the naive one.", L04),
    # ---------------------------------------------------------------- using pretrained models with care (05)
    _c("old-keras-frozen-bn-collapse", "keras-bn-pitfalls",
       "In Keras <= 2.1 a frozen BatchNorm layer still used mini-batch statistics: the model looks fine in "
       "training and collapses at inference.", L05),
    _c("keras3-trainable-false-bn-inference-mode", "keras-guide",
       "In Keras 3, trainable=False on a BatchNorm layer makes it run in inference mode.", L05),
    _c("keras-training-false-finetuning-idiom", "keras-guide",
       "Call the base model with training=False when fine-tuning, so its BatchNorm layers stay in inference "
       "mode even after unfreezing.", L05),
    _c("keras-vs-pytorch-bn-same-numbers", "keras-bn-pitfalls",
       "With the same weights and conventions, Keras and PyTorch BatchNorm compute the same numbers.", L05),
    _c("pytorch-requires-grad-does-not-freeze-bn", "keras-bn-pitfalls",
       "In PyTorch, requires_grad=False does not stop BatchNorm statistics from updating.", L05),
    _c("no-grad-does-not-stop-bn-updates", "keras-bn-pitfalls",
       "Running inference under torch.no_grad() in train mode still changes BatchNorm statistics.", L05),
    _c("preprocessing-mismatch-costs-accuracy", "keras-bn-pitfalls",
       "Preprocessing inputs differently from pretraining costs accuracy.", L05),
    _c("same-seed-identical-different-seeds-spread", "keras-bn-pitfalls",
       "The same seed gives identical runs; different seeds spread the results.", L05),
    _c("dropout-train-mode-adds-variance", "keras-bn-pitfalls",
       "A model left in train mode at inference gives noisy predictions through dropout.", L05),
)

MANIFEST: Mapping[str, ClaimEntry] = {e.id: e for e in _ENTRIES}
if len(MANIFEST) != len(_ENTRIES):  # pragma: no cover - caught by the tests too
    raise RuntimeError("duplicate claim ids in the manifest")


def entries_for(lesson: str) -> Iterator[ClaimEntry]:
    """The manifest entries a lesson records.

    Examples
    --------
    >>> [e.id for e in entries_for("00_transfer_learning_basics")][:2]
    ['pretrained-converges-faster', 'pretrained-ends-more-accurate']
    """
    return (e for e in MANIFEST.values() if e.lesson == lesson)


def coverage() -> dict:
    """How much of the source material the lessons measure: ``{"claims", "measured", "fraction", "by_source"}``.

    Examples
    --------
    >>> c = coverage(); 0 < c["fraction"] <= 1 and c["measured"] <= c["claims"]
    True
    """
    by_source: dict[str, dict[str, int]] = {}
    for e in MANIFEST.values():
        row = by_source.setdefault(e.source, {"claims": 0, "measured": 0})
        row["claims"] += 1
        row["measured"] += e.measured
    measured = sum(e.measured for e in MANIFEST.values())
    return dict(claims=len(MANIFEST), measured=measured, fraction=measured / len(MANIFEST), by_source=by_source)
