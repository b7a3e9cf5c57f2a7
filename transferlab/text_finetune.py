"""Fine-tuning text models: one recipe, one run, many seeds; with the tricks lesson 06 measures.

A :class:`TextRecipe` says how a run fine-tunes: learning rate, epochs, batch size, the optimiser (``"adamw"``:
bias-corrected; ``"bertadam"``: the original BERT optimiser without bias correction, :class:`~transferlab.bertadam.
BertAdam`), BERT's linear warm-up and decay, and the practical variations: re-initialise the top ``reinit``
layers, freeze the bottom ``freeze`` parts (embeddings, then layers), train only a LoRA adapter of rank
``lora_rank`` (through ``peft``), or only the head (``head_only``: feature extraction).

:func:`finetune` runs one recipe on one seed: a fresh copy of the pretrained model, a new head for the task's
kind, training (callbacks such as the kit's ``TrainingMonitor`` see every batch), then validation and test read
once at the end. :func:`run_seeds` repeats it over seeds into a table. :func:`is_failed` is the declared rule for
a failed run (Mosbach et al.: ending at the majority-class level).
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import as_choice, as_float, as_int, as_seed
from .bertadam import BertAdam
from .device import seeded
from .text_heads import freeze_bottom, make_task_model, reinit_top
from .text_pretrain import linear_warmup
from .text_tasks import IGNORE_INDEX, EncodedTextTask
from .train import Callback, History, TrainState, evaluate, fit

__all__ = ["TextRecipe", "FAIL_MARGIN", "is_failed", "task_loss", "task_correct", "evaluate_text", "train_text",
           "prepare", "finetune", "run_seeds", "add_lora", "count_trainable"]

FAIL_MARGIN = 0.10
"""A run has failed when it ends less than this far (absolute accuracy) above the majority-class accuracy."""


def is_failed(acc: float, majority: float, margin: float = FAIL_MARGIN) -> bool:
    """The declared rule for a failed fine-tuning run: ``acc < majority + margin``.

    Examples
    --------
    >>> is_failed(0.55, 0.5), is_failed(0.9, 0.5)
    (True, False)
    """
    return float(acc) < float(majority) + float(margin)


@dataclass(frozen=True)
class TextRecipe:
    """How one fine-tuning run trains (every field is a knob of the lesson)."""

    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 16
    optimizer: str = "adamw"  # "adamw" (bias correction) or "bertadam" (none, as the original BERT code)
    weight_decay: float = 0.01
    warmup: float = 0.1
    reinit: int = 0  # re-initialise the top k Transformer layers
    freeze: int = 0  # freeze the embeddings (1) and the lowest freeze-1 layers
    lora_rank: int = 0  # > 0: train only a LoRA adapter of this rank (and the head)
    head_only: bool = False  # freeze the whole encoder: feature extraction

    def __post_init__(self):
        as_float("lr", self.lr, min=0.0, min_open=True)
        as_int("epochs", self.epochs, min=1)
        as_int("batch_size", self.batch_size, min=1)
        as_choice("optimizer", self.optimizer, ("adamw", "bertadam"))
        for name in ("reinit", "freeze", "lora_rank"):
            as_int(name, getattr(self, name), min=0)

    def label(self) -> str:
        parts = [self.optimizer, f"lr {self.lr:g}", f"{self.epochs} ep"]
        parts += [f"reinit {self.reinit}"] if self.reinit else []
        parts += [f"freeze {self.freeze}"] if self.freeze else []
        parts += [f"LoRA r{self.lora_rank}"] if self.lora_rank else []
        parts += ["head only"] if self.head_only else []
        return ", ".join(parts)


def task_loss(kind: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for a task of ``kind``: per example, per token (-100 ignored), or start + end of a span."""
    logits = logits.float()
    if kind == "token":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)
    if kind == "span":
        return (F.cross_entropy(logits[:, 0], y[:, 0]) + F.cross_entropy(logits[:, 1], y[:, 1])) / 2
    return F.cross_entropy(logits, y)


