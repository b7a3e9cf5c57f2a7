"""Reproducibility you can check: bitwise comparison of weights, the pins a figure needs, runs per thread count.

- :func:`bitwise_equal`: are two sets of tensors identical bit for bit, and if not, where and by how much;
- :func:`pins` / :func:`compare_pins`: what a reader must fix to reproduce a figure (seed, threads, the
  deterministic switch, device, CPU, library versions, the kit's commit), and which of them differ between two
  runs;
- :func:`train_recipe`: one short fine-tuning run of a pretrained model, "all at once" or "head first" (a
  miniature of lesson 01's section 5);
- :func:`run_threads`: such runs in a fresh process with a fixed number of CPU threads (threads are a property
  of a process: ``OMP_NUM_THREADS`` must be set before torch starts), returning the final weights and accuracy.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._validate import as_choice, as_float, as_int, as_seed
from .checks import CheckResult, exercise_solution

__all__ = ["bitwise_equal", "pins", "compare_pins", "check_pins", "thread_counts", "RECIPES", "train_recipe",
           "run_threads"]

RECIPES = ("all at once", "head first")


def _as_array(t) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor (bfloat16 has no NumPy type: compare its float32 value)
        t = t.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def _as_mapping(state, name: str) -> dict:
    if isinstance(state, Mapping):
        return {str(k): v for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return {str(i): v for i, v in enumerate(state)}
    raise TypeError(f"{name} must be a state dict (name -> tensor) or a list of arrays, got {type(state).__name__}")


def bitwise_equal(state_a, state_b) -> dict:
    """Compare two sets of tensors (state dicts, or lists of arrays) bit for bit.

    Returns ``{"equal", "max_abs_diff", "n_tensors", "n_different", "tensors"}``: ``equal`` is True when every
    tensor has the same dtype, shape and bytes (so ``0.0`` and ``-0.0`` differ, and a NaN equals the same NaN);
    ``max_abs_diff`` is the largest absolute difference over all tensors (``nan`` where a value is NaN in one and
    not the other, 0.0 when equal); ``tensors`` maps each name to its own ``equal`` / ``max_abs_diff``.
    Torch tensors and NumPy arrays are both accepted.

    Raises ``ValueError`` when the two hold different names or a tensor's shape differs (they are not two
    versions of one model then).

    Examples
    --------
    >>> a = {"w": np.array([1.0, 2.0], np.float32), "b": np.zeros(2, np.float32)}
    >>> r = bitwise_equal(a, {"w": np.array([1.0, 2.5], np.float32), "b": np.zeros(2, np.float32)})
    >>> r["equal"], r["n_different"], r["max_abs_diff"], r["tensors"]["b"]["equal"]
    (False, 1, 0.5, True)
    >>> bitwise_equal(a, dict(a))["equal"]
    True
    """
    a, b = _as_mapping(state_a, "state_a"), _as_mapping(state_b, "state_b")
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        raise ValueError(f"the two states hold different tensors: only in the first {only_a[:5]}, only in the "
                         f"second {only_b[:5]}")
    per, worst = {}, 0.0
    for k in a:
        x, y = _as_array(a[k]), _as_array(b[k])
        if x.shape != y.shape:
            raise ValueError(f"tensor {k!r} has shape {x.shape} in the first state and {y.shape} in the second")
        same = x.dtype == y.dtype and x.tobytes() == y.tobytes()
        if same or x.size == 0:
            diff = 0.0
        elif x.dtype.kind in "biuf" and y.dtype.kind in "biuf":
            xf, yf = x.astype(np.float64), y.astype(np.float64)
            nan_mismatch = np.isnan(xf) != np.isnan(yf)
            with np.errstate(invalid="ignore"):
                d = np.abs(xf - yf)
            d = d[~(np.isnan(xf) & np.isnan(yf))]
            diff = float("nan") if nan_mismatch.any() else (float(np.nanmax(d)) if d.size else 0.0)
        else:
            diff = float("nan")
        per[k] = dict(equal=bool(same), max_abs_diff=diff)
        worst = diff if (np.isnan(diff) or np.isnan(worst)) and not same else max(worst, diff)
    n_diff = sum(not v["equal"] for v in per.values())
    return dict(equal=n_diff == 0, max_abs_diff=0.0 if n_diff == 0 else float(worst), n_tensors=len(per),
                n_different=n_diff, tensors=per)


def thread_counts(cpu_count: int | None = None) -> list[int]:
    """1, 2 and all CPU threads, without repeats (on a 2-core machine "all" is 2).

    Examples
    --------
    >>> thread_counts(2), thread_counts(16), thread_counts(1)
    ([1, 2], [1, 2, 16], [1])
    """
    n = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return sorted({c for c in (1, 2, n) if c <= max(n, 1)})


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _kit_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    if out.returncode != 0:
        return "unknown (not a git checkout)"
    return out.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")


def pins(*, seed, threads: int | None = None, deterministic: bool | None = None, device: str = "cpu",
         **extra) -> dict:
    """What a reader must fix to reproduce a figure from this process, as one flat dict.

    ``threads`` and ``deterministic`` default to this process's (``torch.get_num_threads()``,
    ``torch.are_deterministic_algorithms_enabled()``); ``extra`` adds anything else the figure depends on
    (data size, epochs, the model's name). Versions are read from the installed packages.

    Examples
    --------
    >>> p = pins(seed=0, threads=1, deterministic=False)
    >>> p["seed"], p["torch threads"], "torch" in p
    (0, 1, True)
    """
    import torch

    out = dict(seed=seed, **{"torch threads": torch.get_num_threads() if threads is None else int(threads),
                             "deterministic algorithms": (torch.are_deterministic_algorithms_enabled()
                                                          if deterministic is None else bool(deterministic)),
                             "device": str(device)})
    out["cpu"] = _cpu_model()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
        out["cuda"] = torch.version.cuda
    out.update(python=sys.version.split()[0], torch=torch.__version__, numpy=np.__version__,
               timm=_version("timm"), keras=_version("keras"), jax=_version("jax"))
    out["transferlab commit"] = _kit_commit()
    out.update(extra)
    return out


def compare_pins(published: Mapping, here: Mapping):
    """Pin by pin: the published value, this run's value, and whether they match (a pandas DataFrame).

    Examples
    --------
    >>> t = compare_pins({"seed": 0, "torch threads": 1}, {"seed": 0, "torch threads": 2})
    >>> t.loc[~t["same"], "pin"].tolist()
    ['torch threads']
    """
    import pandas as pd

    keys = list(dict.fromkeys([*published, *here]))
    return pd.DataFrame([dict(pin=k, published=str(published.get(k, "(not recorded)")),
                              here=str(here.get(k, "(not recorded)")), same=published.get(k) == here.get(k))
                         for k in keys])


@exercise_solution("from transferlab.repro import compare_pins\n\n_pins = compare_pins($published, $other)\n"
                   "$answer = sorted(_pins.loc[~_pins['same'], 'pin'])  # the rows that differ", answer="answer")
def check_pins(answer, published: Mapping, other: Mapping) -> CheckResult:
    """Exercise: which pins differ between ``published`` and ``other``? ``answer``: a pin name or a list of them.

    Examples
    --------
    >>> check_pins(["torch threads"], {"seed": 0, "torch threads": 1}, {"seed": 0, "torch threads": 2})
    ✅ Right: the pins that differ are ['torch threads'].
    >>> bool(check_pins("seed", {"seed": 0, "torch threads": 1}, {"seed": 0, "torch threads": 2}))
    False
    """
    if answer is None or (isinstance(answer, (list, tuple, set)) and not answer):
        return CheckResult.general(False, "no answer yet: replace the None with a pin name or a list of them")
    given = {answer} if isinstance(answer, str) else set(answer)
    table = compare_pins(published, other)
    differ = set(table.loc[~table["same"], "pin"])
    if given == differ:
        return CheckResult(True, f"Right: the pins that differ are {sorted(differ)}.")
    missing, extra = sorted(differ - given), sorted(given - differ)
    why, general = [], []
    if missing:
        why.append(f"{len(missing)} differing pin(s) are missing from your answer")
        general.append("pins that differ are missing from your answer")
    if extra:
        why.append(f"{extra} do not differ" if set(extra) <= set(table["pin"]) else f"{extra} are not pins of "
                   f"these records (names as in compare_pins: {table['pin'].tolist()[:4]}, ...)")
        general.append(why[-1] if not set(extra) <= set(table["pin"]) else "your answer names pins that do not differ")
    advice = ". Put the two records side by side with compare_pins(published, other)."
    return CheckResult(False, "Not yet: " + "; ".join(why) + advice,
                       graded_message="Not yet: " + "; ".join(general) + advice)


def train_recipe(task, *, model: str, recipe: str, seed: int, epochs: int = 8, head_epochs: int = 2,
                 lr: float = 4e-3, head_lr: float = 1e-2, batch: int = 32, device="cpu"):
    """One short fine-tuning run of the pretrained ``model`` on ``task``; returns ``(model, val accuracy)``.

    ``"all at once"``: a new random head, everything trained together for ``epochs`` at ``lr``. ``"head
    first"``: the body frozen (parameters and BatchNorm statistics) while the head trains for ``head_epochs`` at
    ``head_lr``, then everything for ``epochs`` at ``lr``. AdamW with a one-cycle schedule (``transferlab.train
    .fit``); accuracy is read on the validation split (the runs are compared with each other, not reported as a
    final model, so the test split stays sealed).
    """
    from .freeze import freeze_stages, unfreeze_all
    from .models import create_model, replace_head, stage_names
    from .train import evaluate, fit

    recipe = as_choice("recipe", recipe, RECIPES)
    seed = as_seed(seed)
    net = create_model(model, task.num_classes, pretrained=True, device=device)
    replace_head(net, task.num_classes, seed=seed)
    train = task.loader("train", as_int("batch", batch, min=1), seed=seed)
    if recipe == "head first":
        freeze_stages(net, len(stage_names(net)))
        fit(net, train, epochs=as_int("head_epochs", head_epochs, min=1), lr=as_float("head_lr", head_lr, min=0.0),
            seed=seed, device=device, progress=False)
        unfreeze_all(net)
    fit(net, train, epochs=as_int("epochs", epochs, min=1), lr=as_float("lr", lr, min=0.0), seed=seed + 1,
        device=device, progress=False)
    return net, float(evaluate(net, task.loader("val", 500), device=device)["acc"])


def run_threads(task, jobs: Sequence[tuple], *, model: str, threads: int, deterministic: bool = False,
                device: str = "cpu", timeout: float = 600, **recipe) -> list[dict]:
    """Run ``jobs`` with :func:`train_recipe`, one after the other, in a fresh process with ``threads``.

    A job is ``(recipe, seed)``, or ``(recipe, seed, deterministic)`` to override ``deterministic`` for that
    job: the child calls ``torch.use_deterministic_algorithms(deterministic)`` before each. The task's train and
    validation images travel as a safetensors file, the final weights come back the same way (no pickles).
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` are set in the child's environment before torch starts, and the child
    calls ``torch.set_num_threads(threads)``. Before the first job the child runs one untimed forward/backward
    pass (kernels pay one-off costs at their first use). Each returned dict has ``recipe, seed, threads,
    deterministic, device, val_acc, seconds`` (the run's wall time in the child), ``nondeterministic_ops`` (on a
    GPU with ``deterministic``: the operations PyTorch warned have no deterministic kernel; on a CPU such an
    operation raises instead), ``state`` (the final weights, name -> tensor) and ``pins``. Raises
    ``RuntimeError`` with the child's last lines if it fails, and ``TimeoutError`` past ``timeout`` seconds.
    """
    from safetensors.torch import load_file, save_file

    from ._paths import atomic_write
    from .backends import worker_env

    threads = as_int("threads", threads, min=1)
    jobs = [_job(j, deterministic) for j in jobs]
    if not jobs:
        raise ValueError("no jobs: give (recipe, seed) pairs, e.g. [('all at once', 0)]")
    with tempfile.TemporaryDirectory(prefix="tl-threads-") as tmp:
        folder = Path(tmp)
        tensors = {"x_train": task.x_train, "y_train": task.labels("train"), "x_val": task.x_val,
                   "y_val": task.labels("val")}
        atomic_write(folder / "task.safetensors",
                     lambda p: save_file({k: v.contiguous() for k, v in tensors.items()}, p))
        spec = dict(jobs=jobs, model=model, threads=threads, device=str(device),
                    recipe=recipe, name=task.name, classes=list(task.classes), mean=list(task.mean),
                    std=list(task.std))
        atomic_write(folder / "spec.json", json.dumps(spec))
        env = worker_env("torch", threads=threads)
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for deterministic results
        try:
            proc = subprocess.run([sys.executable, "-m", "transferlab._train_worker", str(folder)], env=env,
                                  capture_output=True, text=True, timeout=as_float("timeout", timeout, min=1.0),
                                  cwd=folder)
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(f"the {threads}-thread run did not finish in {timeout:g} s") from err
        if proc.returncode != 0 or not (folder / "result.json").exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise RuntimeError(f"the {threads}-thread worker failed (exit code {proc.returncode}):\n{tail}")
        result = json.loads((folder / "result.json").read_text())
        for row in result["runs"]:
            row["state"] = load_file(str(folder / row.pop("file")))
        return result["runs"]


def _job(job, deterministic: bool) -> tuple[str, int, bool]:
    if not isinstance(job, (tuple, list)) or len(job) not in (2, 3):
        raise ValueError(f"a job is (recipe, seed) or (recipe, seed, deterministic), got {job!r}")
    det = job[2] if len(job) == 3 else deterministic
    return as_choice("recipe", job[0], RECIPES), as_seed(job[1]), bool(det)
