"""Which hardware the lesson runs on, and how to make its numbers repeatable.

Every function in the kit that takes a model or tensors takes ``device=None``; ``None`` means "the kit's
default device", which is :func:`pick_device` unless a learner set another with :func:`set_default_device`
(the DevicePanel widget does that).
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys

import numpy as np
import torch

from ._validate import as_seed

__all__ = [
    "pick_device",
    "resolve_device",
    "set_default_device",
    "get_default_device",
    "model_device",
    "seed_everything",
    "seeded",
    "env_report",
    "autocast",
]

_DEFAULT_DEVICE: torch.device | None = None


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return kind == "cpu"


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the best device here: CUDA, then Apple MPS, then CPU.

    Parameters
    ----------
    prefer : str, optional
        ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``. A preferred device that is not available raises
        ``ValueError`` rather than falling back silently.

    Examples
    --------
    >>> pick_device("cpu")
    device(type='cpu')
    """
    if prefer is not None:
        try:
            dev = torch.device(prefer)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"unknown device {prefer!r}; expected 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
        if not _available(dev.type):
            raise ValueError(f"device {prefer!r} is not available on this machine; available: {_available_list()}")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {prefer!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
        return dev
    for kind in ("cuda", "mps"):
        if _available(kind):
            return torch.device(kind)
    return torch.device("cpu")


def _available_list() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _available("mps"):
        out.append("mps")
    return out


def set_default_device(device: str | torch.device | None) -> torch.device:
    """Set the device that ``device=None`` means everywhere in the kit (``None`` resets to automatic)."""
    global _DEFAULT_DEVICE
    _DEFAULT_DEVICE = None if device is None else pick_device(str(device))
    return get_default_device()


def get_default_device() -> torch.device:
    """The device ``device=None`` resolves to."""
    return _DEFAULT_DEVICE if _DEFAULT_DEVICE is not None else pick_device()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a ``device=`` argument into a :class:`torch.device` (``None`` -> the kit's default)."""
    if device is None:
        return get_default_device()
    if isinstance(device, torch.device):
        return device
    return pick_device(device)


def model_device(model: torch.nn.Module, device: str | torch.device | None = None) -> torch.device:
    """Where a function that *uses* an existing model runs it.

    ``device=None``: wherever the model already is (its first parameter or buffer; CPU for an empty module),
    so evaluating a model never moves it behind your back. An explicit ``device``: the model is moved there
    (``model.to(device)``, as :func:`transferlab.train.fit` does) and that device is returned. Functions that
    *make* a model (``create_model``, ``zoo.load``) and ``fit`` use :func:`resolve_device` instead: ``None``
    there means the kit's default device.

    Examples
    --------
    >>> m = torch.nn.Linear(2, 2)
    >>> str(model_device(m)), str(model_device(m, "cpu")), str(model_device(torch.nn.ReLU()))
    ('cpu', 'cpu', 'cpu')
    """
    if device is not None:
        device = resolve_device(device)
        model.to(device)
        return device
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def seeded(seed: int | None = None, device=None):
    """Run a block on private random streams and leave the caller's random state exactly as it was.

    Inside the block the torch CPU generator (and the CUDA generator of ``device``, when it is a CUDA device)
    starts from ``seed``; NumPy's and Python's global generators are saved and restored too. With
    ``seed=None`` the block draws from a copy of the caller's current torch state, so its numbers depend on
    that state, but the caller's state still does not move. Every kit function that draws random numbers
    runs inside this, so calling it never changes what the caller's next ``torch.rand`` returns.

    Examples
    --------
    >>> torch.manual_seed(1); before = torch.rand(1); torch.manual_seed(1)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> with seeded(0):
    ...     _ = torch.rand(3)
    >>> torch.equal(torch.rand(1), before)
    True
    """
    if seed is not None:
        seed = seed_value(seed)
    dev = torch.device(device) if device is not None and not isinstance(device, torch.device) else device
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if (
        dev is not None and dev.type == "cuda" and torch.cuda.is_available()) else []
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=cuda):
            if seed is not None:
                torch.manual_seed(seed)
                for idx in cuda:
                    with torch.cuda.device(idx):
                        torch.cuda.manual_seed(seed)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def seed_value(seed) -> int:
    """A seed as a Python int (NumPy integers accepted); ``ValueError`` for anything but a non-negative integer."""
    return as_seed(seed)


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python, NumPy and PyTorch (all devices); optionally ask for deterministic kernels.

    Parameters
    ----------
    seed : int
        A non-negative integer.
    deterministic : bool
        Also call ``torch.use_deterministic_algorithms(True)`` and set the cuDNN/cuBLAS switches that it
        needs. Some operations then raise instead of running non-deterministically; that is the point.
        ``False`` leaves those switches as they are (it does not turn them off).

    Examples
    --------
    >>> _ = seed_everything(0); a = torch.rand(2)
    >>> _ = seed_everything(0); torch.equal(a, torch.rand(2))
    True
    """
    seed = seed_value(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True)
    return seed


def autocast(device: torch.device, enabled: bool | None = None):
    """A bf16 autocast context on CUDA (when the GPU supports bf16), a no-op elsewhere.

    bf16 keeps float32's exponent range, so no gradient scaler is needed; on CPU and MPS the kit trains in
    float32, which is both safe and, for the kit's small models, not slower.
    """
    use = device.type == "cuda" and torch.cuda.is_bf16_supported() if enabled is None else enabled
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bool(use))


def env_report() -> dict:
    """Versions and hardware, for the top of a notebook and the docs site.

    Examples
    --------
    >>> r = env_report(); sorted(k for k in r if k in ("python", "torch", "device"))
    ['device', 'python', 'torch']
    """
    try:
        import timm

        timm_version = timm.__version__
    except Exception as err:  # timm is a dependency, but a broken install should not break the report
        timm_version = f"unavailable ({type(err).__name__})"
    import torchvision

    dev = get_default_device()
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm_version,
        "numpy": np.__version__,
        "device": str(dev),
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "mps_available": _available("mps"),
    }
    if torch.cuda.is_available():
        idx = dev.index if dev.type == "cuda" and dev.index is not None else 0
        props = torch.cuda.get_device_properties(idx)
        free, total = torch.cuda.mem_get_info(idx)
        report.update(
            gpu_name=props.name,
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_memory_total_gib=round(total / 2**30, 2),
            gpu_memory_free_gib=round(free / 2**30, 2),
            cuda_version=torch.version.cuda,
        )
    return report
