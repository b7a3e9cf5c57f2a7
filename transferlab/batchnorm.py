"""BatchNorm (and dropout) pitfalls: probes you can point at any model, and the switches the lesson needs.

BatchNorm behaves differently in training and in inference: in ``train()`` mode it normalises with the
statistics of the current mini-batch *and* updates its running estimates; in ``eval()`` mode it normalises
with the running estimates and changes nothing. ``requires_grad=False`` and ``torch.no_grad()`` touch neither
behaviour. This module makes those facts visible:

- :func:`mode_report` / :func:`bn_in_train_mode`: which BN and dropout layers are in train mode;
- :func:`forward_changes_stats`: whether one forward pass changes the running statistics (and restores them);
- :func:`train_eval_gap`: per BN layer, how far its train-mode output is from its eval-mode output;
- :func:`set_bn_regime`: ``"frozen"`` (eval statistics, never updated, even under ``model.train()``),
  ``"old_keras"`` (what a frozen BN did in Keras <= 2.1: mini-batch statistics in training, running
  statistics never updated) or ``"train"`` (PyTorch's default);
- :func:`preprocess`: the input normalisations of Keras's ``preprocess_input`` modes and the kit's own;
- :func:`import_keras` / :func:`torch_bn_to_keras`: Keras 3 on the PyTorch backend, without touching
  ``~/.keras``, and a PyTorch BN layer ported into Keras for a number-by-number comparison.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import types
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .device import model_device
from .world import WORLD_MEAN, WORLD_STD

__all__ = [
    "BN_TYPES",
    "DROPOUT_TYPES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CAFFE_BGR_MEAN",
    "PREPROCESS_MODES",
    "REGIMES",
    "bn_layers",
    "mode_report",
    "bn_in_train_mode",
    "bn_state",
    "restore_bn_state",
    "stats_drift",
    "forward_changes_stats",
    "train_eval_gap",
    "BNRegime",
    "set_bn_regime",
    "evaluate_in_mode",
    "output_spread",
    "preprocess",
    "keras_status",
    "import_keras",
    "torch_bn_to_keras",
    "bn_defaults",
    "check_keras_momentum",
    "check_bn_frozen",
]

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)  # BatchNorm1d/2d/3d, SyncBatchNorm, LazyBatchNorm*
DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)  # Dropout, Dropout1d/2d/3d, AlphaDropout
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # Keras "caffe" mode: per-channel means in BGR order, 0-255 scale
PREPROCESS_MODES = ("world", "torch", "tf", "caffe", "unit")
REGIMES = ("train", "frozen", "old_keras")


# ----------------------------------------------------------------------------------------------------------
# Finding the layers and what mode they are in
def bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every BatchNorm layer of ``model``, in forward-definition order.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU())
    >>> [n for n, _ in bn_layers(m)]
    ['1']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BN_TYPES)]


def mode_report(model: nn.Module) -> list[dict]:
    """One row per BN and dropout layer: its mode and what it will do in the next forward pass.

    Columns: ``name``, ``kind`` (class name), ``training``, ``uses`` (``"batch stats"``, ``"running stats"``,
    ``"random mask"`` or ``"identity"``), ``updates_stats``, ``trainable`` (any affine parameter with
    ``requires_grad``).

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    >>> [(r["name"], r["uses"]) for r in mode_report(m.eval())]
    [('1', 'running stats'), ('2', 'identity')]
    """
    rows = []
    for name, mod in model.named_modules():
        if isinstance(mod, BN_TYPES):
            has_running = mod.running_mean is not None
            batch = mod.training or not has_running
            rows.append(dict(name=name, kind=type(mod).__name__, training=mod.training,
                             uses="batch stats" if batch else "running stats",
                             updates_stats=bool(mod.training and mod.track_running_stats and has_running),
                             trainable=any(p.requires_grad for p in mod.parameters(recurse=False))))
        elif isinstance(mod, DROPOUT_TYPES):
            active = mod.training and mod.p > 0
            rows.append(dict(name=name, kind=type(mod).__name__, training=mod.training,
                             uses="random mask" if active else "identity", updates_stats=False, trainable=False))
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
# Running statistics: snapshot, restore, compare
def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every BN buffer (``running_mean``, ``running_var``, ``num_batches_tracked``), by full name.

    Examples
    --------
    >>> m = nn.Sequential(nn.BatchNorm1d(3))
    >>> sorted(bn_state(m))
    ['0.num_batches_tracked', '0.running_mean', '0.running_var']
    """
    out = {}
    for name, mod in bn_layers(model):
        for key, buf in mod.named_buffers(recurse=False):
            if buf is not None:
                out[f"{name}.{key}" if name else key] = buf.detach().clone()
    return out


