"""The manifest: every claim of the source material, with where it comes from and which lesson measures it.

The ledger lists what the lessons *recorded*; the manifest lists what the sources *say*, so that a claim no
lesson measures shows up as "not measured yet" (with the reason) instead of silently missing. Each entry gives
the claim in the kit's own words (a brief paraphrase, not a quotation), its source, and the lesson that records
it under the same id (``also``: further lessons that record the same id), or ``lesson=None`` and why not.
Entries are grouped by source, in the order of :data:`SOURCES`, and within a source in the order the source
makes them. ``tests/test_manifest.py`` checks both directions against the notebooks: a lesson records only ids
listed here, each under an entry that names that lesson, and every lesson an entry names records that id.

Claims about text models will be recorded by lesson ``06_nlp_transfer`` under ids prefixed ``nlp-``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["Source", "ClaimEntry", "SOURCES", "MANIFEST", "coverage", "entries_for", "by_source"]

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LESSON = re.compile(r"^\d\d_[a-z0-9_]+$")


@dataclass(frozen=True)
class Source:
    """A piece of source material: a lecture, an article, a paper. ``url`` only where it is established."""

    key: str
    title: str
    author: str
    kind: str  # "lecture", "article", "paper", "docs"
    url: str = ""


@dataclass(frozen=True)
class ClaimEntry:
    """One claim of a source. ``lesson`` is the notebook stem that records ``id``, or None (then ``why``).

    ``also`` names further lessons that record the same id (lesson 01 re-measures lesson 00's learning-rate
    claim across its grid, for example).
    """

    id: str
    source: str
    says: str
    lesson: str | None = None
    why: str = ""
    also: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        return self.lesson is not None

    @property
    def lessons(self) -> tuple[str, ...]:
        """Every lesson that records this claim (``lesson`` first), or ``()``."""
        return ((self.lesson,) + tuple(self.also)) if self.lesson else ()

    def __post_init__(self):
        if not _ID.match(self.id):
            raise ValueError(f"claim id {self.id!r} must be lowercase words joined by dashes, e.g. 'lr-10x-smaller'")
        if self.source not in SOURCES:
            raise ValueError(f"claim {self.id!r} names an unknown source {self.source!r}; sources: {sorted(SOURCES)}")
        if self.lesson is None and not self.why:
            raise ValueError(f"claim {self.id!r} is not measured by any lesson: say why (why=...)")
        if self.lesson is None and self.also:
            raise ValueError(f"claim {self.id!r}: also={self.also!r} needs a lesson= first")
        for stem in self.lessons:
            if not _LESSON.match(stem):
                raise ValueError(f"claim {self.id!r}: {stem!r} is not a lesson notebook stem such as "
                                 f"'01_freezing_strategies'")


SOURCES: dict[str, Source] = {s.key: s for s in (
    Source("stanford-finetuning", "Fine-tuning, the computer-vision part (Practical Machine Learning, lecture on "
           "transfer learning)", "Stanford CS 329P, Fall 2021 (Qingqing Huang, Mu Li, Alex Smola)", "lecture",
           "https://c.d2l.ai/stanford-cs329p/"),
    Source("stanford-nlp", "Fine-tuning in NLP (Practical Machine Learning, the same lecture, second part)",
           "Stanford CS 329P, Fall 2021 (Qingqing Huang, Mu Li, Alex Smola)", "lecture",
           "https://c.d2l.ai/stanford-cs329p/"),
    Source("freeze-advice", "Which layers to freeze: data size x data similarity", "the course's reading on "
           "fine-tuning strategies", "article"),
    Source("pytorch-freeze", "Four ways to freeze layers in PyTorch (with set_freeze_by_names / freeze_by_idxs "
           "helpers)", "the course's reading on freezing", "article"),
    Source("swa-paper", "Averaging Weights Leads to Wider Optima and Better Generalization",
           "Izmailov, Podoprikhin, Garipov, Vetrov, Wilson (UAI 2018)", "paper", "https://arxiv.org/abs/1803.05407"),
    Source("swa-fastai", "Adding a cutting-edge deep learning training technique to the fast.ai library (SWA)",
           "William Horton, fast.ai contributor (April 2018)", "article",
           "https://medium.com/@hortonhearsafoo/adding-a-cutting-edge-deep-learning-training-technique-to-the-"
           "fast-ai-library-2cd1dba90a49"),
    Source("logme-paper", "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
           "You, Liu, Wang, Long (ICML 2021)", "paper", "https://arxiv.org/abs/2102.11005"),
    Source("logme-article", "LogME in practice", "the course's reading on choosing a pretrained model with LogME",
           "article"),
    Source("keras-bn-pitfalls", "Approach pre-trained deep learning models with caution (Keras vs PyTorch, the "
           "BatchNorm layer and other pitfalls)", "Cecelia Shao, Comet (April 2019)", "article",
           "https://www.comet.com/site/blog/approach-pre-trained-deep-learning-models-with-caution/"),
    Source("keras-guide", "Transfer learning & fine-tuning (Keras developer guide)", "François Chollet, Keras team",
           "docs", "https://keras.io/guides/transfer_learning/"),
    Source("bert-few-sample", "Revisiting Few-sample BERT Fine-tuning",
           "Zhang, Wu, Katiyar, Weinberger, Artzi (ICLR 2021)", "paper", "https://arxiv.org/abs/2006.05987"),
    Source("bert-stability", "On the Stability of Fine-tuning BERT: Misconceptions, Explanations, and Strong "
           "Baselines", "Mosbach, Andriushchenko, Klakow (ICLR 2021)", "paper", "https://arxiv.org/abs/2006.04884"),
    Source("lora-paper", "LoRA: Low-Rank Adaptation of Large Language Models",
           "Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang, Chen (ICLR 2022)", "paper",
           "https://arxiv.org/abs/2106.09685"),
    Source("lpft-paper", "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution",
           "Kumar, Raghunathan, Jones, Ma, Liang (ICLR 2022)", "paper", "https://arxiv.org/abs/2202.10054"),
)}


def _c(id: str, source: str, says: str, lesson: str | None = None, why: str = "",  # noqa: A002
       also: tuple[str, ...] = ()) -> ClaimEntry:
    return ClaimEntry(id, source, says, lesson, why, also)


L06, L07 = "06_nlp_transfer", "07_backends_and_hardware"
L00, L01, L02, L03, L04, L05 = ("00_transfer_learning_basics", "01_freezing_strategies", "02_freeze_methods",
                                "03_swa_optima_width", "04_logme", "05_batchnorm_pitfalls")
NLP = "not measured yet: lesson 06 does not record it"  # the why of every nlp- claim lesson 06 leaves open

_ENTRIES: tuple[ClaimEntry, ...] = (
    # ---------------------------------------------------------------- the fine-tuning lecture, vision (lesson 00)
    _c("finetune-stays-near-pretrained", "stanford-finetuning",
       "Starting from the pretrained weights keeps fine-tuning close to them: the initialisation acts as a "
       "regulariser that limits the search space.", why="not measured yet: lesson 01 measures how far each stage "
       "moves only for head-first training, not against training from scratch"),
    _c("lr-10x-smaller", "stanford-finetuning",
       "Fine-tune with a learning rate about ten times smaller than the one used from scratch.", L00),
    _c("few-epochs", "stanford-finetuning", "A few epochs of fine-tuning are enough.", L00),
    _c("freeze-bottom-regularises", "stanford-finetuning",
       "Low layers learn generic features and high layers task-specific ones, so fixing the bottom layers during "
       "fine-tuning regularises a model trained on little data.", why="not measured yet as such: lesson 01's "
       "quadrant ids test when to freeze, not freezing against fine-tuning everything at each data size"),
    _c("reuse-source-classifier", "stanford-finetuning",
       "When some target classes also exist in the source task, initialise their output weights from the "
       "pretrained classifier instead of at random.", why="not measured yet: the world's target classes are "
       "held-out combinations, none of them a source class"),
    _c("pretrained-converges-faster", "stanford-finetuning",
       "Starting from pretrained weights converges much faster than starting from random weights.", L00),
    _c("pretrained-ends-more-accurate", "stanford-finetuning",
       "With little target data, fine-tuning a pretrained model ends more accurate than training from scratch.",
       L00),
    # ---------------------------------------------------------------- the same lecture, NLP (lesson 06)
    _c("nlp-pretrained-beats-scratch", "stanford-nlp",
       "Pretraining on unlabelled text by self-supervision (the labels come from the text itself), then "
       "fine-tuning, beats training on the small labelled set from scratch.", L06),
    _c("nlp-mlm-vs-lm", "stanford-nlp",
       "A masked language model sees the context on both sides of a word, a left-to-right language model only "
       "the left; the masked one gives better features for understanding tasks.", L06),
    _c("nlp-mlm-easier", "stanford-nlp",
       "Predicting a masked word is easier than predicting the next one, because the model sees both sides "
       "(like a cloze test).", L06),
    _c("nlp-mlm-plateau", "stanford-nlp",
       "Self-supervised pretraining takes many steps before the model uses context: a masked LM learns from the "
       "masked positions only, and at first predicts little more than word frequencies.", L06),
    _c("nlp-cbow-similar-vectors", "stanford-nlp",
       "Word embeddings (word2vec's CBOW predicts a word from its context's embeddings) place words used in "
       "similar contexts near each other.", L06),
    _c("nlp-contextual-beats-word-embeddings", "stanford-nlp",
       "Pretrained word embeddings transfer only the first layer; pretraining the whole Transformer transfers "
       "much more.", why=NLP),
    _c("nlp-model-choice-by-task", "stanford-nlp",
       "BERT (an encoder, masked LM) suits classification and tagging, GPT (a decoder, LM) generation, T5 "
       "(encoder-decoder) text-to-text tasks.", why=NLP),
    _c("nlp-pair-input-construction", "stanford-nlp",
       "A sentence pair enters BERT as one sequence, [CLS] first and [SEP] after each sentence, with segment "
       "embeddings telling the two apart.", why=NLP),
    _c("nlp-three-heads", "stanford-nlp",
       "Fine-tuning adds one small output layer per task type: sentence classification from the [CLS] output, "
       "token tagging from every token's output, span QA from a start and an end score per passage token.",
       L06),
    _c("nlp-small-data-unstable", "stanford-nlp",
       "Fine-tuning BERT on small data is unstable: runs that differ only in the seed end far apart, some "
       "failing.", why=NLP),
    _c("nlp-bertadam-unstable", "stanford-nlp",
       "BERTAdam leaves out Adam's bias correction, which makes early updates too large and fine-tuning on small "
       "data unstable; restoring it helps.", L06),
    _c("nlp-few-epochs-too-few", "stanford-nlp",
       "The customary three epochs are too few on small data: training longer gives better, more stable "
       "results.", L06),
    _c("nlp-reinit-top-layers", "stanford-nlp",
       "Re-initialising the top layers of BERT before fine-tuning on small data speeds up learning and improves "
       "results.", L06),
    _c("nlp-freeze-bottom", "stanford-nlp",
       "Freezing the bottom layers (the embeddings and lower blocks) is an option when fine-tuning on little "
       "data.", L06),
    # ---------------------------------------------------------------- which layers to freeze (lesson 01)
    _c("small-similar-head-only", "freeze-advice",
       "Small data, similar to the pretraining data: change only the last layer.", L01),
    _c("small-dissimilar-freeze-k", "freeze-advice",
       "Small data, dissimilar: freeze the first k layers and retrain the rest.", L01),
    _c("large-dissimilar-scratch", "freeze-advice", "Large data, dissimilar: train from scratch.", L01),
    _c("large-similar-finetune-all", "freeze-advice",
       "Large data, similar: keep the initial weights and retrain the whole model.", L01),
    _c("medium-data-freeze-first-few", "freeze-advice",
       "The less data, the more to freeze: with very little train only the last layer, with a medium amount "
       "freeze only the first few layers.", why="not measured yet: lesson 01's grid has two data sizes; a "
       "medium one is its exercise 4"),
    _c("head-first", "freeze-advice",
       "Train the new head with the base frozen first: a random head's gradients disturb the pretrained features.",
       L01),
    _c("discriminative-lr", "freeze-advice",
       "Lower layers should learn more slowly than upper layers (discriminative learning rates).", L01),
    _c("lr-smaller-per-cell", "freeze-advice",
       "Whatever the data size and similarity, fine-tune the pretrained layers with a learning rate about ten "
       "times smaller than from scratch.", L01),
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
    _c("freeze-weight-flag-freezes-layer", "pytorch-freeze",
       "Setting requires_grad=False on a layer's weight freezes that layer.", why="not measured as a claim: "
       "lesson 02's trap 1 shows the bias still trains, and records nothing"),
    _c("freeze-unfreeze-add-param-group", "pytorch-freeze",
       "To unfreeze, set requires_grad back to True and hand the parameters to the optimizer with "
       "add_param_group.", why="not measured as a claim: lesson 02's trap 2 shows the ValueError when the "
       "optimizer already holds them, and records nothing"),
    _c("freeze-source-helpers-exact-names", "pytorch-freeze",
       "The helpers set_freeze_by_names and freeze_by_idxs freeze exactly the children given by name or by index "
       "(negative indices count from the end), and unfreeze them with freeze=False.", L02),
    _c("freeze-source-restore-data-assign", "pytorch-freeze",
       "Method 3 as written (copy the cached weights back with weight.data = old.data after every step) keeps the "
       "frozen weights fixed.", L02),
    # ---------------------------------------------------------------- SWA, the paper (lesson 03)
    _c("fge-snapshots-around-flat-region", "swa-paper",
       "The models FGE collects with a cyclical learning rate lie around the edge of a wide region of low loss; "
       "their average lies inside it.", why="not measured yet: lesson 03 runs no cyclical-LR snapshots, so it "
       "has no FGE models to place"),
    _c("swa-approximates-fge", "swa-paper",
       "Averaging the weights gives one model whose predictions come close to those of the FGE ensemble, at "
       "the cost of one forward pass.", L03),
    _c("swa-cyclic-averaging", "swa-paper",
       "With a cyclical learning rate, averaging the weights at the end of each cycle also beats SGD at matched "
       "budgets.", L03),
    _c("swa-beats-sgd", "swa-paper", "SWA gives lower test error than SGD at the same training budget.", L03),
    _c("swa-gain-grows-with-budget", "swa-paper",
       "SWA's gain over SGD is larger with 1.25 and 1.5 budgets than with one budget.", L03),
    _c("swa-wider-optima", "swa-paper", "SWA finds wider optima than SGD along random directions.", L03),
    _c("sgd-at-periphery", "swa-paper",
       "SGD ends near the periphery of the low-error region, SWA nearer its centre.", L03),
    _c("swa-lr-sweep", "swa-paper",
       "SWA needs a learning rate that keeps the iterates moving while they are averaged: the higher it is, the "
       "wider the averaged optimum (the lesson sweeps it).", L03),
    _c("swa-needs-update-bn", "swa-paper",
       "The averaged weights need their BatchNorm statistics recomputed before use.", L03),
    _c("swa-little-overhead", "swa-paper",
       "SWA costs almost nothing extra: one more copy of the weights and one averaging step per epoch or cycle.",
       why="not measured yet: lesson 03 does not time SGD against SWA"),
    _c("swa-across-architectures", "swa-paper",
       "The gain holds across architectures (residual networks, PyramidNets, DenseNets, Shake-Shake) on "
       "CIFAR-10, CIFAR-100 and ImageNet.",
       why="not measured yet: lesson 03 trains one small architecture on the world"),
    _c("swa-improves-pretrained-imagenet", "swa-paper",
       "A few epochs of SWA starting from pretrained ImageNet models improve their accuracy.",
       why="not measured yet: needs ImageNet-scale data; lesson 03's SWA fine-tuning is judged under swa-beats-sgd"),
    # ---------------------------------------------------------------- SWA in fast.ai (lesson 03)
    _c("ensembles-beat-single-models", "swa-fastai",
       "An ensemble of independently trained networks predicts better than a single one, at several times the "
       "cost.", why="not measured yet: lesson 03 tells the story from ensembles to SWA in prose, with no ensemble"),
    _c("snapshot-ensembles", "swa-fastai",
       "Snapshot ensembles: a cyclical learning rate collects several models in one training run, and their "
       "averaged predictions beat the single final model.", why="not measured yet: no lesson trains with a "
       "cyclical learning rate or ensembles snapshots"),
    _c("fge-beats-snapshots", "swa-fastai",
       "Fast geometric ensembling (short cycles, models along paths of low loss between optima) beats snapshot "
       "ensembles at the same training budget.", why="not measured yet: no lesson builds FGE or snapshot "
       "ensembles"),
    _c("swa-as-callback", "swa-fastai",
       "SWA fits a training library as a callback: from a chosen epoch on, fold the weights into a running "
       "average at the end of each epoch, with no change to the optimiser.", why="not measured as a claim: "
       "lesson 03 writes the callback out and records its functional test (swa-callback-functional-test)"),
    _c("swa-callback-functional-test", "swa-fastai",
       "A functional test checks the callback: its averaged weights equal the mean of the weights at the "
       "averaging epochs, computed by hand.", L03),
    _c("swa-experiment-test", "swa-fastai",
       "An experiment test: trained the same way on a small problem, the SWA model ends with a lower error than "
       "SGD's.", why="not recorded under this id: lesson 03's section 3 runs this test in miniature and records "
       "it as swa-beats-sgd"),
    _c("swa-fastai-cifar-gains", "swa-fastai",
       "Reproduced in fast.ai: SWA lowered CIFAR-10 test error for VGG-16 (6.58 to 6.28%) and PreResNet-110 "
       "(4.47 to 3.85%), as quoted in the post (2018).", why="not measured yet: needs CIFAR-10 and the paper's "
       "architectures and budgets (GPU hours)"),
    # ---------------------------------------------------------------- LogME, the paper (lesson 04)
    _c("leep-nce-need-supervised", "logme-paper",
       "LEEP and NCE need the pretrained model's classifier outputs, so they only apply to supervised-pretrained "
       "models and classification targets; LogME needs only features.", L04),
    _c("logme-evidence-no-overfit", "logme-paper",
       "The maximum evidence, unlike the likelihood of a fitted linear head, does not reward overfitting.",
       why="not measured yet: lesson 04 splits the evidence into its parts but compares it with no fitted head"),
    _c("logme-fixed-point-converges", "logme-paper",
       "The fixed-point iteration for the prior and noise precisions converges in a few steps.",
       why="not measured as a claim: the kit's unit tests check it against a direct evaluation of the evidence"),
    _c("toy-monotone", "logme-paper", "On toy data LogME falls monotonically as the features are degraded.", L04),
    _c("ranks-models", "logme-paper",
       "LogME ranks pretrained models by their fine-tuned accuracy better than LEEP, NCE and H-score.", L04),
    _c("weighted-tau-measure", "logme-paper",
       "A selection method is judged by a weighted Kendall tau against fine-tuned accuracy, which weighs "
       "errors among the top models most.", why="not measured as a claim: lesson 04 uses weighted tau as its "
       "measure, without comparing it with plain Kendall tau"),
    _c("logme-regression", "logme-paper",
       "LogME also ranks pretrained models for regression targets.",
       L04),
    _c("logme-self-supervised", "logme-paper",
       "LogME also assesses self-supervised (e.g. contrastive) pretrained models, which LEEP and NCE cannot.",
       L04),
    _c("nlp-logme-ranks-text-models", "logme-paper",
       "LogME also ranks pretrained language models by their fine-tuned accuracy on text tasks.", L06),
    _c("fraction-of-finetune-time", "logme-paper",
       "Scoring with LogME costs a tiny fraction of fine-tuning (about 0.31 per mille of the wall-clock time).",
       L04),
    _c("logme-memory-footprint", "logme-paper",
       "LogME needs about 1% of the memory of brute-force fine-tuning.",
       why="not measured yet: lesson 04 times LogME against fine-tuning but does not measure memory"),
    _c("optimised-faster", "logme-paper",
       "The optimised LogME (one decomposition, then a cheap fixed point) is much faster than the naive one.", L04),
    # ---------------------------------------------------------------- LogME, the article
    _c("logme-early-stopping", "logme-article",
       "The score can follow a model during pretraining, as an early-stopping signal: it peaks where the "
       "fine-tuned accuracy peaks.", L04),
    # ---------------------------------------------------------------- using pretrained models with care (05)
    _c("keras-benchmarks-not-reproduced", "keras-bn-pitfalls",
       "The ImageNet accuracies published for Keras' pretrained models could not be reproduced: measured ones "
       "came out lower.", why="not measured yet: needs ImageNet validation images and Keras Applications weights"),
    _c("resnet-pytorch-inception-keras", "keras-bn-pitfalls",
       "In that benchmark ResNets scored better in PyTorch and Inception models better in Keras.",
       why="not measured yet: needs ImageNet and both frameworks' pretrained weights"),
    _c("old-keras-frozen-bn-collapse", "keras-bn-pitfalls",
       "In Keras <= 2.1 a frozen BatchNorm layer still used mini-batch statistics: the model looks fine in "
       "training and collapses at inference.", L05),
    _c("pytorch-requires-grad-does-not-freeze-bn", "keras-bn-pitfalls",
       "In PyTorch, requires_grad=False does not stop BatchNorm statistics from updating.", L05),
    _c("no-grad-does-not-stop-bn-updates", "keras-bn-pitfalls",
       "Running inference under torch.no_grad() in train mode still changes BatchNorm statistics.", L05),
    _c("keras-vs-pytorch-bn-same-numbers", "keras-bn-pitfalls",
       "With the same weights and conventions, Keras and PyTorch BatchNorm compute the same numbers.", L05),
    _c("ask-task-similarity", "keras-bn-pitfalls",
       "Before trusting a pretrained model's benchmark, ask how similar your task and data are to its "
       "pretraining.", why="not measured as a claim: lesson 01's similarity sweep shows transfer falling with "
       "similarity, recorded under no id"),
    _c("preprocessing-mismatch-costs-accuracy", "keras-bn-pitfalls",
       "Preprocessing inputs differently from pretraining costs accuracy.", L05),
    _c("backend-changes-results", "keras-bn-pitfalls",
       "The backend matters: the same Keras model gives different numbers on TensorFlow, Theano and CNTK.",
       L07),
    _c("theano-ignores-seeds", "keras-bn-pitfalls",
       "Under Theano, setting the random seed did not make runs repeat.",
       why="not measurable with current packages: Theano is discontinued"),
    _c("hardware-changes-results", "keras-bn-pitfalls",
       "The hardware matters: the same code gives different numbers on different GPUs (a K80 against a P100).",
       L07),
    _c("same-seed-identical-different-seeds-spread", "keras-bn-pitfalls",
       "The same seed gives identical runs; different seeds spread the results.", L05),
    _c("dropout-train-mode-adds-variance", "keras-bn-pitfalls",
       "A model left in train mode at inference gives noisy predictions through dropout.", L05),
    # ---------------------------------------------------------------- the Keras guide (lesson 05)
    _c("keras-trainable-false-freezes-weights", "keras-guide",
       "trainable=False moves a layer's weights to the non-trainable ones: training leaves them unchanged.",
       why="not measured as a claim: lesson 05 sets trainable=False and records only what it does to BatchNorm"),
    _c("keras-trainable-recursive", "keras-guide",
       "trainable=False on a model or block applies to every layer inside it.",
       why="not measured yet: lesson 05 does not check nested layers"),
    _c("keras3-trainable-false-bn-inference-mode", "keras-guide",
       "In Keras 3, trainable=False on a BatchNorm layer makes it run in inference mode.", L05),
    _c("keras-head-to-convergence-first", "keras-guide",
       "Unfreeze the base only after the new head has converged; otherwise the random head's large gradients "
       "wreck the pretrained features.", why="measured for PyTorch as freeze-advice's head-first (lesson 01); "
       "not in Keras"),
    _c("keras-recompile-after-trainable", "keras-guide",
       "After changing trainable, compile the model again: fit() uses the setting it was compiled with.",
       why="not measured yet: lesson 05's Keras section does not train through compile() and fit()"),
    _c("keras-training-false-finetuning-idiom", "keras-guide",
       "Call the base model with training=False when fine-tuning, so its BatchNorm layers stay in inference "
       "mode even after unfreezing.", L05),
    _c("keras-finetune-low-lr-overfits", "keras-guide",
       "Fine-tuning the whole model needs a very low learning rate, gives incremental gains and can overfit "
       "quickly.", why="not measured as a claim: lessons 00 and 01 measure the learning rate (lr-10x-smaller), "
       "not the overfitting"),
    _c("keras-cached-features-no-augmentation", "keras-guide",
       "Running the frozen base once and training the head on stored features is fast, but rules out data "
       "augmentation.", why="not measured yet: lessons 01 and 04 probe stored features, with no augmentation "
       "to compare"),
    _c("keras-augmentation-small-data", "keras-guide",
       "Random data augmentation helps when the target set is small.",
       why="not measured yet: no lesson augments its data"),
    # ---------------------------------------------------------------- few-sample BERT fine-tuning (lesson 06)
    _c("nlp-reinit-how-many-layers", "bert-few-sample",
       "How many top layers to re-initialise depends on the task; re-initialising too many hurts.", why=NLP),
    _c("nlp-stabilisers-help-less", "bert-few-sample",
       "With bias correction and longer training in place, proposed stabilisers (layer-wise learning-rate "
       "decay, mixout, weight decay towards the pretrained weights) add little.", why=NLP),
    # ---------------------------------------------------------------- the stability of BERT fine-tuning (06)
    _c("nlp-instability-is-optimisation", "bert-stability",
       "Failed fine-tuning runs come from optimisation trouble (vanishing gradients early on), not from "
       "catastrophic forgetting.", why=NLP),
    _c("nlp-fewer-iterations-not-size", "bert-stability",
       "Small data sets look unstable because they give fewer training iterations; with the same number of "
       "iterations, a small sample is about as stable.", why=NLP),
    _c("nlp-seed-variance-in-good-runs", "bert-stability",
       "Even runs that train well differ across seeds in how they generalise, at the same training loss.",
       why=NLP),
    _c("nlp-stable-baseline", "bert-stability",
       "A simple recipe (small learning rate with bias correction, warm-up, many more iterations) makes "
       "fine-tuning stable on small data.", why=NLP),
    # ---------------------------------------------------------------- LoRA (lesson 06)
    _c("nlp-lora-matches-finetune", "lora-paper",
       "Training low-rank updates of the weight matrices, the pretrained weights frozen, matches full "
       "fine-tuning with a small fraction of the trainable parameters.", L06),
    # ---------------------------------------------------------------- LP-FT (lesson 01)
    _c("lpft-ood", "lpft-paper",
       "Linear probing first, then fine-tuning (LP-FT), is more accurate out of distribution than fine-tuning "
       "with a random head.", L01),
    _c("lpft-feature-distortion", "lpft-paper",
       "Fine-tuning with a random head moves (distorts) the pretrained features more than LP-FT does.", L01),
)

MANIFEST: Mapping[str, ClaimEntry] = {e.id: e for e in _ENTRIES}
if len(MANIFEST) != len(_ENTRIES):  # pragma: no cover - caught by the tests too
    raise RuntimeError("duplicate claim ids in the manifest")


def entries_for(lesson: str) -> Iterator[ClaimEntry]:
    """The manifest entries a lesson records (as ``lesson`` or in ``also``).

    Examples
    --------
    >>> [e.id for e in entries_for("00_transfer_learning_basics")][:2]
    ['lr-10x-smaller', 'few-epochs']
    """
    return (e for e in MANIFEST.values() if lesson in e.lessons)


def by_source() -> dict[str, list[ClaimEntry]]:
    """The entries grouped by source, sources in the order of :data:`SOURCES`, entries in the source's order.

    Examples
    --------
    >>> groups = by_source(); list(groups)[:2], len(groups["swa-paper"]) > 0
    (['stanford-finetuning', 'stanford-nlp'], True)
    """
    groups: dict[str, list[ClaimEntry]] = {key: [] for key in SOURCES}
    for e in MANIFEST.values():
        groups[e.source].append(e)
    return groups


def coverage() -> dict:
    """How much of the source material the lessons measure: ``{"claims", "measured", "fraction", "by_source"}``.

    ``measured`` counts the entries a lesson is written to record; the docs' landing page counts what a build
    actually recorded.

    Examples
    --------
    >>> c = coverage(); 0 < c["fraction"] <= 1 and c["measured"] <= c["claims"]
    True
    """
    by_source: dict[str, dict[str, int]] = {key: {"claims": 0, "measured": 0} for key in SOURCES}
    for e in MANIFEST.values():
        row = by_source[e.source]
        row["claims"] += 1
        row["measured"] += e.measured
    measured = sum(e.measured for e in MANIFEST.values())
    return dict(claims=len(MANIFEST), measured=measured, fraction=measured / len(MANIFEST), by_source=by_source)
