"""Benchmark: the four PyTorch ways to freeze a layer and transferlab's helper, on time, memory and correctness.

For each workload (the kit CNN with BatchNorm, and a Char3Seq-style embedding + three linear layers model
with a BatchNorm) and each method of ``transferlab.freeze.FREEZE_METHODS`` this measures

- time per training step: median over many steps after warm-up; methods are interleaved in rounds so that
  load from other processes spreads over all of them (CPU, and CUDA when present);
- activation bytes saved for backward (``saved_tensors_hooks``), ``.grad`` bytes, optimizer-state bytes,
  and on CUDA the peak allocated memory of a step;
- correctness: frozen weights bitwise unchanged with SGD+momentum+weight decay and with AdamW+weight decay,
  BatchNorm running statistics unchanged, gradients computed for frozen parameters.

It prints one table per workload and device and writes ``benchmarks/results/bench_freeze.json`` atomically.
Run: ``python benchmarks/bench_freeze.py [--quick] [--threads 1] [--device cpu|cuda|all]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from transferlab import freeze as fz
from transferlab._paths import atomic_write
from transferlab.device import env_report
from transferlab.models import KitNet

RESULTS = Path(__file__).resolve().parent / "results" / "bench_freeze.json"


class Char3Seq(nn.Module):
    """An embedding and three linear layers (the source's Char3SeqModel), with a BatchNorm after fc1."""

    def __init__(self, vocab=2000, emb=128, hidden=1024, classes=100):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.fc1 = nn.Linear(3 * emb, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)

    def forward(self, x):
        h = torch.relu(self.bn(self.fc1(self.embed(x).flatten(1))))
        return self.fc3(torch.relu(self.fc2(h)))


def workloads(quick: bool):
    """name -> (model factory, frozen names, batch factory)."""
    bs_cnn, bs_seq = (64, 256) if quick else (128, 512)

    def cnn_batch(gen, device):
        return (torch.randn(bs_cnn, 3, 32, 32, generator=gen).to(device),
                torch.randint(0, 10, (bs_cnn,), generator=gen).to(device))

    def seq_batch(gen, device):
        return (torch.randint(0, 2000, (bs_seq, 3), generator=gen).to(device),
                torch.randint(0, 100, (bs_seq,), generator=gen).to(device))

    return {
        f"kitnet_m CNN, freeze stem+layer1+layer2, batch {bs_cnn}":
            (lambda: KitNet(10, widths=(24, 48, 96)), ["stem", "layer1", "layer2"], cnn_batch),
        f"Char3Seq MLP, freeze embed+fc1+bn, batch {bs_seq}":
            (Char3Seq, ["embed", "fc1", "bn"], seq_batch),
    }


OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-1),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _correctness(make, names, batch, device, steps=5) -> dict:
    out = {}
    for method in fz.FREEZE_METHODS:
        row = {}
        for opt_name, make_opt in OPTIMIZERS.items():
            torch.manual_seed(0)
            model = make().to(device).train()
            before = {k: v.detach().clone() for k, v in model.state_dict().items()}
            run = fz.setup_freeze_method(model, names, method, make_opt)
            frozen = set(run.frozen)
            gen = torch.Generator().manual_seed(1)
            for _ in range(steps):
                model.train()
                x, y = batch(gen, device)
                run.step(F.cross_entropy(model(x), y))
            after = model.state_dict()
            row[f"frozen_unchanged_{opt_name}"] = all(torch.equal(after[k], before[k]) for k in frozen)
            if opt_name == "sgd":
                stats = [k for k in after if k.split(".")[-1] in ("running_mean", "running_var",
                                                                   "num_batches_tracked")]
                frozen_mods = tuple(n + "." for n in names)
                stats = [k for k in stats if k.startswith(frozen_mods)]
                row["bn_stats_unchanged"] = all(torch.equal(after[k], before[k]) for k in stats)
                params = dict(model.named_parameters())
                row["frozen_grads_computed"] = any(params[k].grad is not None for k in frozen)
                row["grad_bytes"] = fz.grad_bytes(model)
            else:
                row["opt_state_bytes_adamw"] = fz.optimizer_state_bytes(run.optimizer)
            if opt_name == "sgd":
                x, _ = batch(torch.Generator().manual_seed(2), device)
                model.train()
                row["saved_activation_bytes"] = fz.saved_activation_bytes(model, x)
        out[method] = row
    return out