def restore_bn_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a :func:`bn_state` snapshot back into ``model`` (in place); unknown names raise ``KeyError``."""
    buffers = dict(model.named_buffers())
    unknown = sorted(set(state) - set(buffers))
    if unknown:
        raise KeyError(f"the snapshot names buffers this model does not have: {unknown[:5]}; "
                       f"was it taken from another model?")
    with torch.no_grad():
        for key, value in state.items():
            buffers[key].copy_(value)


def stats_drift(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[dict]:
    """Per BN layer, how far the running statistics moved between two :func:`bn_state` snapshots.

    Columns: ``name``, ``mean_shift`` and ``var_shift`` (largest absolute change over channels),
    ``batches`` (change of ``num_batches_tracked``), ``changed`` (any of them non-zero).

    Examples
    --------
    >>> bn = nn.BatchNorm1d(2); s0 = bn_state(bn)
    >>> with torch.no_grad(): _ = bn(torch.randn(8, 2))
    >>> stats_drift(s0, bn_state(bn))[0]["changed"]
    True
    """
    if set(before) != set(after):
        raise KeyError(f"the snapshots name different buffers: {sorted(set(before) ^ set(after))[:5]}")
    rows = []
    for layer in _layer_order(before):
        def get(snap, key, layer=layer):
            return snap.get(f"{layer}.{key}" if layer else key)

        row = dict(name=layer)
        for key, col in (("running_mean", "mean_shift"), ("running_var", "var_shift")):
            b, a = get(before, key), get(after, key)
            row[col] = float((a.float() - b.float()).abs().max()) if b is not None else 0.0
        b, a = get(before, "num_batches_tracked"), get(after, "num_batches_tracked")
        row["batches"] = int(a - b) if b is not None else 0
        row["changed"] = bool(row["mean_shift"] or row["var_shift"] or row["batches"])
        rows.append(row)
    return rows


def _layer_order(state: dict) -> list[str]:
    seen = {}
    for key in state:
        seen.setdefault(key.rsplit(".", 1)[0] if "." in key else "", None)
    return list(seen)


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


def forward_changes_stats(model: nn.Module, x: torch.Tensor, *, device=None, grad: bool = False,
                          inference_mode: bool = False, restore: bool = True) -> list[dict]:
    """Run one forward pass *in the model's current mode* and report how the running statistics moved.

    Parameters
    ----------
    x : Tensor
        One input batch.
    grad : bool
        ``False`` runs the pass under ``torch.no_grad()`` (the "it is only inference" case).
    inference_mode : bool
        Run under ``torch.inference_mode()`` instead.
    restore : bool
        Put the statistics back afterwards (default), so probing never changes the model.
    device : optional
        ``None`` keeps the model where it is (the input follows it); anything else moves the model.

    Returns
    -------
    list of dict, one per BN layer (see :func:`stats_drift`).

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> any(r["changed"] for r in forward_changes_stats(m.train(), torch.randn(8, 4)))
    True
    >>> any(r["changed"] for r in forward_changes_stats(m.eval(), torch.randn(8, 4)))
    False
    """
    device = model_device(model, device)
    before = bn_state(model)
    if inference_mode:
        ctx = torch.inference_mode()
    else:
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
    with ctx:
        model(x.to(device))
    after = bn_state(model)
    if restore:
        restore_bn_state(model, before)
    return stats_drift(before, after)


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
    and ``var_ratio`` (mean over channels of batch variance / running variance). The model's modes and
    running statistics are left exactly as they were.

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
        with _preserved(model):
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
def _stay_eval(self, mode: bool = True):
    """``train()`` for a frozen BN layer: whatever is asked, stay in eval mode."""
    return nn.Module.train(self, False)


class BNRegime:
    """What :func:`set_bn_regime` changed, so that :meth:`restore` (or leaving a ``with`` block) undoes it."""

    def __init__(self, model: nn.Module, regime: str, saved: list):
        self.model, self.regime, self._saved = model, regime, saved

    def restore(self) -> None:
        for mod, training, track, grads in self._saved:
            mod.__dict__.pop("train", None)
            mod.training, mod.track_running_stats = training, track
            for p, g in zip(mod.parameters(recurse=False), grads, strict=True):
                p.requires_grad_(g)
        self._saved = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()

    def __repr__(self):
        return f"BNRegime({self.regime!r}, layers={len(self._saved)})"


def set_bn_regime(model: nn.Module, regime: str) -> BNRegime:
    """Put every BN layer of ``model`` in one of three regimes; returns a handle that undoes it.

    - ``"train"``: PyTorch's default. ``model.train()`` means mini-batch statistics *and* running-statistic
      updates, whatever ``requires_grad`` says. (Affine parameters keep their ``requires_grad``.)
    - ``"frozen"``: the correct way to freeze BN: running statistics, never updated, affine parameters
      frozen, and the layer stays in eval mode even when ``model.train()`` is called later (``fit`` does).
    - ``"old_keras"``: what ``trainable=False`` did in Keras <= 2.1.x: in training the layer still
      normalises with mini-batch statistics, but its running statistics are never updated and its affine
      parameters are frozen; at inference (``model.eval()``) it uses the stale running statistics.

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
    if regime not in REGIMES:
        raise ValueError(f"unknown BN regime {regime!r}; expected one of {REGIMES}")
    saved = []
    for _, mod in bn_layers(model):
        saved.append((mod, mod.training, mod.track_running_stats,
                      [p.requires_grad for p in mod.parameters(recurse=False)]))
        mod.__dict__.pop("train", None)
        if regime == "frozen":
            mod.train = types.MethodType(_stay_eval, mod)
            mod.training = False
        elif regime == "old_keras":
            # track_running_stats=False + train mode: batch statistics, running buffers passed as None so
            # they are never updated; in eval mode the (stale) running buffers are used as usual.
            mod.track_running_stats = False
        if regime in ("frozen", "old_keras"):
            for p in mod.parameters(recurse=False):
                p.requires_grad_(False)
    return BNRegime(model, regime, saved)


