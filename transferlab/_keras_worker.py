"""One Keras backend in its own process: what :func:`transferlab.backends.compare` runs once per backend.

Keras picks its backend once per process (``KERAS_BACKEND`` is read at the first ``import keras``), so each
backend gets a fresh interpreter: ``python -m transferlab._keras_worker <folder> <backend>``. The folder holds
``setup.npz`` (the data, the shared starting weights, the batch order; written by the parent) and
``config.json``; the worker writes ``result-<backend>.npz`` (arrays) and ``result-<backend>.json`` (times,
versions, accuracies), both atomically. Nothing is pickled. This module imports only the standard library,
NumPy and Keras (not torch), so a JAX run does not pay for a torch import it does not need.

What it measures, for one backend:

- ``infer``: the validation logits of the model holding the shared weights, in inference mode;
- ``step``: the weights after ONE training step from the shared weights on the first batch, with dropout off
  (pure arithmetic) and on (the backend's random numbers too); the BatchNorm moving statistics are among them;
- ``init_a``/``init_b`` and ``mask_a``/``mask_b``: the initial weights and a dropout mask drawn after
  ``keras.utils.set_random_seed(seed)``, twice, to see whether the seed repeats them within the backend (the
  parent compares them across backends);
- short training runs per seed (i) from the shared weights without dropout (only the arithmetic differs
  between backends) and (ii) from the backend's own seeded initialisation with dropout (what a user running
  "the same model with the same seed" gets), their validation accuracies, and run (ii) twice for the first seed
  (repeatability within the backend);
- the time of the first training step (it includes compilation where the backend compiles) and the median of
  the later steps.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _set_threads(backend: str, threads: int | None) -> str:
    """Ask the backend for ``threads`` CPU threads, before it starts; returns what was done, in words."""
    if not threads:
        return "backend default"
    if backend == "jax":  # XLA reads its flags once, at start-up
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                                   f"intra_op_parallelism_threads={threads}").strip()
        return f"XLA_FLAGS intra_op_parallelism_threads={threads}"
    return f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')}"


def _build(keras, cfg: dict, *, dropout: float):
    layers = keras.layers
    return keras.Sequential([
        keras.Input((cfg["n_features"],)),
        layers.Dense(cfg["hidden"], name="dense"),
        layers.BatchNormalization(name="bn"),
        layers.Activation("relu", name="relu"),
        layers.Dropout(dropout, name="dropout"),
        layers.Dense(cfg["n_classes"], name="head"),
    ])


def _compiled(keras, cfg: dict, *, dropout: float, weights=None):
    model = _build(keras, cfg, dropout=dropout)
    if weights is not None:
        model.set_weights([np.asarray(w) for w in weights])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=cfg["lr"], momentum=cfg["momentum"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _weights(model) -> list[np.ndarray]:
    return [np.array(w, dtype=np.float32) for w in model.get_weights()]


def _logits(keras, model, x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float32)


def _train(keras, model, data, order, batch, step_times=None) -> None:
    x, y = data["x_train"], data["y_train"]
    for epoch_order in order:
        for i in range(0, len(epoch_order), batch):
            idx = epoch_order[i:i + batch]
            t = time.perf_counter()
            model.train_on_batch(x[idx], y[idx])
            if step_times is not None:
                step_times.append(time.perf_counter() - t)


def main(folder: str, backend: str) -> int:
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    threads_note = _set_threads(backend, cfg.get("threads"))
    os.environ["KERAS_BACKEND"] = backend
    t0 = time.perf_counter()
    import keras

    import_s = time.perf_counter() - t0
    if keras.backend.backend() != backend:
        raise RuntimeError(f"asked for the {backend!r} backend, Keras runs on {keras.backend.backend()!r}")
    if backend == "torch" and cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg["threads"]))
    with np.load(folder / "setup.npz") as f:
        data = {k: f[k] for k in f.files}
    shared = [data[f"w{i}"] for i in range(cfg["n_weights"])]
    out: dict[str, np.ndarray] = {}
    info: dict = dict(backend=backend, keras=keras.__version__, python=sys.version.split()[0],
                      platform=platform.platform(), import_s=import_s, threads=threads_note,
                      backend_version=_backend_version(backend))
    seeds = [int(s) for s in cfg["seeds"]]

    # 1. inference with the shared weights
    model = _compiled(keras, cfg, dropout=cfg["dropout"], weights=shared)
    t = time.perf_counter()
    out["infer"] = _logits(keras, model, data["x_val"])
    info["infer_s"] = time.perf_counter() - t

    # 2. one training step from the shared weights on the first batch, dropout off and on
    first = data[f"order_{seeds[0]}"][0][: cfg["batch"]]
    for tag, rate in (("nodrop", 0.0), ("drop", cfg["dropout"])):
        keras.utils.set_random_seed(seeds[0])
        m = _compiled(keras, cfg, dropout=rate, weights=shared)
        m.train_on_batch(data["x_train"][first], data["y_train"][first])
        for i, w in enumerate(_weights(m)):
            out[f"step_{tag}/{i}"] = w

    # 3. the seed, twice: initial weights and a dropout mask
    ones = np.ones((cfg["batch"], cfg["hidden"]), dtype=np.float32)
    for s in seeds:
        for rep in ("a", "b"):
            keras.utils.set_random_seed(s)
            for i, w in enumerate(_weights(_build(keras, cfg, dropout=cfg["dropout"]))):
                out[f"init_{rep}/{s}/{i}"] = w
            keras.utils.set_random_seed(s)
            drop = keras.layers.Dropout(cfg["dropout"])
            out[f"mask_{rep}/{s}"] = np.asarray(keras.ops.convert_to_numpy(drop(ones, training=True)) != 0)

    # 4. short training runs: what the differences above do to a result
    step_times: list[float] = []
    accs: dict[str, dict[str, float]] = {}
    y_val = data["y_val"]
    for s in seeds:
        order = data[f"order_{s}"]
        for variant, rate, init in (("shared init, no dropout", 0.0, shared),
                                    ("own seeded init, dropout", cfg["dropout"], None)):
            keras.utils.set_random_seed(s)
            m = _compiled(keras, cfg, dropout=rate, weights=init)
            _train(keras, m, data, order, cfg["batch"], step_times if variant.startswith("own") else None)
            accs.setdefault(variant, {})[str(s)] = float((_logits(keras, m, data["x_val"]).argmax(1) == y_val).mean())
            if variant.startswith("own") and s == seeds[0]:
                for i, w in enumerate(_weights(m)):
                    out[f"final/{i}"] = w
        if s == seeds[0]:  # the user's run again, same seed, same process
            keras.utils.set_random_seed(s)
            m = _compiled(keras, cfg, dropout=cfg["dropout"])
            _train(keras, m, data, order, cfg["batch"])
            for i, w in enumerate(_weights(m)):
                out[f"final_again/{i}"] = w
    info["accuracy"] = accs
    info["first_step_s"] = step_times[0] if step_times else None
    info["step_s"] = float(np.median(step_times[1:])) if len(step_times) > 1 else None
    info["steps_timed"] = len(step_times)
    info["total_s"] = time.perf_counter() - t0

    from ._paths import atomic_write

    atomic_write(folder / f"result-{backend}.npz", lambda tmp: _savez(tmp, out))
    atomic_write(folder / f"result-{backend}.json", json.dumps(info, indent=1))
    return 0


def _savez(tmp: str, arrays: dict) -> None:
    with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, **arrays)


def _backend_version(backend: str) -> str:
    from importlib import metadata

    dist = {"jax": "jaxlib", "torch": "torch", "tensorflow": "tensorflow"}.get(backend, backend)
    for name in (dist, f"{dist}-cpu", backend):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


if __name__ == "__main__":  # pragma: no cover - run in a subprocess by transferlab.backends
    if len(sys.argv) != 3:
        sys.exit("usage: python -m transferlab._keras_worker <folder> <backend>")
    sys.exit(main(sys.argv[1], sys.argv[2]))