def _timing(make, names, batch, device, steps, warmup, rounds) -> dict:
    runs = {}
    for method in fz.FREEZE_METHODS:
        torch.manual_seed(0)
        model = make().to(device).train()
        runs[method] = fz.setup_freeze_method(model, names, method, OPTIMIZERS["adamw"])
    gen = torch.Generator().manual_seed(0)
    data = [batch(gen, device) for _ in range(4)]
    times = {m: [] for m in runs}
    peak = {}
    order = list(runs)
    for r in range(rounds):
        order = order[1:] + order[:1]  # rotate, so no method always runs first after a switch
        for method in order:
            run = runs[method]
            for i in range(warmup if r == 0 else 2):
                x, y = data[i % len(data)]
                run.step(F.cross_entropy(run.model(x), y))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            for i in range(steps // rounds):
                x, y = data[i % len(data)]
                _sync(device)
                t0 = time.perf_counter()
                run.model.train()
                run.step(F.cross_entropy(run.model(x), y))
                _sync(device)
                times[method].append(time.perf_counter() - t0)
            if device.type == "cuda":
                peak[method] = max(peak.get(method, 0), torch.cuda.max_memory_allocated(device))
    out = {}
    for method, ts in times.items():
        q = statistics.quantiles(ts, n=4)
        out[method] = dict(ms_per_step_median=1e3 * statistics.median(ts), ms_iqr=1e3 * (q[2] - q[0]), n=len(ts))
        if method in peak:
            out[method]["cuda_peak_bytes"] = peak[method]
    return out


def _verdict(timing: dict) -> dict:
    """Is the helper the fastest, or within noise of it?

    Noise: two standard errors of the difference of the two medians (each median's standard error taken as
    1.253 sigma / sqrt(n), sigma estimated as IQR / 1.349), relative to the fastest median; at least 5%.
    """
    fastest = min(timing, key=lambda m: timing[m]["ms_per_step_median"])
    best = timing[fastest]["ms_per_step_median"]
    helper = timing["helper"]["ms_per_step_median"]
    se = [1.253 * (timing[m]["ms_iqr"] / 1.349) / timing[m]["n"] ** 0.5 for m in (fastest, "helper")]
    tol = max(0.05, 2 * (se[0] ** 2 + se[1] ** 2) ** 0.5 / best)
    return dict(fastest=fastest, helper_over_fastest=helper / best, tolerance=tol,
                helper_fastest_or_tie=helper <= best * (1 + tol))


def _table(res: dict) -> str:
    cols = ["method", "ms/step", "IQR", "saved act MB", "grad MB", "AdamW state MB", "frozen same (SGD/AdamW)",
            "BN stats same", "frozen grads"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for m in fz.FREEZE_METHODS:
        t, c = res["timing"][m], res["correctness"][m]
        lines.append(" | ".join([
            m, f"{t['ms_per_step_median']:.2f}", f"{t['ms_iqr']:.2f}", f"{c['saved_activation_bytes'] / 1e6:.2f}",
            f"{c['grad_bytes'] / 1e6:.2f}", f"{c['opt_state_bytes_adamw'] / 1e6:.2f}",
            f"{c['frozen_unchanged_sgd']}/{c['frozen_unchanged_adamw']}", str(c["bn_stats_unchanged"]),
            str(c["frozen_grads_computed"])]))
    v = res["verdict"]
    lines.append(f"fastest: {v['fastest']}; helper / fastest = {v['helper_over_fastest']:.3f} "
                 f"(tie tolerance {v['tolerance']:.3f}) -> helper fastest or tie: {v['helper_fastest_or_tie']}")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """A bar chart per run: median ms/step (IQR as error bars) and saved-activation MB per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 6), squeeze=False)
    for j, res in enumerate(runs):
        methods = list(fz.FREEZE_METHODS)
        t = [res["timing"][m] for m in methods]
        axes[0, j].bar(methods, [r["ms_per_step_median"] for r in t], yerr=[r["ms_iqr"] / 2 for r in t])
        axes[0, j].set_title(f"{res['workload'].split(',')[0]} ({res['device']})", fontsize=9)
        axes[0, j].set_ylabel("ms / step (median)")
        axes[1, j].bar(methods, [res["correctness"][m]["saved_activation_bytes"] / 1e6 for m in methods])
        axes[1, j].set_ylabel("activations saved for backward (MB)")
        for ax in axes[:, j]:
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, smaller batches (a check, not a measurement)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared machine)")
    ap.add_argument("--device", default="all", help="'cpu', 'cuda', or 'all' (CPU, plus CUDA when present)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif args.device in ("cpu", "cuda"):
        if args.device == "cuda" and not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA device here")
        devices = [args.device]
    else:
        ap.error(f"--device must be 'cpu', 'cuda' or 'all', got {args.device!r}")
    steps, warmup, rounds = (40, 5, 4) if args.quick else (200, 10, 10)
    results = dict(env=env_report(), machine=platform.machine(), threads=args.threads, quick=args.quick,
                   steps=steps, warmup=warmup, rounds=rounds, runs=[])
    for dev_name in devices:
        device = torch.device(dev_name)
        for wname, (make, names, batch) in workloads(args.quick).items():
            t0 = time.perf_counter()
            res = dict(device=dev_name, workload=wname, frozen=names,
                       correctness=_correctness(make, names, batch, device),
                       timing=_timing(make, names, batch, device, steps, warmup, rounds))
            res["verdict"] = _verdict(res["timing"])
            res["seconds"] = time.perf_counter() - t0
            results["runs"].append(res)
            print(f"\n## {wname} on {dev_name} ({res['seconds']:.0f} s)\n{_table(res)}", flush=True)
    payload = json.dumps(results, indent=2)
    atomic_write(args.out, payload)
    plot(results, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