@torch.no_grad()
def evaluate_in_mode(model: nn.Module, data: Iterable, *, mode: str = "eval", device=None) -> dict:
    """Accuracy and loss with the model in ``mode`` ("train" or "eval"), leaving its statistics untouched.

    "train" measures what the network computes while it trains (mini-batch statistics, dropout on): the
    accuracy an old Keras progress bar showed. The BN buffers and every module's mode are restored after.

    Examples
    --------
    >>> m = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.BatchNorm1d(2))
    >>> data = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    >>> sorted(evaluate_in_mode(m, data, mode="train"))
    ['acc', 'loss', 'n']
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    device = model_device(model, device)
    tot_loss, tot_correct, tot_n = 0.0, 0, 0
    with _preserved(model):
        model.train(mode == "train")
        for x, y in data:
            out = model(x.to(device)).float()
            y = y.to(device)
            tot_loss += F.cross_entropy(out, y, reduction="sum").item()
            tot_correct += (out.argmax(1) == y).sum().item()
            tot_n += len(y)
    if tot_n == 0:
        raise ValueError("evaluate_in_mode() got no batches")
    return {"loss": tot_loss / tot_n, "acc": tot_correct / tot_n, "n": tot_n}


@torch.no_grad()
def output_spread(model: nn.Module, x: torch.Tensor, *, passes: int = 20, seed: int = 0, device=None) -> torch.Tensor:
    """Run ``model(x)`` ``passes`` times in its current mode; returns the outputs stacked ``[passes, ...]``.

    In eval mode every pass is identical; with dropout left in train mode they differ. Dropout masks are
    drawn from ``seed`` (the global RNG state is left as it was) and BN statistics are restored afterwards.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    >>> bool(output_spread(m.eval(), torch.ones(2, 4), passes=3).std(0).max() == 0)
    True
    """
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ValueError(f"passes must be an integer >= 1, got {passes!r}")
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
# Preprocessing
def preprocess(x: torch.Tensor, mode: str, *, mean=None, std=None) -> torch.Tensor:
    """Turn uint8 (or 0-255 float) images ``[N, 3, H, W]`` (RGB) into network input, the way ``mode`` does.

    - ``"world"``: ``(x/255 - WORLD_MEAN) / WORLD_STD``, what the kit's zoo models were trained with
      (``mean``/``std`` override the statistics: pass a timm model's ``pretrained_cfg`` ones);
    - ``"torch"``: Keras ``preprocess_input(mode="torch")``: ``x/255``, then ImageNet mean/std;
    - ``"tf"``: Keras ``mode="tf"``: ``x/127.5 - 1``, i.e. [-1, 1];
    - ``"caffe"``: Keras ``mode="caffe"``: RGB -> BGR, subtract the ImageNet BGR means, no scaling;
    - ``"unit"``: ``x/255`` only.

    Examples
    --------
    >>> x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    >>> preprocess(x, "tf").unique().tolist()
    [1.0]
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected one of {PREPROCESS_MODES}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W] (RGB, channels first), got shape {tuple(x.shape)}")
    if (mean is not None or std is not None) and mode != "world":
        raise ValueError(f"mean/std only apply to mode 'world', not {mode!r}")
    x = x.float()

    def per_channel(v):
        return torch.as_tensor(v, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)

    if mode == "world":
        return (x / 255 - per_channel(mean or WORLD_MEAN)) / per_channel(std or WORLD_STD)
    if mode == "torch":
        return (x / 255 - per_channel(IMAGENET_MEAN)) / per_channel(IMAGENET_STD)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "caffe":
        return x.flip(1) - per_channel(CAFFE_BGR_MEAN)
    return x / 255


