"""Lesson 05's exercise checks on BatchNorm, judged by behaviour (any correct solution passes)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .bn_pin import bn_layers
from .bn_stats import bn_state, preserved, stats_drift
from .checks import CheckResult, exercise_solution
from .device import model_device
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["check_bn_frozen", "check_bn_freezer", "check_preprocess_mode"]
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
    >>> from transferlab.batchnorm import set_bn_regime
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
        with preserved(model), torch.no_grad():
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
    return CheckResult.general(False, f"Not yet: after model.train(), {len(batch_stat_layers)} BN layer(s) normalised "
                                      f"with batch statistics ({batch_stat_layers[:3]}) and {len(moved)} changed their "
                                      f"running statistics ({moved[:3]}).")


@exercise_solution("def $freeze_bn(model):\n    from torch import nn\n\n    def keep_eval(module, inputs):\n"
                   "        module.eval()  # before every forward: model.train() cannot undo it\n\n"
                   "    for module in model.modules():\n"
                   "        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):\n"
                   "            module.register_forward_pre_hook(keep_eval)", answer="freeze_bn")
def check_bn_freezer(freeze_bn: Callable[[nn.Module], object] | None, model: nn.Module, x: torch.Tensor, *,
                     device=None) -> CheckResult:
    """Exercise: does ``freeze_bn(model)`` make every BN layer keep and use its statistics, even after ``train()``?

    Applies the learner's function to a deep copy of ``model`` (which is not changed) and judges the result with
    :func:`check_bn_frozen`; ``None`` means "no answer yet".

    Examples
    --------
    >>> from transferlab.batchnorm import set_bn_regime
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> bool(check_bn_freezer(lambda model: model.eval(), m, torch.randn(8, 4)))   # undone by model.train()
    False
    >>> bool(check_bn_freezer(lambda model: set_bn_regime(model, "frozen"), m, torch.randn(8, 4)))
    True
    """
    if freeze_bn is None:
        return CheckResult.general(False, "no answer yet: replace the None with a function freeze_bn(model)")
    if not callable(freeze_bn):
        return CheckResult.general(False, f"expected a function freeze_bn(model), got {type(freeze_bn).__name__}")
    m = copy.deepcopy(model)
    try:
        freeze_bn(m)
    except Exception as err:  # the learner's code: report any error as the answer's problem
        return CheckResult.general(False, f"Not yet: your function raised {type(err).__name__}: {err}")
    try:
        return check_bn_frozen(m, x, device=device)
    except Exception as err:  # e.g. a forward pre-hook that returns something other than None or new inputs
        return CheckResult.general(False, f"Not yet: with your function applied, a forward pass raised "
                                          f"{type(err).__name__}: {err} (a forward pre-hook must return None, or the "
                                          f"module's new inputs)")


_KERAS_MODES = {"torch": (IMAGENET_MEAN, IMAGENET_STD), "tf": ((0.5,) * 3, (0.5,) * 3)}


@exercise_solution("def _keras_mode(name):\n    import timm\n\n    cfg = timm.get_pretrained_cfg(name)\n"
                   "    near = lambda a, b: all(abs(u - v) < 1e-3 for u, v in zip(a, b))  # noqa: E731\n"
                   "    if near(cfg.mean, (0.485, 0.456, 0.406)) and near(cfg.std, (0.229, 0.224, 0.225)):\n"
                   "        return 'torch'  # ImageNet's mean and std\n"
                   "    if near(cfg.mean, (0.5,) * 3) and near(cfg.std, (0.5,) * 3):\n"
                   "        return 'tf'  # scaled to [-1, 1]\n"
                   "    return 'none'  # 'caffe' also swaps RGB to BGR: never a timm checkpoint's preprocessing\n\n\n"
                   "$answer = _keras_mode($model_name)", answer="answer")
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
        return CheckResult.general(False, f"no answer yet: replace the None with one of {options}")
    got = str(answer).strip().lower()
    if got not in options:
        return CheckResult.general(False, f"Not yet: {answer!r} is not one of {options}")
    said = f"{model_name} expects mean {tuple(round(v, 4) for v in mean)}, std {tuple(round(v, 4) for v in std)}"
    if got == expected:
        return CheckResult(True, f"Correct: {said}: Keras mode {expected!r}." if expected != "none" else
                                 f"Correct: {said}: no Keras mode gives that; normalise with the checkpoint's own.")
    hint = {"caffe": "caffe mode also swaps RGB to BGR and does not scale to [0, 1]",
            "tf": "tf mode maps to [-1, 1]: mean 0.5, std 0.5", "torch": "torch mode uses ImageNet's mean and std",
            "none": "one of the modes does match"}[got]
    return CheckResult.general(False, f"Not yet: {hint}. Read the checkpoint's pretrained_cfg "
                                      f"(timm.get_pretrained_cfg(name)), not the architecture's.")
