"""Training runs in a process of their own, with a fixed number of CPU threads: what ``repro.run_threads`` starts.

``python -m transferlab._train_worker <folder>``: the folder holds ``spec.json`` (the jobs, each with its
deterministic switch, the model, the thread count) and ``task.safetensors`` (the train and validation images); the
worker writes ``state-<i>.safetensors`` (each run's final weights) and ``result.json``, atomically.
``OMP_NUM_THREADS`` was set by the parent before this process started; :func:`main` also calls
``torch.set_num_threads``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path


def main(folder: str) -> int:
    import torch

    folder = Path(folder)
    spec = json.loads((folder / "spec.json").read_text())
    torch.set_num_threads(int(spec["threads"]))
    from safetensors.torch import load_file, save_file

    from ._paths import atomic_write
    from .repro import pins, train_recipe
    from .tasks import ImageTask

    t = load_file(str(folder / "task.safetensors"))
    empty = t["x_val"][:0]
    task = ImageTask(spec["name"], t["x_train"], t["y_train"], empty, t["y_val"][:0], tuple(spec["classes"]),
                     tuple(spec["mean"]), tuple(spec["std"]), x_val=t["x_val"], y_val=t["y_val"], sealed=True)
    from .models import create_model

    _warm_up(create_model(spec["model"], task.num_classes, pretrained=True), task, spec)
    runs = []
    for i, (recipe, seed, deterministic) in enumerate(spec["jobs"]):
        # on a GPU some ops (adaptive pooling's backward, ...) have no deterministic kernel: warn and name them
        # rather than stop; on a CPU an op without one raises, as the switch intends
        torch.use_deterministic_algorithms(bool(deterministic), warn_only=spec["device"] != "cpu")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            net, acc = train_recipe(task, model=spec["model"], recipe=recipe, seed=seed, device=spec["device"],
                                    **spec["recipe"])
            seconds = time.perf_counter() - t0
        flagged = sorted({str(w.message).split(" does not have a deterministic")[0][:80] for w in caught
                          if "deterministic" in str(w.message)})
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        name = f"state-{i}.safetensors"
        atomic_write(folder / name, lambda p, s=state: save_file(s, p))
        runs.append(dict(recipe=recipe, seed=seed, threads=torch.get_num_threads(),
                         deterministic=torch.are_deterministic_algorithms_enabled(), device=spec["device"],
                         val_acc=acc, seconds=seconds, file=name, nondeterministic_ops=flagged,
                         pins=pins(seed=seed, device=spec["device"], model=spec["model"], **spec["recipe"])))
    atomic_write(folder / "result.json", json.dumps(dict(runs=runs), indent=1))
    return 0


def _warm_up(net, task, spec) -> None:
    """One forward and backward pass at the training batch size, and one evaluation pass, on a throwaway copy.

    The first use of a kernel for a shape pays one-off costs (oneDNN builds its kernels then); without this, the
    first timed run of a process would carry them. No random numbers are drawn and no weights are kept.
    """
    import torch

    net.to(spec["device"]).train()
    batch = spec["recipe"].get("batch", 32)
    for x, y in task.loader("train", batch, shuffle=False):
        torch.nn.functional.cross_entropy(net(x.to(spec["device"])), y.to(spec["device"])).backward()
        break
    net.eval()
    with torch.no_grad():
        for x, _ in task.loader("val", 500):
            net(x.to(spec["device"]))
            break


if __name__ == "__main__":  # pragma: no cover - run in a subprocess by transferlab.repro.run_threads
    if len(sys.argv) != 2:
        sys.exit("usage: python -m transferlab._train_worker <folder>")
    sys.exit(main(sys.argv[1]))