# ----------------------------------------------------------------------------------------------------------
# Keras 3 on the PyTorch backend
def keras_status() -> tuple[types.ModuleType | None, str]:
    """Import Keras 3 on the torch backend; returns ``(keras, "ok")`` or ``(None, why not)``.

    Sets ``KERAS_BACKEND=torch`` and ``KERAS_HOME=<kit cache>/keras`` unless already set, *before* the
    import, so Keras needs no TensorFlow and never writes ``~/.keras``.
    """
    if "keras" not in sys.modules:
        from .zoo import home

        os.environ.setdefault("KERAS_BACKEND", "torch")
        if "KERAS_HOME" not in os.environ:
            path = home() / "keras"
            path.mkdir(parents=True, exist_ok=True)
            os.environ["KERAS_HOME"] = str(path)
    try:
        import keras
    except ModuleNotFoundError as err:
        if err.name == "keras":
            return None, ("Keras is not installed; install the optional extra with `pip install -e .[keras]` "
                          "(Keras 3, no TensorFlow needed)")
        return None, (f"Keras failed to import with KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}: {err}. "
                      f"The kit runs Keras on the 'torch' backend: unset KERAS_BACKEND or set it to 'torch'.")
    except Exception as err:  # e.g. a broken backend install
        return None, (f"Keras failed to import with KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}: "
                      f"{type(err).__name__}: {err}. The kit runs Keras on the 'torch' backend.")
    version = getattr(keras, "__version__", "0")
    if int(version.split(".")[0]) < 3:
        return None, f"Keras {version} is installed; the lesson needs Keras 3 (`pip install -U keras`)"
    backend = keras.backend.backend()
    if backend != "torch":
        return None, (f"Keras is running on the {backend!r} backend (KERAS_BACKEND was set, or keras was "
                      f"imported, before transferlab could choose); restart and set KERAS_BACKEND=torch")
    return keras, "ok"


def import_keras(*, required: bool = False) -> types.ModuleType | None:
    """The ``keras`` module on the torch backend, or ``None`` (``required=True``: ``ImportError`` with why).

    Examples
    --------
    >>> k = import_keras()
    >>> k is None or k.backend.backend() == "torch"
    True
    """
    keras, reason = keras_status()
    if keras is None and required:
        raise ImportError(reason)
    return keras


