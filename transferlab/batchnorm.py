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

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import as_choice, as_int, as_seed
from .bn_pin import bn_behaviour, bn_layers, bn_policy, is_batchnorm, set_bn_policy
from .bn_stats import bn_state, forward_changes_stats, restore_bn_state, stats_drift
from .checks import CheckResult
from .device import model_device
from .keras_bridge import bn_defaults, check_keras_momentum, import_keras, keras_status, torch_bn_to_keras
from .preprocessing import CAFFE_BGR_MEAN, IMAGENET_MEAN, IMAGENET_STD, PREPROCESS_MODES, preprocess
from .tasks import ImageTask
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
@contextlib.contextmanager
def _preserved(model: nn.Module):
    """Restore every module's ``training`` flag and every BN buffer on exit."""
    flags = [(m, m.training) for m in model.modules()]
    state = bn_state(model)
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
        restore_bn_state(model, state)


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
        with _preserved(model), set_bn_regime(model, "train"):  # exits in reverse: policies, then flags
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
    with torch.random.fork_rng(devices=devices), _preserved(model):
        torch.manual_seed(seed)
        for _ in range(passes):
            outs.append(model(x).float().cpu())
    return torch.stack(outs)


# ----------------------------------------------------------------------------------------------------------
# The same task photographed differently; a split's raw images
def map_images(task: ImageTask, fn: Callable[[torch.Tensor], torch.Tensor], label: str) -> ImageTask:
    """``task`` with ``fn`` applied to the uint8 images of every split (train, validation, test); labels kept.

    A "new camera" for lesson 05: the same objects under another exposure. The result keeps the task's classes,
    normalisation statistics and seal, and is named ``f"{task.name}[{label}]"``. ``fn`` must return uint8 images
    of the same shape.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> t = target_task(2, n_test_per_class=1, n_val_per_class=1, size=16)
    >>> dark = map_images(t, lambda x: x // 2, "dark"); dark.name, dark.sealed, int(dark.x_train.max()) <= 127
    ('target[sim=1][dark]', True, True)
    """
    def apply(x, split):
        out = fn(x)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8 or out.shape != x.shape:
            raise ValueError(f"{label!r}: fn must return uint8 images of shape {tuple(x.shape)} for the {split} split, "
                             f"got {type(out).__name__} {getattr(out, 'dtype', '')} {tuple(getattr(out, 'shape', ()))}")
        return out

    changes = {f"x_{split}": apply(getattr(task, f"x_{split}"), split) for split in task.splits}
    return dataclasses.replace(task, name=f"{task.name}[{label}]", info=dict(task.info, shift=label), **changes)


