"""Keras 3 on the PyTorch backend, for lesson 05's side-by-side comparison of Keras and PyTorch BatchNorm.

Keras 3 runs on PyTorch without TensorFlow. :func:`keras_status` / :func:`import_keras` choose that backend
and point ``KERAS_HOME`` at the kit's cache *before* the first ``import keras`` (Keras reads both only then),
so nothing is written into ``~/.keras``. :func:`torch_bn_to_keras` ports a PyTorch BatchNorm layer into a
Keras one with the same numbers, converting the momentum, whose meaning the two libraries invert
(:func:`bn_defaults` lists the defaults side by side; :func:`check_keras_momentum` is the lesson's exercise on it).
Keras is an optional extra (``pip install -e .[keras]``): without it these functions say so instead of failing.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import types

from torch import nn

from ._paths import home
from ._validate import as_float, as_int
from .bn_pin import is_batchnorm
from .checks import CheckResult, exercise_solution

__all__ = ["keras_status", "import_keras", "torch_bn_to_keras", "bn_defaults", "check_keras_momentum"]


def keras_status() -> tuple[types.ModuleType | None, str]:
    """Import Keras 3 on the torch backend; returns ``(keras, "ok")`` or ``(None, why not)``.

    Sets ``KERAS_BACKEND=torch`` and ``KERAS_HOME=<kit home>/keras`` (:func:`transferlab._paths.home`) unless
    already set, *before* the import, so Keras needs no TensorFlow and never writes ``~/.keras``.
    """
    if "keras" not in sys.modules:
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

    Parameters
    ----------
    bn : nn.Module
        A PyTorch BatchNorm layer with running statistics and a numeric momentum.
    ndim : int, optional
        The rank of the layer's input (2 for ``BatchNorm1d`` on ``[N, C]``, 4 for ``BatchNorm2d``); by
        default taken from the layer's class.
    keras : module, optional
        The ``keras`` module (default: :func:`import_keras` with ``required=True``).

    Examples
    --------
    >>> k = import_keras()
    >>> k is None or torch_bn_to_keras(nn.BatchNorm2d(3), keras=k).momentum == 0.9
    True
    """
    if not is_batchnorm(bn):
        raise TypeError(f"expected a torch BatchNorm layer, got {type(bn).__name__}")
    if bn.momentum is None:
        raise ValueError("bn.momentum is None (a cumulative average); Keras has no equivalent, set a number")
    if bn.running_mean is None:
        raise ValueError("bn has no running statistics (track_running_stats=False at construction)")
    if ndim is None:
        ndim = {nn.BatchNorm1d: 2, nn.BatchNorm2d: 4, nn.BatchNorm3d: 5}.get(type(bn), 4)
    ndim = as_int("ndim (the input rank)", ndim, min=2)
    keras = keras or import_keras(required=True)
    c = int(bn.num_features)
    layer = keras.layers.BatchNormalization(axis=-1, momentum=1.0 - float(bn.momentum), epsilon=float(bn.eps),
                                            center=bn.affine, scale=bn.affine)
    layer.build((None,) * (ndim - 1) + (c,))
    weights = ([bn.weight, bn.bias] if bn.affine else []) + [bn.running_mean, bn.running_var]
    layer.set_weights([w.detach().float().cpu().numpy() for w in weights])
    return layer


def bn_defaults(keras=None) -> list[dict]:
    """PyTorch's and Keras's BatchNorm defaults, read from the installed classes' signatures.

    Rows: ``momentum`` (with its meaning), ``epsilon``. ``keras=None`` imports it if available; ``keras=False``
    (or Keras missing) fills the Keras column with "keras not installed".

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


@exercise_solution("$torch_momentum = 1 - $keras_momentum  # torch weighs the new batch, Keras the old estimate",
                   answer="torch_momentum")
def check_keras_momentum(torch_momentum: float | None, keras_momentum: float = 0.99) -> CheckResult:
    """Exercise: which PyTorch ``momentum`` updates running statistics like Keras's ``keras_momentum``?

    Parameters
    ----------
    torch_momentum : float or None
        The learner's answer (a Python or NumPy number); ``None`` means "no answer yet".
    keras_momentum : float
        The Keras momentum to match, in [0, 1] (Keras's default 0.99).

    Returns
    -------
    CheckResult
        Truthy when right; shows itself as one line in a notebook, saying why when wrong.

    Examples
    --------
    >>> check_keras_momentum(0.01)
    ✅ Correct: PyTorch momentum 0.01 = 1 - Keras momentum 0.99.
    >>> bool(check_keras_momentum(0.99))
    False
    """
    keras_momentum = as_float("keras_momentum", keras_momentum, min=0.0, max=1.0)
    if torch_momentum is None:
        return CheckResult.general(False, "no answer yet: replace the None with a number")
    answer = as_float("torch_momentum (your answer)", torch_momentum)
    if math.isclose(answer, 1.0 - keras_momentum, rel_tol=1e-6, abs_tol=1e-9):  # float32 answers too
        return CheckResult(True, f"Correct: PyTorch momentum {answer:g} = 1 - Keras momentum {keras_momentum:g}.")
    return CheckResult.general(False, f"Not yet: {answer:g} is not it. PyTorch's momentum weighs the new batch, "
                                      f"Keras's weighs the old estimate.")