def torch_bn_to_keras(bn: nn.Module, *, ndim: int | None = None, keras=None):
    """A Keras ``BatchNormalization`` (channels last) holding exactly the state of PyTorch layer ``bn``.

    Weights, running statistics and epsilon are copied; the momentum is converted (Keras keeps
    ``momentum * old + (1 - momentum) * batch``, PyTorch ``(1 - momentum) * old + momentum * batch``).

    Examples
    --------
    >>> k = import_keras()
    >>> k is None or torch_bn_to_keras(nn.BatchNorm2d(3), keras=k).momentum == 0.9
    True
    """
    if not isinstance(bn, BN_TYPES):
        raise TypeError(f"expected a torch BatchNorm layer, got {type(bn).__name__}")
    if bn.momentum is None:
        raise ValueError("bn.momentum is None (a cumulative average); Keras has no equivalent, set a number")
    if bn.running_mean is None:
        raise ValueError("bn has no running statistics (track_running_stats=False at construction)")
    keras = keras or import_keras(required=True)
    c = int(bn.num_features)
    layer = keras.layers.BatchNormalization(axis=-1, momentum=1.0 - float(bn.momentum), epsilon=float(bn.eps),
                                            center=bn.affine, scale=bn.affine)
    if ndim is None:
        ndim = {nn.BatchNorm1d: 2, nn.BatchNorm2d: 4, nn.BatchNorm3d: 5}.get(type(bn), 4)
    if isinstance(ndim, bool) or not isinstance(ndim, int) or ndim < 2:
        raise ValueError(f"ndim must be an integer >= 2 (the input rank), got {ndim!r}")
    layer.build((None,) * (ndim - 1) + (c,))
    weights = ([bn.weight, bn.bias] if bn.affine else []) + [bn.running_mean, bn.running_var]
    layer.set_weights([w.detach().float().cpu().numpy() for w in weights])
    return layer


def bn_defaults(keras=None) -> list[dict]:
    """PyTorch's and Keras's BatchNorm defaults, read from the installed classes' signatures.

    Rows: ``momentum`` (with its meaning), ``epsilon``. ``keras=None`` imports it if available; without
    Keras the Keras column says so.

    Examples
    --------
    >>> [r["setting"] for r in bn_defaults(keras=False)]
    ['momentum', 'epsilon']
    """
    tsig = inspect.signature(nn.BatchNorm2d.__init__).parameters
    if keras is None:
        keras = import_keras()
    ksig = inspect.signature(keras.layers.BatchNormalization.__init__).parameters if keras else None

    def kdef(name):
        return ksig[name].default if ksig else "keras not installed"

    return [
        dict(setting="momentum", pytorch=tsig["momentum"].default, keras=kdef("momentum"),
             meaning="torch: weight of the NEW batch; keras: weight of the OLD estimate"),
        dict(setting="epsilon", pytorch=tsig["eps"].default, keras=kdef("epsilon"),
             meaning="added to the variance before the square root"),
    ]


# ----------------------------------------------------------------------------------------------------------
# Exercise checks
def check_keras_momentum(torch_momentum: float, keras_momentum: float = 0.99) -> bool:
    """Exercise: which PyTorch ``momentum`` updates running statistics like Keras's ``keras_momentum``?

    Prints a verdict and returns True when the answer is right.

    Examples
    --------
    >>> check_keras_momentum(0.01)
    Correct: PyTorch momentum 0.01 = 1 - Keras momentum 0.99.
    True
    """
    if not isinstance(torch_momentum, (int, float)) or isinstance(torch_momentum, bool):
        raise ValueError(f"expected a number, got {torch_momentum!r}")
    ok = abs(float(torch_momentum) - (1.0 - keras_momentum)) < 1e-9
    if ok:
        print(f"Correct: PyTorch momentum {torch_momentum:g} = 1 - Keras momentum {keras_momentum:g}.")
    else:
        print(f"Not yet: {torch_momentum!r} is not it. PyTorch's momentum weighs the new batch, Keras's "
              f"weighs the old estimate.")
    return ok


def check_bn_frozen(model: nn.Module, x: torch.Tensor, *, device=None) -> bool:
    """Exercise: is every BN layer of ``model`` truly frozen, even after ``model.train()``?

    Judged by behaviour, so any correct solution passes (overriding ``train``, a forward pre-hook, ...):
    with the model put in train mode, one forward pass must change no running statistic, and every BN
    layer's output must equal its input normalised with the running statistics. The model's modes and
    statistics are left as they were.
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
    ok = not batch_stat_layers and not moved
    if ok:
        print("Correct: after model.train() every BN layer still uses its running statistics and none moved.")
    else:
        print(f"Not yet: after model.train(), {len(batch_stat_layers)} BN layer(s) normalised with batch statistics "
              f"({batch_stat_layers[:3]}) and {len(moved)} changed their running statistics ({moved[:3]}).")
    return ok
