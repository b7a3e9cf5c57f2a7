"""One Keras 3 model, the same weights, several backends: what changes when only the backend does.

Keras 3 runs the same model code on PyTorch, JAX or TensorFlow, and reads ``KERAS_BACKEND`` once per process.
:func:`compare` therefore runs each backend in its own Python process (``transferlab._keras_worker``), hands
them the same data, the same starting weights and the same batch order as ``.npz`` files in a temporary folder
(never pickles), and compares what comes back: inference outputs, one training step, the BatchNorm moving
statistics after it, whether a seed repeats the initial weights and dropout masks within and across backends,
short training runs, and the time per step. A backend that is not installed is skipped with a note (and what
installing it weighs), never an error; a worker that fails or runs out of time is reported the same way.

Every worker gets ``KERAS_HOME=<kit home>/keras`` (Keras writes its ``keras.json`` there, never in ``~/.keras``)
and ``HOME`` untouched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._paths import atomic_write, home
from ._validate import as_float, as_int, as_list, as_seed
from .checks import CheckResult, exercise_solution
from .repro import bitwise_equal

__all__ = ["BACKENDS", "INSTALL", "backend_status", "worker_env", "head_data", "shared_weights", "compare",
           "BackendReport", "check_seed_across"]

BACKENDS = ("torch", "jax", "tensorflow")
INSTALL = {  # measured on the machine that wrote lesson 07 (Linux x86-64, Python 3.11), November 2026
    "torch": "the kit's own dependency (Keras 3 itself: `pip install keras`, about 138 MB with its dependencies)",
    "jax": '`pip install "jax[cpu]"` (jax 0.10.2 + jaxlib: 88 MB of wheels, 381 MB installed, 28 s on a busy '
           "2-core machine), or the kit's extra `pip install -e .[backends]`",
    "tensorflow": "`pip install tensorflow-cpu` (2.21.0: a 274 MB wheel that unpacks to 1.2 GB, plus about 15 "
                  "dependencies; not installed by the kit)",
}
_MODULE = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}


def backend_status(backends: Sequence[str] = BACKENDS) -> list[dict]:
    """For each backend: is it installed (its package is importable here), its version, how to install it.

    Nothing is imported: ``importlib.util.find_spec`` and the installed metadata only (importing JAX or
    TensorFlow takes seconds).

    Examples
    --------
    >>> [r["backend"] for r in backend_status(("torch",))], backend_status(("torch",))[0]["installed"]
    (['torch'], True)
    """
    from importlib import metadata

    rows, has_keras = [], importlib.util.find_spec("keras") is not None
    for name in _backends(backends):
        installed = has_keras and importlib.util.find_spec(_MODULE[name]) is not None
        version = ""
        for dist in ({"jax": "jaxlib"}.get(name, name), f"{name}-cpu", name):
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        note = "installed" if installed else f"not installed: {INSTALL[name]}"
        if not has_keras:
            note = "Keras is not installed: `pip install -e .[keras]`"
        rows.append(dict(backend=name, installed=installed, version=version if installed else "", note=note))
    return rows


def worker_env(backend: str, *, threads: int | None = None) -> dict:
    """The environment of a worker process: ``KERAS_BACKEND``, ``KERAS_HOME`` in the kit home, thread counts.

    ``PYTHONPATH`` gets the folder holding this ``transferlab`` first, so the worker runs the same code as the
    caller. ``HOME`` is left as it is; nothing is written there: ``KERAS_HOME`` points into the kit home, and so
    does ``MPLCONFIGDIR`` (Keras imports matplotlib, which would build its font cache in ``~/.cache``). Values
    already set in the environment are kept. Waiting OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) instead
    of spinning, which on a busy machine keeps a 2-thread run from being many times slower than a 1-thread one.

    Examples
    --------
    >>> env = worker_env("jax", threads=1)
    >>> env["KERAS_BACKEND"], env["OMP_NUM_THREADS"], env["KERAS_HOME"].endswith("keras")
    ('jax', '1', True)
    """
    backend = _backends([backend])[0]
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    if "KERAS_HOME" not in env:
        env["KERAS_HOME"] = str(home() / "keras")
    Path(env["KERAS_HOME"]).mkdir(parents=True, exist_ok=True)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    if threads:
        threads = as_int("threads", threads, min=1)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    env.setdefault("MPLCONFIGDIR", str(home() / "matplotlib"))  # Keras imports matplotlib, which caches fonts
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # threads that wait sleep instead of spinning (shared machines)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def head_data(seed: int = 0, *, n_features: int = 32, n_classes: int = 4, n_train: int = 200,
              n_val: int = 200) -> dict:
    """A small classification problem for a Keras head: Gaussian blobs (float32 features, int labels).

    Examples
    --------
    >>> d = head_data(0, n_features=8, n_classes=3, n_train=30, n_val=12)
    >>> d["x_train"].shape, d["y_val"].shape, d["x_train"].dtype.name
    ((30, 8), (12,), 'float32')
    """
    rng = np.random.default_rng(as_seed(seed))
    centres = rng.normal(0, 1.5, (n_classes, n_features))
    out = {}
    for split, n in (("train", n_train), ("val", n_val)):
        y = rng.integers(0, n_classes, as_int(f"n_{split}", n, min=1))
        out[f"x_{split}"] = (centres[y] + rng.normal(0, 1.0, (len(y), n_features))).astype(np.float32)
        out[f"y_{split}"] = y.astype(np.int64)
    return out


def shared_weights(n_features: int, hidden: int, n_classes: int, seed: int = 0) -> list[np.ndarray]:
    """Starting weights for the comparison model, in Keras's order, drawn with NumPy (no backend involved).

    Dense kernel and bias, BatchNorm gamma, beta, moving mean, moving variance, head kernel and bias: Glorot
    uniform kernels, zero biases, BatchNorm at its defaults (1, 0, 0, 1).

    Examples
    --------
    >>> [w.shape for w in shared_weights(4, 3, 2)]
    [(4, 3), (3,), (3,), (3,), (3,), (3,), (3, 2), (2,)]
    """
    rng = np.random.default_rng(as_seed(seed))

    def glorot(a, b):
        lim = np.sqrt(6.0 / (a + b))
        return rng.uniform(-lim, lim, (a, b)).astype(np.float32)

    z, o = np.zeros(hidden, np.float32), np.ones(hidden, np.float32)
    return [glorot(n_features, hidden), z.copy(), o.copy(), z.copy(), z.copy(), o.copy(), glorot(hidden, n_classes),
            np.zeros(n_classes, np.float32)]


@dataclass
class BackendReport:
    """What :func:`compare` measured. Tables are pandas DataFrames; ``results`` holds each backend's raw output.

    - ``status``: one row per backend asked for: ran / not installed / failed / timed out, and why;
    - ``diffs``: each backend against ``reference`` (the first that ran): inference, one step, BN statistics,
      the final weights of a whole run;
    - ``seeds``: does the seed repeat the initial weights and a dropout mask within each backend, and across;
    - ``accuracy``: validation accuracy of the short training runs (backend x variant x seed);
    - ``timing``: import, first step, later steps, inference, whole worker.
    """

    reference: str | None
    status: object
    diffs: object
    seeds: object
    accuracy: object
    timing: object
    results: dict = field(default_factory=dict, repr=False)

    @property
    def ran(self) -> list[str]:
        return [b for b in self.results if self.results[b] is not None]

    def acc_gaps(self, variant: str = "own seeded init, dropout", other: str | None = None) -> list[float]:
        """Per seed, ``|acc(reference) - acc(other)|`` of one training variant (``other``: the second that ran)."""
        if len(self.ran) < 2:
            return []
        other = other or self.ran[1]
        a, b = self.results[self.reference]["info"]["accuracy"], self.results[other]["info"]["accuracy"]
        return [abs(a[variant][s] - b[variant][s]) for s in a[variant]]


def compare(data: dict | None = None, *, backends: Sequence[str] = ("torch", "jax"), seeds: Sequence[int] = (0,),
            hidden: int = 64, dropout: float = 0.3, lr: float = 0.05, momentum: float = 0.9, batch: int = 32,
            epochs: int = 3, threads: int | None = 1, timeout: float = 300, workdir: str | os.PathLike | None = None,
            progress: bool = False) -> BackendReport:
    """Run the same Keras model with the same weights on each backend (one process each) and compare.

    Parameters
    ----------
    data : dict, optional
        ``x_train, y_train, x_val, y_val`` (float features, integer labels from 0), e.g. a pretrained model's
        frozen features (the Keras way of transfer learning). Default: :func:`head_data`.
    backends : which backends to run; the first that runs is the reference of ``diffs``.
    seeds : seeds of the seed checks and of the training runs (one run per seed and variant).
    hidden, dropout, lr, momentum, batch, epochs : the model (Dense-BatchNorm-ReLU-Dropout-Dense) and its SGD.
    threads : CPU threads per worker (None: each backend's default). The workers run one after the other.
    timeout : seconds per worker; a worker past it is stopped and reported as timed out.
    workdir : where the exchange files go (default: a temporary folder, removed afterwards).

    Examples
    --------
    >>> r = compare(backends=("tensorflow",) if not backend_status(("tensorflow",))[0]["installed"] else ())
    >>> r.ran, r.reference
    ([], None)
    """
    import pandas as pd

    names = _backends(backends, allow_empty=True)
    seeds = [as_seed(s) for s in as_list("seeds", list(seeds))]
    data = head_data(seeds[0]) if data is None else {k: np.asarray(data[k]) for k in
                                                    ("x_train", "y_train", "x_val", "y_val")}
    for split in ("train", "val"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"data: x_{split} must be [N, features] and y_{split} [N] with N >= 1, got shapes "
                             f"{x.shape} and {y.shape}")
        if y.dtype.kind not in "iu" or y.min() < 0:
            raise ValueError(f"data: y_{split} must hold integer class indices >= 0, got {y.dtype} from {y.min()}")
    if data["x_train"].shape[1] != data["x_val"].shape[1]:
        raise ValueError(f"data: x_train has {data['x_train'].shape[1]} features, x_val {data['x_val'].shape[1]}")
    x_train = data["x_train"].astype(np.float32)
    n_classes = int(max(data["y_train"].max(), data["y_val"].max())) + 1
    cfg = dict(n_features=int(x_train.shape[1]), hidden=as_int("hidden", hidden, min=1), n_classes=n_classes,
               dropout=as_float("dropout", dropout, min=0.0, max=1.0, max_open=True),
               lr=as_float("lr", lr, min=0.0, min_open=True), momentum=as_float("momentum", momentum, min=0.0),
               batch=as_int("batch", batch, min=1), epochs=as_int("epochs", epochs, min=1), seeds=seeds,
               threads=None if threads is None else as_int("threads", threads, min=1), n_weights=8)
    timeout = as_float("timeout", timeout, min=0.0, min_open=True)
    arrays = dict(x_train=x_train, y_train=data["y_train"].astype(np.int64), x_val=data["x_val"].astype(np.float32),
                  y_val=data["y_val"].astype(np.int64))
    for i, w in enumerate(shared_weights(cfg["n_features"], cfg["hidden"], n_classes, seeds[0])):
        arrays[f"w{i}"] = w
    for s in seeds:  # the batch order of every epoch, fixed here so no backend's shuffling enters
        rng = np.random.default_rng(s)
        arrays[f"order_{s}"] = np.stack([rng.permutation(len(x_train)) for _ in range(cfg["epochs"])])
    installed = {r["backend"]: r for r in backend_status(names)} if names else {}
    status, results = [], {}
    with tempfile.TemporaryDirectory(prefix="tl-backends-", dir=workdir) as tmp:
        folder = Path(tmp)
        atomic_write(folder / "setup.npz", lambda p: _savez(p, arrays))
        atomic_write(folder / "config.json", json.dumps(cfg))
        for name in names:
            if not installed[name]["installed"]:
                status.append(dict(backend=name, status="skipped", seconds=0.0, note=installed[name]["note"]))
                results[name] = None
                continue
            if progress:
                print(f"running Keras on {name} ...", flush=True)
            row, res = _run_worker(folder, name, cfg["threads"], timeout)
            status.append(row)
            results[name] = res
    ran = [b for b in names if results.get(b) is not None]
    ref = ran[0] if ran else None
    report = BackendReport(ref, pd.DataFrame(status, columns=["backend", "status", "seconds", "note"]),
                           *_tables(results, ran, ref, arrays, seeds), results=results)
    return report


def _run_worker(folder: Path, name: str, threads, timeout: float) -> tuple[dict, dict | None]:
    cmd = [sys.executable, "-m", "transferlab._keras_worker", str(folder), name]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=worker_env(name, threads=threads), capture_output=True, text=True,
                              timeout=timeout, cwd=folder)
    except subprocess.TimeoutExpired:
        return dict(backend=name, status="timed out", seconds=time.perf_counter() - t0,
                    note=f"stopped after {timeout:g} s (raise timeout=, or lower epochs/seeds)"), None
    seconds = time.perf_counter() - t0
    out = folder / f"result-{name}.json"
    if proc.returncode != 0 or not out.exists():
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return dict(backend=name, status="failed", seconds=seconds, note=f"exit code {proc.returncode}: {tail}"), None
    with np.load(folder / f"result-{name}.npz") as f:
        arrays = {k: f[k] for k in f.files}
    info = json.loads(out.read_text())
    return dict(backend=name, status="ran", seconds=seconds, note=info["backend_version"]), dict(info=info,
                                                                                                 arrays=arrays)


def _group(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _tables(results: dict, ran: list[str], ref: str | None, setup: dict, seeds: list[int]):
    import pandas as pd

    diffs, seed_rows, acc_rows, timing = [], [], [], []
    names = {"4": "moving_mean", "5": "moving_variance"}
    for b in ran:
        a, info = results[b]["arrays"], results[b]["info"]
        timing.append(dict(backend=b, import_s=info["import_s"], first_step_s=info["first_step_s"],
                           step_ms=None if info["step_s"] is None else 1000 * info["step_s"],
                           infer_ms=1000 * info["infer_s"], worker_s=info["total_s"], threads=info["threads"]))
        for variant, per_seed in info["accuracy"].items():
            acc_rows += [dict(backend=b, variant=variant, seed=int(s), val_acc=v) for s, v in per_seed.items()]
        for s in seeds:
            seed_rows.append(dict(backend=b, seed=s, compared_with="itself (same seed again)",
                                  init_weights_equal=bitwise_equal(_group(a, f"init_a/{s}/"),
                                                                   _group(a, f"init_b/{s}/"))["equal"],
                                  dropout_mask_equal=bool(np.array_equal(a[f"mask_a/{s}"], a[f"mask_b/{s}"]))))
        again = bitwise_equal(_group(a, "final/"), _group(a, "final_again/"))["equal"]
        seed_rows.append(dict(backend=b, seed=seeds[0], compared_with="itself: whole training run again",
                              final_weights_equal=again))
        if b == ref:
            continue
        r = results[ref]["arrays"]
        for s in seeds:
            seed_rows.append(dict(backend=b, seed=s, compared_with=ref,
                                  init_weights_equal=bitwise_equal(_group(r, f"init_a/{s}/"),
                                                                   _group(a, f"init_a/{s}/"))["equal"],
                                  dropout_mask_equal=bool(np.array_equal(r[f"mask_a/{s}"], a[f"mask_a/{s}"])),
                                  mask_agreement=float((r[f"mask_a/{s}"] == a[f"mask_a/{s}"]).mean())))
        shared = {str(i): setup[f"w{i}"] for i in range(8)}
        logits = bitwise_equal({"logits": r["infer"]}, {"logits": a["infer"]})
        row = dict(backend=b, reference=ref, infer_max_abs_diff=logits["max_abs_diff"],
                   infer_rel_diff=logits["max_abs_diff"] / max(float(np.abs(r["infer"]).max()), 1e-30),
                   argmax_agreement=float((r["infer"].argmax(1) == a["infer"].argmax(1)).mean()))
        for tag in ("nodrop", "drop"):
            ra, aa = _group(r, f"step_{tag}/"), _group(a, f"step_{tag}/")
            train_keys = [k for k in ra if k not in names]
            d = bitwise_equal({k: ra[k] for k in train_keys}, {k: aa[k] for k in train_keys})
            size = max(float(np.abs(ra[k] - shared[k]).max()) for k in train_keys)
            row[f"update_{tag}_max_abs_diff"] = d["max_abs_diff"]
            row[f"update_{tag}_rel_diff"] = d["max_abs_diff"] / max(size, 1e-30)
            if tag == "nodrop":
                for k, stat in names.items():
                    row[f"bn_{stat}_max_abs_diff"] = bitwise_equal({k: ra[k]}, {k: aa[k]})["max_abs_diff"]
                    row[f"bn_{stat}_moved"] = float(np.abs(ra[k] - shared[k]).max())
        row["final_weights_max_abs_diff"] = bitwise_equal(_group(r, "final/"), _group(a, "final/"))["max_abs_diff"]
        diffs.append(row)
    return (pd.DataFrame(diffs), pd.DataFrame(seed_rows), pd.DataFrame(acc_rows), pd.DataFrame(timing))


@exercise_solution("_rows = $report.seeds[$report.seeds['compared_with'] == $report.reference]  # section 1's seeds "
                   "table\n$answer = bool(_rows['init_weights_equal'].astype(bool).all())", answer="answer")
def check_seed_across(report: BackendReport, answer) -> CheckResult:
    """Exercise: does ``keras.utils.set_random_seed`` give the same initial weights on two backends?

    ``answer`` is True or False (``None``: no answer yet); the expected answer is what ``report`` measured for
    every seed. Without two backends that ran there is nothing to check, and the result says so.

    Examples
    --------
    >>> import pandas as pd
    >>> r = BackendReport("torch", None, None, pd.DataFrame([dict(backend="jax", seed=0, compared_with="torch",
    ...                   init_weights_equal=False)]), None, None)
    >>> check_seed_across(r, False)
    ✅ Right: with the same seed, jax and torch started from different weights (1 of 1 seeds).
    >>> bool(check_seed_across(r, True))
    False
    """
    if answer is None:
        return CheckResult.general(False, "no answer yet: replace the None with True or False")
    if not isinstance(answer, (bool, np.bool_)):
        return CheckResult.general(False, f"expected True or False, got {answer!r}")
    seeds = report.seeds
    rows = seeds[seeds["compared_with"] == report.reference] if seeds is not None and len(seeds) else seeds
    if rows is None or not len(rows):
        return CheckResult.general(False, "this run has no second backend to compare with (install one: see the "
                                          "status table); nothing to check")
    same = rows["init_weights_equal"].astype(bool)
    measured = bool(same.all())
    pair = f"{rows['backend'].iloc[0]} and {report.reference}"
    if bool(answer) == measured:
        how = "the same" if measured else "different"
        return CheckResult(True, f"Right: with the same seed, {pair} started from {how} weights "
                                 f"({int((same == measured).sum())} of {len(same)} seeds).")
    return CheckResult.general(False, f"Not what this run measured: look at the seeds table, rows compared with "
                                      f"{report.reference!r}. A seed fixes the state of a random number generator, "
                                      f"and each backend draws its initial weights with its own generator.")


def _savez(tmp: str, arrays: dict) -> None:
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _backends(backends, *, allow_empty: bool = False) -> list[str]:
    names = as_list("backends", backends, allow_empty=allow_empty)
    for n in names:
        if n not in BACKENDS:
            from ._validate import did_you_mean

            raise ValueError(f"unknown backend {n!r}; expected one of {BACKENDS}.{did_you_mean(n, BACKENDS)}")
    return list(dict.fromkeys(names))
