"""BatchNorm (and dropout) pitfalls: probes you can point at any model, and the three regimes lesson 05 compares.

BatchNorm behaves differently in training and in inference: in ``train()`` mode it normalises with the
statistics of the current mini-batch *and* updates its running estimates; in ``eval()`` mode it normalises
with the running estimates and changes nothing. ``requires_grad=False`` and ``torch.no_grad()`` touch neither
behaviour. This module makes those facts visible, on top of the kit's one BatchNorm pin
(:mod:`transferlab.bn_pin`: a policy per layer, applied by a forward pre-hook right before each forward):

- :func:`mode_report` / :func:`bn_in_train_mode`: what each BN and dropout layer does in the next forward
  (policy and mode read the way the hook applies them, so a frozen layer reads frozen after ``model.train()``);
- :func:`bn_state`, :func:`stats_drift`, :func:`forward_changes_stats` (from :mod:`transferlab.bn_stats`):
  snapshots of the running statistics, and whether one forward pass changes them;
- :func:`train_eval_gap`: per BN layer, how far its train-mode output is from its eval-mode output;
- :func:`set_bn_regime`: one policy for every BN layer, undone by the handle it returns: ``"frozen"`` (running
  statistics, never updated, even under ``model.train()``), ``"old_keras"`` (what a frozen BN did in Keras
  <= 2.1: mini-batch statistics in training, running statistics never updated) or ``"train"`` (PyTorch's
  default);
- :func:`evaluate_in_mode`, :func:`output_spread`: accuracy in train or eval mode, dropout's spread;
- :func:`preprocess` (from :mod:`transferlab.preprocessing`): the input normalisations of Keras's
  ``preprocess_input`` modes and the kit's own;
- :func:`map_images`, :func:`split_images`: the same task photographed differently (every split through one
  image function), and a split's raw uint8 images (the test split of a sealed task only with ``final=True``);
- :func:`check_bn_frozen`, :func:`check_bn_freezer`, :func:`check_preprocess_mode`: the lesson's exercise checks,
  judged by behaviour.

The Keras side (``keras_status``, ``import_keras``, ``torch_bn_to_keras``, ``bn_defaults``,
``check_keras_momentum``) is in :mod:`transferlab.keras_bridge`, and importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import as_choice, as_int, as_seed
from .bn_checks import check_bn_freezer, check_bn_frozen, check_preprocess_mode
from .bn_pin import bn_behaviour, bn_layers, bn_policy, is_batchnorm, set_bn_policy
from .bn_stats import bn_state, forward_changes_stats, preserved, restore_bn_state, stats_drift
from .device import model_device
from .keras_bridge import bn_defaults, check_keras_momentum, import_keras, keras_status, torch_bn_to_keras
from .preprocessing import CAFFE_BGR_MEAN, IMAGENET_MEAN, IMAGENET_STD, PREPROCESS_MODES, preprocess
from .tasks import map_images, split_images
from .train import evaluate

__all__ = [
    "DROPOUT_TYPES", "REGIMES", "mode_report", "bn_in_train_mode", "train_eval_gap",
    "BNRegime", "set_bn_regime", "evaluate_in_mode", "output_spread", "map_images", "split_images",
    "check_bn_frozen", "check_bn_freezer", "check_preprocess_mode",
    # from transferlab.bn_pin and transferlab.bn_stats
    "bn_layers", "bn_state", "restore_bn_state", "stats_drift", "forward_changes_stats",
    # from transferlab.preprocessing
    "IMAGENET_MEAN", "IMAGENET_STD", "CAFFE_BGR_MEAN", "PREPROCESS_MODES", "preprocess",
    # from transferlab.keras_bridge
    "keras_status", "import_keras", "torch_bn_to_keras", "bn_defaults", "check_keras_momentum",
]

DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)  # Dropout, Dropout1d/2d/3d, AlphaDropout
REGIMES = ("train", "frozen", "old_keras")


# ----------------------------------------------------------------------------------------------------------
# What each layer will do in the next forward
def mode_report(model: nn.Module) -> list[dict]:
    """One row per BN and dropout layer: what it will do in the next forward pass.

    Columns: ``name``, ``kind`` (class name), ``training`` (the mode the next forward runs in: a BN layer with
    policy ``"frozen"`` runs in eval mode whatever its flag says), ``policy`` (:func:`transferlab.bn_pin.bn_policy`;
    ``None`` for dropout), ``uses`` (``"batch stats"``, ``"running stats"``, ``"random mask"`` or ``"identity"``),
    ``updates_stats``, ``mode`` (:func:`transferlab.bn_pin.bn_mode`, or ``uses`` for dropout) and ``trainable``
    (any affine parameter with ``requires_grad``).

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    >>> [(r["name"], r["uses"]) for r in mode_report(m.eval())]
    [('1', 'running stats'), ('2', 'identity')]
    """
    rows = []
    for name, mod in model.named_modules():
        if is_batchnorm(mod):
            b = bn_behaviour(mod)
            rows.append(dict(name=name, kind=type(mod).__name__, training=mod.training and b.policy != "frozen",
                             policy=b.policy, uses="batch stats" if b.batch_stats else "running stats",
                             updates_stats=b.updates_stats, mode=b.mode,
                             trainable=any(p.requires_grad for p in mod.parameters(recurse=False))))
        elif isinstance(mod, DROPOUT_TYPES):
            uses = "random mask" if mod.training and mod.p > 0 else "identity"
            rows.append(dict(name=name, kind=type(mod).__name__, training=mod.training, policy=None, uses=uses,
                             updates_stats=False, mode=uses, trainable=False))
    return rows


def bn_in_train_mode(model: nn.Module) -> list[str]:
    """Names of the BN layers that would normalise with mini-batch statistics in the next forward pass.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> bn_in_train_mode(m.train()), bn_in_train_mode(m.eval())
    (['1'], [])
    """
    return [r["name"] for r in mode_report(model) if r["uses"] == "batch stats"]


# ----------------------------------------------------------------------------------------------------------
# Probes that run the model: restore what they touch
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


@torch.no_grad()
def train_eval_gap(model: nn.Module, x: torch.Tensor, *, device=None) -> list[dict]:
    """Per BN layer, how different its output is in train mode (batch statistics) and eval mode (running ones).

    Two views, both relative L2 distances ``||train - eval|| / ||eval||``:

    - ``gap_isolated``: the layer alone, fed its eval-mode input: the mismatch this layer adds;
    - ``gap_cumulative``: the whole network in train mode vs in eval mode: what the layer finally sees,
      mismatches of the layers below included.

    Also ``mean_mismatch`` (mean over channels of ``|batch mean - running mean| / sqrt(running var + eps)``)
    and ``var_ratio`` (mean over channels of batch variance / running variance). The probe measures the
    statistics, whatever the layers' policies: they are set aside for it (``set_bn_regime(model, "train")``)
    and, like the model's modes and running statistics, left exactly as they were.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> rows = train_eval_gap(m, torch.randn(16, 4) * 3 + 1)
    >>> rows[0]["name"], rows[0]["gap_isolated"] > 0.1
    ('1', True)
    """
    device = model_device(model, device)
    x = x.to(device)
    layers = bn_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layers to compare")
    seen: dict[str, dict] = {name: {} for name, _ in layers}
    phase = ["eval"]

    def hook(name):
        def fn(mod, inputs, output):
            # clone: a following ReLU(inplace=True) would otherwise overwrite the captured output
            seen[name][f"in_{phase[0]}"] = inputs[0].detach().clone()
            seen[name][f"out_{phase[0]}"] = output.detach().clone()
        return fn

    handles = [mod.register_forward_hook(hook(name)) for name, mod in layers]
    try:
        with preserved(model), set_bn_regime(model, "train"):  # exits in reverse: policies, then flags
            model.eval()
            model(x)
            phase[0] = "train"
            for _, mod in layers:  # the BN layers in train mode, everything else as the model has it in eval
                mod.training = True
            model(x)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for name, mod in layers:
        rec = seen[name]
        if "out_eval" not in rec or "out_train" not in rec:
            continue  # a layer the forward pass never reached
        inp = rec["in_eval"]
        iso = F.batch_norm(inp, None, None, mod.weight, mod.bias, training=True, eps=mod.eps)
        dims = [d for d in range(inp.ndim) if d != 1]
        bmean, bvar = inp.float().mean(dims), inp.float().var(dims, unbiased=False)
        rmean, rvar = mod.running_mean.float(), mod.running_var.float()
        rows.append(dict(name=name, channels=int(mod.num_features),
                         gap_isolated=_rel(iso, rec["out_eval"]),
                         gap_cumulative=_rel(rec["out_train"], rec["out_eval"]),
                         mean_mismatch=float(((bmean - rmean).abs() / (rvar + mod.eps).sqrt()).mean()),
                         var_ratio=float((bvar / (rvar + mod.eps)).mean())))
    return rows


# ----------------------------------------------------------------------------------------------------------
# The three regimes: PyTorch default, frozen (correct), old Keras
class BNRegime:
    """What :func:`set_bn_regime` changed, so that :meth:`restore` (or leaving a ``with`` block) undoes it."""

    def __init__(self, model: nn.Module, regime: str, saved: list[tuple[nn.Module, str | None, list[bool]]]):
        self.model, self.regime, self._saved = model, regime, saved

    def restore(self) -> None:
        """Give every layer back the policy and ``requires_grad`` flags it had before the regime.

        A layer that leaves ``"frozen"`` takes the model's current mode (``model.training``), as after
        ``transferlab.freeze.unfreeze_by_names``. Restoring twice does nothing more.
        """
        for mod, policy, grads in self._saved:
            set_bn_policy(mod, policy, training=self.model.training)
            for p, g in zip(mod.parameters(recurse=False), grads, strict=True):
                p.requires_grad_(g)
        self._saved = []

    def __enter__(self) -> BNRegime:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def __repr__(self) -> str:
        return f"BNRegime({self.regime!r}, layers={len(self._saved)})"


def set_bn_regime(model: nn.Module, regime: str) -> BNRegime:
    """Give every BN layer of ``model`` one of three regimes (``bn_pin`` policies); returns a handle that undoes it.

    - ``"train"``: PyTorch's default (policy ``None``). ``model.train()`` means mini-batch statistics *and*
      running-statistic updates, whatever ``requires_grad`` says. (Affine parameters keep their ``requires_grad``.)
    - ``"frozen"``: the correct way to freeze BN: running statistics, never updated, affine parameters
      frozen, even when ``model.train()`` is called later (``fit`` does).
    - ``"old_keras"``: what ``trainable=False`` did in Keras <= 2.1.x: in training the layer still
      normalises with mini-batch statistics, but its running statistics are never updated and its affine
      parameters are frozen; at inference (``model.eval()``) it uses the stale running statistics.

    The regime replaces whatever policy a layer had (e.g. ``"frozen"`` from ``freeze_by_names``); the handle's
    :meth:`BNRegime.restore`, or leaving a ``with`` block, gives it back.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> with set_bn_regime(m, "frozen"):
    ...     _ = m.train(); bn_in_train_mode(m)
    []
    >>> with set_bn_regime(m, "old_keras"):
    ...     any(r["changed"] for r in forward_changes_stats(m.train(), torch.randn(8, 4)))
    False
    """
    regime = as_choice("BN regime", regime, REGIMES)
    policy = None if regime == "train" else regime
    saved = []
    for _, mod in bn_layers(model):
        saved.append((mod, bn_policy(mod), [p.requires_grad for p in mod.parameters(recurse=False)]))
        set_bn_policy(mod, policy, training=model.training)
        if policy is not None:
            for p in mod.parameters(recurse=False):
                p.requires_grad_(False)
    return BNRegime(model, regime, saved)


def evaluate_in_mode(model: nn.Module, data: Iterable, *, mode: str = "eval", device=None) -> dict:
    """Accuracy and loss with the model in ``mode`` ("train" or "eval"), leaving its statistics untouched.

    "train" measures what the network computes while it trains (mini-batch statistics, dropout on): the
    accuracy an old Keras progress bar showed. A thin wrapper over the kit's one evaluation loop,
    :func:`transferlab.train.evaluate`, in float32 (no autocast): the buffers and every module's mode are
    restored after, and BatchNorm policies apply (a ``"frozen"`` layer uses its running statistics in "train").

    Examples
    --------
    >>> m = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.BatchNorm1d(2))
    >>> data = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    >>> sorted(evaluate_in_mode(m, data, mode="train"))
    ['acc', 'loss', 'n']
    """
    if mode not in ("train", "eval"):  # the message this function has always given (evaluate's names 'eval' first)
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    return evaluate(model, data, device=device, amp=False, mode=mode)


@torch.no_grad()
def output_spread(model: nn.Module, x: torch.Tensor, *, passes: int = 20, seed: int = 0, device=None) -> torch.Tensor:
    """Run ``model(x)`` ``passes`` times in its current mode; returns the outputs stacked ``[passes, ...]``.

    In eval mode every pass is identical; with dropout left in train mode they differ. BatchNorm layers follow
    their policies (:mod:`transferlab.bn_pin`). Dropout masks are drawn from ``seed`` (the global RNG state is
    left as it was) and BN statistics are restored afterwards.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    >>> bool(output_spread(m.eval(), torch.ones(2, 4), passes=3).std(0).max() == 0)
    True
    """
    passes, seed = as_int("passes", passes, min=1), as_seed(seed)
    device = model_device(model, device)
    x = x.to(device)
    outs = []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), preserved(model):
        torch.manual_seed(seed)
        for _ in range(passes):
            outs.append(model(x).float().cpu())
    return torch.stack(outs)