def split_images(task: ImageTask, split: str, *, final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw uint8 images and the labels of ``split``, for code that normalises images itself.

    The same rule as ``task.loader``: the test split of a sealed task (one with a validation split) needs
    ``final=True``, the final evaluation of a model whose choices were made on validation.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> t = target_task(2, n_test_per_class=1, n_val_per_class=1, size=16)
    >>> x, y = split_images(t, "val"); x.dtype, len(y)
    (torch.uint8, 10)
    >>> split_images(t, "test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    transferlab.tasks.SealedSplitError: the test split of ... is sealed: ...
    """
    y = task.labels(split, final=final)  # checks the split and the seal
    return getattr(task, f"x_{split}"), y


# ----------------------------------------------------------------------------------------------------------
# Exercise check
def check_bn_frozen(model: nn.Module, x: torch.Tensor, *, device=None) -> CheckResult:
    """Exercise: is every BN layer of ``model`` truly frozen, even after ``model.train()``?

    Judged by behaviour, so any correct solution passes (overriding ``train``, a forward pre-hook, ...):
    with the model put in train mode, one forward pass must change no running statistic, and every BN
    layer's output must equal its input normalised with the running statistics. The model's modes and
    statistics are left as they were.

    Returns
    -------
    CheckResult
        Truthy when right; shows itself as one line in a notebook, naming the layers at fault when wrong.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> bool(check_bn_frozen(m, torch.randn(8, 4)))
    False
    >>> with set_bn_regime(m, "frozen"):
    ...     check_bn_frozen(m, torch.randn(8, 4))
    ✅ Correct: after model.train() every BN layer still uses its running statistics and none moved.
    """
    layers = bn_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layers")
    device = model_device(model, device)
    seen: dict[str, tuple] = {}

    def hook(name):
        def fn(mod, inputs, output):
            seen[name] = (inputs[0].detach().clone(), output.detach().clone())
        return fn

    handles = [mod.register_forward_hook(hook(name)) for name, mod in layers]
    try:
        with _preserved(model), torch.no_grad():
            model.train()
            before = bn_state(model)
            model(x.to(device))
            moved = [r["name"] for r in stats_drift(before, bn_state(model)) if r["changed"]]
    finally:
        for h in handles:
            h.remove()
    batch_stat_layers = []
    for name, mod in layers:
        if name not in seen:
            continue
        inp, out = seen[name]
        want = F.batch_norm(inp, mod.running_mean, mod.running_var, mod.weight, mod.bias, training=False,
                            eps=mod.eps)
        if not torch.allclose(out, want, rtol=1e-4, atol=1e-5):
            batch_stat_layers.append(name)
    if not batch_stat_layers and not moved:
        return CheckResult(True, "Correct: after model.train() every BN layer still uses its running statistics and "
                                 "none moved.")
    return CheckResult(False, f"Not yet: after model.train(), {len(batch_stat_layers)} BN layer(s) normalised with "
                              f"batch statistics ({batch_stat_layers[:3]}) and {len(moved)} changed their running "
                              f"statistics ({moved[:3]}).")


def check_bn_freezer(freeze_bn: Callable[[nn.Module], object] | None, model: nn.Module, x: torch.Tensor, *,
                     device=None) -> CheckResult:
    """Exercise: does ``freeze_bn(model)`` make every BN layer keep and use its statistics, even after ``train()``?

    Applies the learner's function to a deep copy of ``model`` (which is not changed) and judges the result with
    :func:`check_bn_frozen`; ``None`` means "no answer yet".

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> bool(check_bn_freezer(lambda model: model.eval(), m, torch.randn(8, 4)))   # undone by model.train()
    False
    >>> bool(check_bn_freezer(lambda model: set_bn_regime(model, "frozen"), m, torch.randn(8, 4)))
    True
    """
    if freeze_bn is None:
        return CheckResult(False, "no answer yet: replace the None with a function freeze_bn(model)")
    if not callable(freeze_bn):
        return CheckResult(False, f"expected a function freeze_bn(model), got {type(freeze_bn).__name__}")
    m = copy.deepcopy(model)
    try:
        freeze_bn(m)
    except Exception as err:  # the learner's code: report any error as the answer's problem
        return CheckResult(False, f"Not yet: your function raised {type(err).__name__}: {err}")
    try:
        return check_bn_frozen(m, x, device=device)
    except Exception as err:  # e.g. a forward pre-hook that returns something other than None or new inputs
        return CheckResult(False, f"Not yet: with your function applied, a forward pass raised {type(err).__name__}: "
                                  f"{err} (a forward pre-hook must return None, or the module's new inputs)")


_KERAS_MODES = {"torch": (IMAGENET_MEAN, IMAGENET_STD), "tf": ((0.5,) * 3, (0.5,) * 3)}


def check_preprocess_mode(answer: str | None, model_name: str) -> CheckResult:
    """Exercise: which Keras ``preprocess_input`` mode (``"caffe"``, ``"tf"``, ``"torch"``, or ``"none"``) gives
    the timm checkpoint ``model_name`` the inputs it was trained with?

    The expected answer is read offline from timm's ``pretrained_cfg`` (its mean and std; no weights are
    downloaded): the mode whose normalisation equals it, or ``"none"``. ``"caffe"`` never does for a timm
    checkpoint: it also swaps RGB to BGR.

    Examples
    --------
    >>> check_preprocess_mode("tf", "inception_v3.tf_in1k")
    ✅ Correct: inception_v3.tf_in1k expects mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5): Keras mode 'tf'.
    >>> bool(check_preprocess_mode("torch", "inception_v3.tf_in1k"))
    False
    """
    import timm

    options = ("caffe", "tf", "torch", "none")
    cfg = timm.get_pretrained_cfg(model_name)
    if cfg is None:
        raise ValueError(f"timm has no pretrained configuration named {model_name!r}")
    mean, std = tuple(cfg.mean), tuple(cfg.std)
    close = lambda a, b: all(abs(u - v) < 1e-3 for u, v in zip(a, b, strict=True))  # noqa: E731
    expected = next((k for k, (m, s) in _KERAS_MODES.items() if close(mean, m) and close(std, s)), "none")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return CheckResult(False, f"no answer yet: replace the None with one of {options}")
    got = str(answer).strip().lower()
    if got not in options:
        return CheckResult(False, f"Not yet: {answer!r} is not one of {options}")
    said = f"{model_name} expects mean {tuple(round(v, 4) for v in mean)}, std {tuple(round(v, 4) for v in std)}"
    if got == expected:
        return CheckResult(True, f"Correct: {said}: Keras mode {expected!r}." if expected != "none" else
                                 f"Correct: {said}: no Keras mode gives that; normalise with the checkpoint's own.")
    hint = {"caffe": "caffe mode also swaps RGB to BGR and does not scale to [0, 1]",
            "tf": "tf mode maps to [-1, 1]: mean 0.5, std 0.5", "torch": "torch mode uses ImageNet's mean and std",
            "none": "one of the modes does match"}[got]
    return CheckResult(False, f"Not yet: {hint}. Read the checkpoint's pretrained_cfg (timm.get_pretrained_cfg(name)), "
                              f"not the architecture's.")