def task_correct(kind: str, logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """``(correct, counted)``: examples, labelled tokens, or spans whose start *and* end are right."""
    if kind == "token":
        keep = y != IGNORE_INDEX
        return int((logits.argmax(-1)[keep] == y[keep]).sum()), int(keep.sum())
    if kind == "span":
        return int((logits.argmax(-1) == y).all(1).sum()), len(y)
    return int((logits.argmax(-1) == y).sum()), len(y)


def evaluate_text(model: nn.Module, data, kind: str, *, device=None) -> dict:
    """``{"loss", "acc", "n"}`` over ``data`` in eval mode, through the kit's one evaluation loop."""
    return evaluate(model, data, device=device, loss_fn=functools.partial(task_loss, kind),
                    metric=functools.partial(task_correct, kind))


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def add_lora(model: nn.Module, rank: int, *, alpha: float | None = None, seed: int = 0) -> nn.Module:
    """Wrap ``model`` (a text head model) with ``peft`` LoRA adapters of ``rank`` on the attention projections;
    only the adapters and the head train."""
    import peft

    rank = as_int("rank", rank, min=1)
    names = {n.rsplit(".", 1)[-1] for n, m in model.encoder.named_modules() if isinstance(m, nn.Linear)}
    conv1d = {n.rsplit(".", 1)[-1] for n, m in model.encoder.named_modules() if type(m).__name__ == "Conv1D"}
    targets = sorted(names & {"query", "value", "q_lin", "v_lin", "q_proj", "v_proj"} or conv1d & {"c_attn"})
    if not targets:
        raise ValueError(f"no attention projections found for LoRA in {type(model.encoder).__name__}")
    cfg = peft.LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, target_modules=targets, lora_dropout=0.0,
                          modules_to_save=["head"])
    with seeded(as_seed(seed)):
        return peft.get_peft_model(model, cfg)


def prepare(base: nn.Module, task: EncodedTextTask, recipe: TextRecipe, seed: int) -> nn.Module:
    """A fresh task model on a copy of ``base``: new head, then re-init / freeze / LoRA / head-only as asked."""
    model = make_task_model(copy.deepcopy(base), task.kind, task.num_classes, seed=seed)
    if recipe.reinit:
        reinit_top(model, recipe.reinit, seed=seed)
    if recipe.freeze:
        freeze_bottom(model, recipe.freeze)
    if recipe.head_only:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    if recipe.lora_rank:
        model = add_lora(model, recipe.lora_rank, seed=seed)
    return model


def _optimizer(model: nn.Module, recipe: TextRecipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameters to train: is everything frozen?")
    if recipe.optimizer == "adamw":  # torch's own, bias-corrected
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, eps=1e-6)
    return BertAdam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, eps=1e-6)


class _StepSchedule(Callback):
    """Steps a learning-rate scheduler after every optimiser step (BERT's warm-up and decay inside ``fit``)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def on_batch_end(self, state: TrainState):
        self.scheduler.step()


def train_text(model: nn.Module, task: EncodedTextTask, recipe: TextRecipe, *, seed: int = 0, device=None,
               callbacks=(), val: bool = False, progress: bool = False) -> History:
    """Train ``model`` on the task's training split with ``recipe``, through :func:`transferlab.train.fit`
    (callbacks such as ``TrainingMonitor`` see every batch; ``val=True`` adds validation accuracy per epoch)."""
    loader = task.loader("train", recipe.batch_size, seed=seed)
    opt = _optimizer(model, recipe)
    schedule = _StepSchedule(linear_warmup(opt, recipe.epochs * len(loader), recipe.warmup))
    return fit(model, loader, epochs=recipe.epochs, lr=recipe.lr, optimizer=opt, schedule=None,
               val=task.loader("val", 256) if val else None, device=device, seed=seed, progress=progress,
               callbacks=[schedule, *callbacks], loss_fn=functools.partial(task_loss, task.kind),
               metric=functools.partial(task_correct, task.kind), desc=recipe.label())


def finetune(base: nn.Module, task: EncodedTextTask, recipe: TextRecipe = TextRecipe(), *, seed: int = 0,
             device=None, callbacks: list[Callback] | tuple = (), splits=("val", "test")) -> dict:
    """One run: fine-tune a copy of ``base`` with ``recipe`` and evaluate each of ``splits`` once at the end.

    Returns a row: the recipe's fields, ``seed``, ``<split>_acc`` per split, ``trainable`` parameters, seconds.
    """
    seed = as_seed(seed)
    t0 = time.perf_counter()
    model = prepare(base, task, recipe, seed)
    history = train_text(model, task, recipe, seed=seed, device=device, callbacks=callbacks)
    row = dict(asdict(recipe), seed=seed, trainable=count_trainable(model), train_loss=history.last("train_loss"))
    for split in splits:  # each split read once, after every choice: the test split is this model's final exam
        row[f"{split}_acc"] = evaluate_text(model, task.loader(split, 256, final=True), task.kind, device=device)["acc"]
    row["seconds"] = time.perf_counter() - t0
    return row


def run_seeds(base: nn.Module, task: EncodedTextTask, recipe: TextRecipe, seeds, *, device=None, **labels):
    """:func:`finetune` for every seed; a DataFrame with one row per seed (plus the ``labels`` given as columns)."""
    import pandas as pd

    rows = [dict(labels, **finetune(base, task, recipe, seed=s, device=device)) for s in seeds]
    return pd.DataFrame(rows)
