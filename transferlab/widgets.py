"""GPU-aware widgets that make the lessons' knobs touchable (ipywidgets 8).

Each widget is a small class around an ipywidgets container (``.widget``); a notebook shows it with one line::

    DevicePanel()                                    # what hardware runs the lesson; pick the kit's device
    mon = TrainingMonitor(); display(mon)            # then fit(..., callbacks=[mon]): live curves, Stop button
    FreezeExplorer(model)                            # tick modules to freeze; live counts and BatchNorm modes
    QuadrantExplorer(results, recompute=run_one)     # lesson 01: data size x similarity x k
    RayExplorer(rays)                                # lesson 03: loss/error along random rays, SGD vs SWA
    RankingView(scores)                              # lesson 04: transferability scores vs fine-tuned accuracy

Figures are matplotlib images inside an ``ipywidgets.Image``: they redraw live in JupyterLab, are kept in the
widget state that nbclient saves (so the static site shows the last view), and need no front-end extension
beyond ipywidgets. Every widget also carries a static ``text/html`` snapshot (a table and the figure), which
``nbconvert`` and unwidgeted viewers show instead, so nothing is lost and nothing blocks when a notebook runs
headless. ``.table()`` and ``.figure()`` give the same content as a DataFrame and a matplotlib Figure.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import time
from collections.abc import Callable, Iterable

import ipywidgets as W
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .device import get_default_device, resolve_device, set_default_device
from .experiments import at_similarity
from .train import Callback, TrainState

__all__ = [
    "device_inventory",
    "batch_size_hint",
    "DevicePanel",
    "TrainingMonitor",
    "FreezeExplorer",
    "QuadrantExplorer",
    "RayExplorer",
    "RankingView",
]

GIB = 2**30


# ---------------------------------------------------------------------------------------------------------------
# shared plumbing: figures as PNG, the static fallback, display handles
# ---------------------------------------------------------------------------------------------------------------
def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # the figures use constrained layout: no bbox_inches="tight" pass
    return buf.getvalue()


def _img_tag(png: bytes) -> str:
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def _check_frame(df, required: Iterable[str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} expects a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected columns {list(required)}, "
                         f"got {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: the DataFrame is empty; expected at least one row")
    return df.copy()


class _Panel:
    """Base: ``.widget`` for the live view, ``static_html()`` for viewers without widgets."""

    widget: W.Widget
    title = ""

    def static_html(self) -> str:
        """A self-contained HTML snapshot (figure and table) of the current view."""
        parts = [f"<h4>{html.escape(self.title)}</h4>"] if self.title else []
        image = getattr(self, "image", None)  # the live figure, already rendered
        png = image.value if image is not None and image.value else None
        if png is None:
            fig = self.figure()
            png = _png(fig) if fig is not None else None
        if png is not None:
            parts.append(_img_tag(png))
        table = self.table()
        if table is not None:
            parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
        return "\n".join(parts)

    def figure(self) -> Figure | None:
        """The current view as a matplotlib Figure (``None`` when the widget has no figure)."""
        return None

    def table(self) -> pd.DataFrame | None:
        """The current view's numbers as a DataFrame (``None`` when there are none yet)."""
        return None

    def _bundle(self) -> dict:
        data = dict(self.widget._repr_mimebundle_())
        data["text/html"] = self.static_html()
        data["text/plain"] = f"<{type(self).__name__}: {self.title}>"
        return data

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self._bundle()

    def _ipython_display_(self):
        from IPython.display import display

        handles = self.__dict__.setdefault("_handles", [])
        handles.append(display(self._bundle(), raw=True, display_id=True))

    def refresh_static(self) -> None:
        """Re-send the static snapshot to every place this widget is displayed (nbconvert keeps the last)."""
        for handle in self.__dict__.get("_handles", []):
            if handle is not None:
                handle.update(self._bundle(), raw=True)


def _new_fig(ncols: int = 1, width: float = 5.0, height: float = 3.2):
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, (list(axes) if ncols > 1 else [axes])


# ---------------------------------------------------------------------------------------------------------------
# DevicePanel
# ---------------------------------------------------------------------------------------------------------------
def device_inventory() -> dict:
    """What this machine offers: CUDA devices (name, capability, memory), Apple MPS, CPU threads.

    Memory "used" is the whole GPU's (``total - free`` from the driver, all processes); "allocated" is what
    this Python process's PyTorch tensors hold.

    Examples
    --------
    >>> inv = device_inventory(); sorted(inv)
    ['cpu_count', 'cpu_threads', 'cuda', 'default', 'mps']
    """
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(dict(index=i, device=f"cuda:{i}", name=props.name, capability=f"{props.major}.{props.minor}",
                             total_gib=total / GIB, used_gib=(total - free) / GIB, free_gib=free / GIB,
                             allocated_gib=torch.cuda.memory_allocated(i) / GIB))
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return dict(cuda=gpus, mps=mps, cpu_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                default=str(get_default_device()))


def _available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device.index or 0)[0])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not Linux: no portable answer without psutil
        return None


def _activation_numel(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Elements produced by the leaf modules for ONE sample (eval mode, no grad: the model is not changed)."""
    total = 0

    def hook(_mod, _inp, out):
        nonlocal total
        outs = out if isinstance(out, (tuple, list)) else (out,)
        total += sum(o[:1].numel() for o in outs if torch.is_tensor(o))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=dev))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total


def batch_size_hint(model: nn.Module, input_size: tuple[int, ...] = (3, 32, 32), *, device=None,
                    fraction: float = 0.5, max_batch: int = 1024, optimizer_slots: int = 2,
                    available_bytes: int | None = None) -> dict:
    """A power-of-two batch size whose training step fits in ``fraction`` of the free memory of ``device``.

    A rule of thumb, not a measurement: float32 weights + gradients + ``optimizer_slots`` state tensors per
    parameter (AdamW: 2), plus every leaf module's output twice per sample (kept for backward, and its
    gradient). Free memory: the GPU driver's (CUDA), MPS's recommended budget, or available RAM (CPU).

    Parameters
    ----------
    model : nn.Module
        Run once on one zero input (eval mode, no grad; its state is unchanged).
    input_size : tuple
        One sample's shape, e.g. ``(3, 32, 32)``.
    available_bytes : int, optional
        Override the free memory (for planning another machine, and for tests).

    Returns
    -------
    dict with ``batch_size`` (0 when even the weights do not fit), ``per_sample_bytes``, ``fixed_bytes``,
    ``available_bytes``, ``device``.

    Examples
    --------
    >>> m = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    >>> batch_size_hint(m, (3, 2, 2), available_bytes=10_000)["batch_size"]
    16
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
    if not isinstance(input_size, (tuple, list)) or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input_size must be a tuple of positive ints (one sample's shape), got {input_size!r}")
    device = resolve_device(device)
    n_params = sum(p.numel() for p in model.parameters())
    fixed = n_params * 4 * (2 + optimizer_slots)
    per_sample = _activation_numel(model, tuple(input_size)) * 4 * 2
    avail = _available_bytes(device) if available_bytes is None else int(available_bytes)
    out = dict(device=str(device), per_sample_bytes=per_sample, fixed_bytes=fixed, available_bytes=avail)
    if avail is None:
        return dict(out, batch_size=None)
    room = fraction * avail - fixed
    if room < per_sample:
        return dict(out, batch_size=0)
    fit = int(room // max(per_sample, 1))
    return dict(out, batch_size=min(2 ** int(math.log2(fit)), 2 ** int(math.log2(max_batch))))


class DevicePanel(_Panel):
    """What hardware the lesson runs on, and a selector for the kit's default device.

    Shows each CUDA GPU (name, compute capability, memory used/total), Apple MPS, CPU threads; the selector
    calls :func:`transferlab.device.set_default_device` (so every ``device=None`` in the kit follows it);
    "Refresh" re-reads GPU memory; a batch-size hint is computed for ``model`` on the selected device. On a
    CPU-only machine it says so and suggests ``SMOKE = True``.

    In a notebook::

        DevicePanel()                 # or DevicePanel(model) for a batch-size hint for your model

    Examples
    --------
    >>> panel = DevicePanel(nn.Linear(4, 2), input_size=(4,))
    >>> str(panel.select("cpu")), str(get_default_device())
    ('cpu', 'cpu')
    >>> _ = panel.select(None)   # back to automatic
    """

    title = "Device"

    def __init__(self, model: nn.Module | None = None, input_size: tuple[int, ...] = (3, 32, 32)):
        if model is None:
            from .models import create_model

            model = create_model("kitnet_m", 10, device="cpu")
        self.model, self.input_size = model, tuple(input_size)
        self.info = W.HTML()
        self.selector = W.Dropdown(description="device", options=self._options(), value="auto")
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="re-read GPU memory")
        self.hint = W.HTML()
        self.selector.observe(self._on_select, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.widget = W.VBox([self.info, W.HBox([self.selector, self.refresh_button]), self.hint])
        self.refresh()

    @staticmethod
    def _options() -> list:
        opts = [("automatic (best here)", "auto"), ("cpu", "cpu")]
        if torch.cuda.is_available():
            opts += [(f"cuda:{i}", f"cuda:{i}") for i in range(torch.cuda.device_count())]
        if bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available():
            opts.append(("mps", "mps"))
        return opts

    def select(self, device: str | None) -> torch.device:
        """Set the kit's default device (``None`` or ``"auto"``: automatic); same as using the selector."""
        value = "auto" if device is None else str(device)
        valid = [v for _, v in self.selector.options]
        if value not in valid:
            raise ValueError(f"device {device!r} is not available here; expected one of {valid}")
        if self.selector.value == value:
            self._apply(value)
        self.selector.value = value
        return get_default_device()

    def _on_select(self, change):
        self._apply(change["new"])

    def _apply(self, value: str):
        set_default_device(None if value == "auto" else value)
        self.refresh()

    def refresh(self) -> dict:
        """Re-read devices and memory; returns the inventory."""
        inv = device_inventory()
        self.inventory = inv
        self.info.value = self._info_html(inv)
        self.hint.value = self._hint_html()
        return inv

    def _info_html(self, inv: dict) -> str:
        rows = []
        for g in inv["cuda"]:
            rows.append(f"<li><b>{html.escape(g['device'])}</b>: {html.escape(g['name'])} (compute capability "
                        f"{g['capability']}), memory {g['used_gib']:.2f} / {g['total_gib']:.2f} GiB used, "
                        f"{g['allocated_gib']:.2f} GiB by this notebook</li>")
        if inv["mps"]:
            rows.append("<li><b>mps</b>: Apple GPU (Metal)</li>")
        rows.append(f"<li><b>cpu</b>: {inv['cpu_threads']} PyTorch threads on {inv['cpu_count']} cores</li>")
        text = f"<ul>{''.join(rows)}</ul><p>The kit uses <b>{html.escape(inv['default'])}</b>.</p>"
        if not inv["cuda"] and not inv["mps"]:
            text += ("<p><b>No GPU on this machine: the lesson runs on the CPU.</b> Set <code>SMOKE = True</code> "
                     "in the parameters cell for a quick run (under a minute); the default mode takes a few "
                     "minutes.</p>")
        return text

    def hint_info(self) -> dict:
        """The batch-size hint for the panel's model on the kit's current default device."""
        return batch_size_hint(self.model, self.input_size, device=get_default_device())

    def _hint_html(self) -> str:
        h = self.hint_info()
        self.last_hint = h
        if h["batch_size"] is None:
            return "<p>Batch-size hint: free memory unknown on this system.</p>"
        if h["batch_size"] == 0:
            return (f"<p>Batch-size hint: the model does not fit in half of the {h['available_bytes'] / GIB:.2f} "
                    f"GiB free on {h['device']}.</p>")
        return (f"<p>Batch-size hint for {h['device']}: up to <b>{h['batch_size']}</b> fits in half of the "
                f"{h['available_bytes'] / GIB:.2f} GiB free ({h['per_sample_bytes'] / 2**20:.2f} MiB of "
                f"activations per sample, {h['fixed_bytes'] / 2**20:.1f} MiB of weights, gradients and optimizer "
                f"state). A rule of thumb; memory is rarely the limit on a CPU, time is.</p>")

    def static_html(self) -> str:
        return self.info.value + self.hint.value


# ---------------------------------------------------------------------------------------------------------------
# TrainingMonitor
# ---------------------------------------------------------------------------------------------------------------
class _ShellPoller:
    """Let widget messages (a Stop click) reach Python while a cell is running (ipykernel >= 7).

    A running cell blocks the kernel's main thread, so the front-end's widget messages wait in the in-process
    socket from which that thread reads its shell requests. Between batches, :meth:`poll` takes what waits
    there: widget (comm) messages are handled at once, in this thread; anything else (a queued cell, a
    completion request) is handed back, in order, to the kernel's event loop, which runs it when the cell
    ends, as it would have anyway. Outside a kernel, or with another kernel, :meth:`create` returns ``None``.
    """

    def __init__(self, kernel, socket):
        self.kernel, self.socket = kernel, socket

    @classmethod
    def create(cls) -> _ShellPoller | None:
        import threading

        try:
            from IPython import get_ipython
        except ImportError:
            return None
        kernel = getattr(get_ipython(), "kernel", None)
        channel_thread = getattr(kernel, "shell_channel_thread", None)
        if channel_thread is None or threading.current_thread() is not threading.main_thread():
            return None
        try:
            socket = channel_thread.manager.get_shell_channel_to_subshell_pair(None).to_socket
        except Exception:  # another ipykernel layout: no polling, the click counts once the cell ends
            return None
        return cls(kernel, socket)

    def poll(self, max_messages: int = 50) -> int:
        """Handle up to ``max_messages`` waiting messages; returns how many were taken."""
        import zmq

        taken = 0
        while taken < max_messages:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            taken += 1
            k = self.kernel
            try:  # the header only (content=False does not record the signature, so the kernel can still
                idents, parts = k.session.feed_identities(frames, copy=False)  # accept a message handed back)
                kind = k.session.deserialize(parts, content=False, copy=False)["header"]["msg_type"]
            except Exception:
                kind = None
            if kind == "comm_msg" and hasattr(k, "comm_manager"):
                k.comm_manager.comm_msg(None, idents, k.session.deserialize(parts, content=True, copy=False))
            else:
                k.io_loop.add_callback(k.shell_main, None, frames)
        return taken


class TrainingMonitor(Callback, _Panel):
    """A :class:`transferlab.train.Callback` with live curves, progress, samples/s, CUDA memory and a Stop button.

    Stop ends training cleanly after the current batch: ``fit`` records the partial epoch, sets
    ``history.stopped_early`` and returns the history. The click reaches Python while the cell runs because
    the monitor takes waiting widget messages between batches (every ``poll_every`` seconds; ipykernel >= 7).

    In a notebook::

        mon = TrainingMonitor(); display(mon)
        history = fit(model, loader, epochs=10, callbacks=[mon])

    Parameters
    ----------
    redraw_every : float
        Seconds between redraws of the curves (and at least 9x the time a redraw takes, so that drawing costs
        at most ~10% of the training time); the counters update every ``poll_every`` seconds; the curves are
        always drawn when ``fit`` ends.

    Examples
    --------
    >>> from transferlab.train import fit
    >>> mon = TrainingMonitor()
    >>> data = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))] * 3
    >>> h = fit(nn.Linear(4, 2), data, epochs=2, callbacks=[mon], progress=False)
    >>> len(mon.batch_losses), mon.status
    (6, 'finished')
    """

    def __init__(self, title: str = "training", redraw_every: float = 1.0, poll_every: float = 0.2):
        self.title = title
        self.redraw_every, self.poll_every = float(redraw_every), float(poll_every)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="steps", bar_style="info")
        self.stats = W.HTML("waiting for fit() to start")
        self.image = W.Image(format="png", layout=W.Layout(max_width="900px"))
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger", disabled=True,
                                    tooltip="end training after the current batch, keeping the history")
        self.stop_button.on_click(lambda _b: self.stop())
        self.widget = W.VBox([W.HTML(f"<b>{html.escape(title)}</b>"), W.HBox([self.progress, self.stop_button]),
                              self.stats, self.image])
        self._reset()

    def _reset(self):
        self.state: TrainState | None = None
        self.batch_losses: list[tuple[float, float]] = []
        self.rows: list[dict] = []
        self.status = "idle"
        self.samples_per_s = float("nan")
        self.cuda_memory_gib: float | None = None
        self._stop_requested = False
        self._last_draw = self._last_poll = 0.0
        self._draw_seconds = 0.0
        self._epoch_samples0 = 0
        self._poller: _ShellPoller | None = None

    # the button's action -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``fit`` to end after the current batch (what the Stop button does)."""
        self._stop_requested = True
        if self.state is not None:
            self.state.stop = True
        self.stop_button.disabled = True
        self.stop_button.description = "stopping…"

    # callback hooks -------------------------------------------------------------------------------------------
    def on_fit_start(self, state: TrainState):
        self._reset()
        self.state, self.status = state, "running"
        self.progress.max = max(state.epochs * state.batches_per_epoch, 1)
        self.progress.value, self.progress.bar_style = 0, "info"
        self.stop_button.disabled, self.stop_button.description = False, "Stop"
        self._poller = _ShellPoller.create()
        self._update_stats()

    def on_epoch_start(self, state: TrainState):
        self._epoch_samples0 = state.samples_seen

    def on_batch_end(self, state: TrainState):
        self.batch_losses.append((state.step / max(state.batches_per_epoch, 1), float(state.loss)))
        now = time.perf_counter()
        elapsed = now - state.epoch_start
        if elapsed > 0:
            self.samples_per_s = (state.samples_seen - self._epoch_samples0) / elapsed
        if state.device.type == "cuda":
            self.cuda_memory_gib = torch.cuda.memory_allocated(state.device) / GIB
        if state.step == 1 or now - self._last_poll >= self.poll_every:
            self._last_poll = now
            self.progress.value = min(state.step, self.progress.max)
            self._update_stats()
            if self._poller is not None:
                self._poller.poll()  # let a Stop click through while the cell runs
        if self._due():
            self._draw()
        if self._stop_requested:
            state.stop = True

    def on_epoch_end(self, state: TrainState):
        self.rows = list(state.history.rows)
        self.samples_per_s = self.rows[-1]["samples_per_s"]
        self._update_stats()
        if self._due():
            self._draw()

    def on_fit_end(self, state: TrainState):
        self.rows = list(state.history.rows)
        self.status = "stopped" if state.history.stopped_early else "finished"
        self.progress.value = min(state.step, self.progress.max)
        self.progress.bar_style = "warning" if self.status == "stopped" else "success"
        self.stop_button.disabled, self.stop_button.description = True, self.status
        self._poller = None
        self._update_stats()
        self._draw()
        self.refresh_static()

    # views ----------------------------------------------------------------------------------------------------
    def _update_stats(self):
        s = self.state
        if s is None:
            return
        parts = [f"epoch {min(s.epoch + 1, s.epochs)}/{s.epochs}", f"step {s.step}/{s.epochs * s.batches_per_epoch}",
                 f"loss {s.loss:.4f}"]
        if math.isfinite(self.samples_per_s):
            parts.append(f"{self.samples_per_s:,.0f} samples/s")
        if self.cuda_memory_gib is not None:
            parts.append(f"CUDA memory {self.cuda_memory_gib:.2f} GiB (peak "
                         f"{torch.cuda.max_memory_allocated(s.device) / GIB:.2f})")
        parts.append(f"on {s.device}")
        if self.status == "stopped":
            parts.append(f"<b>stopped by you after epoch {s.epoch + 1}, batch {s.batch + 1}; the history keeps "
                         f"{len(self.rows)} epoch(s)</b>")
        elif self.status == "finished":
            parts.append("<b>finished</b>")
        self.stats.value = " · ".join(parts)

    def _due(self) -> bool:
        return time.perf_counter() - self._last_draw >= max(self.redraw_every, 9 * self._draw_seconds)

    def _draw(self):
        t0 = time.perf_counter()
        self.image.value = _png(self.figure())
        self._last_draw = time.perf_counter()
        self._draw_seconds = self._last_draw - t0

    def figure(self) -> Figure:
        """Loss (per batch and per epoch) and accuracy (per epoch) so far."""
        fig, (ax_loss, ax_acc) = _new_fig(2, 4.4, 2.8)
        if self.batch_losses:
            x, y = zip(*self.batch_losses, strict=True)
            ax_loss.plot(x, y, color="0.7", lw=0.8, label="batch")
        rows = self.rows
        if rows:
            ep = [r["epoch"] for r in rows]
            for key, style in (("train_loss", "C0-o"), ("val_loss", "C1-o")):
                if key in rows[0]:
                    ax_loss.plot(ep, [r[key] for r in rows], style, ms=3, label=key)
            for key, style in (("train_acc", "C0-o"), ("val_acc", "C1-o")):
                if key in rows[0]:
                    ax_acc.plot(ep, [r[key] for r in rows], style, ms=3, label=key)
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        for ax in (ax_loss, ax_acc):
            if ax.lines:
                ax.legend(fontsize=7)
        return fig

    def table(self) -> pd.DataFrame | None:
        return pd.DataFrame(self.rows) if self.rows else None

    def static_html(self) -> str:
        return self.stats.value + super().static_html()


# ---------------------------------------------------------------------------------------------------------------
# FreezeExplorer
# ---------------------------------------------------------------------------------------------------------------
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _bn_mode(bn: nn.Module) -> str:
    """How a BatchNorm layer normalises: pinned by ``transferlab.freeze``, or following its own mode."""
    from .freeze import is_frozen_bn

    if is_frozen_bn(bn):
        return "stats frozen (eval, pinned by freeze)"
    return "train (updates running stats)" if bn.training else "eval (uses running stats)"


class FreezeExplorer(_Panel):
    """The model's module tree, a checkbox per module to freeze it, live parameter counts and BatchNorm modes.

    Ticking a box calls ``transferlab.freeze.freeze_by_names(model, [name], freeze_bn_stats=...)``, unticking
    calls ``unfreeze_by_names(model, [name], optimizer=optimizer)`` (which hands newly trainable parameters to
    the optimizer). A box is ticked when every parameter below it is frozen.

    In a notebook::

        FreezeExplorer(model)          # or FreezeExplorer(model, optimizer=opt, max_depth=3)

    Examples
    --------
    >>> from transferlab.models import create_model
    >>> ex = FreezeExplorer(create_model("kitnet_s", 10))
    >>> ex.set_frozen("stem", True); ex.counts()["frozen"] > 0
    True
    """

    title = "Freeze explorer"

    def __init__(self, model: nn.Module, *, optimizer: torch.optim.Optimizer | None = None, max_depth: int = 2,
                 freeze_bn_stats: bool = True):
        from . import freeze  # noqa: F401  (fail early with a clear ImportError if the module is missing)

        if not isinstance(model, nn.Module):
            raise TypeError(f"FreezeExplorer expects a torch.nn.Module, got {type(model).__name__}")
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
            raise ValueError(f"max_depth must be an integer >= 1, got {max_depth!r}")
        self.model, self.optimizer, self.freeze_bn_stats = model, optimizer, freeze_bn_stats
        self.names = [n for n, m in model.named_modules()
                      if n and n.count(".") < max_depth and any(True for _ in m.parameters())]
        if not self.names:
            raise ValueError(f"{type(model).__name__} has no submodules with parameters to freeze")
        self.boxes: dict[str, W.Checkbox] = {}
        for name in self.names:
            box = W.Checkbox(value=False, description=self._label(name), indent=False,
                             layout=W.Layout(margin=f"0 0 0 {1.5 * name.count('.')}em", width="auto"))
            box.observe(self._on_toggle(name), names="value")
            self.boxes[name] = box
        self.summary = W.HTML()
        self.bn_view = W.HTML()
        self._syncing = False
        self.log: list[tuple[str, str, int]] = []
        self.widget = W.HBox([W.VBox([W.HTML("<b>frozen?</b>"), *self.boxes.values()]),
                              W.VBox([self.summary, self.bn_view], layout=W.Layout(margin="0 0 0 2em"))])
        self.sync()

    def _label(self, name: str) -> str:
        mod = self.model.get_submodule(name)
        n = sum(p.numel() for p in mod.parameters())
        return f"{name.rsplit('.', 1)[-1] if '.' in name else name} ({type(mod).__name__}, {n:,})"

    def _on_toggle(self, name: str):
        def handler(change):
            if self._syncing:
                return
            self._apply(name, bool(change["new"]))

        return handler

    def _apply(self, name: str, frozen: bool):
        from . import freeze

        if frozen:
            changed = freeze.freeze_by_names(self.model, [name], freeze_bn_stats=self.freeze_bn_stats)
        else:
            changed = freeze.unfreeze_by_names(self.model, [name], optimizer=self.optimizer)
        self.log.append(("freeze" if frozen else "unfreeze", name, len(changed)))
        self.sync()

    def set_frozen(self, name: str, frozen: bool = True) -> None:
        """Tick (``True``) or untick a module's box, exactly as a click does."""
        if name not in self.boxes:
            from difflib import get_close_matches

            close = get_close_matches(str(name), self.names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(f"no checkbox for module {name!r}{hint}; modules shown: {self.names}")
        box = self.boxes[name]
        if box.value == bool(frozen):  # already in that state: still apply, so a half-frozen parent resolves
            self._apply(name, bool(frozen))
        else:
            box.value = bool(frozen)

    def counts(self) -> dict:
        """``{"total", "trainable", "frozen"}`` parameter counts of the whole model."""
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return dict(total=total, trainable=trainable, frozen=total - trainable)

    def bn_modes(self) -> dict[str, str]:
        """Each BatchNorm layer's mode, by module name."""
        return {n: _bn_mode(m) for n, m in self.model.named_modules() if isinstance(m, _BN)}

    def sync(self) -> None:
        """Re-read the model (after changes made in code) and update boxes, counts and BN modes."""
        self._syncing = True
        try:
            for name, box in self.boxes.items():
                params = list(self.model.get_submodule(name).parameters())
                frozen = all(not p.requires_grad for p in params)
                partly = not frozen and any(not p.requires_grad for p in params)
                box.value = frozen
                box.description = self._label(name) + (" · partly frozen" if partly else "")
        finally:
            self._syncing = False
        c = self.counts()
        pct = 100 * c["frozen"] / max(c["total"], 1)
        self.summary.value = (f"<p><b>trainable</b> {c['trainable']:,} · <b>frozen</b> {c['frozen']:,} "
                              f"({pct:.1f}% of {c['total']:,} parameters)</p>")
        modes = self.bn_modes()
        if modes:
            rows = "".join(f"<tr><td><code>{html.escape(n)}</code></td><td>{html.escape(m)}</td></tr>"
                           for n, m in modes.items())
            self.bn_view.value = f"<table><tr><th>BatchNorm layer</th><th>mode</th></tr>{rows}</table>"
        else:
            self.bn_view.value = "<p>No BatchNorm layers.</p>"

    def table(self) -> pd.DataFrame:
        """Per module shown: parameters, trainable, frozen, and the BN modes below it."""
        rows = []
        for name in self.names:
            mod = self.model.get_submodule(name)
            n = sum(p.numel() for p in mod.parameters())
            t = sum(p.numel() for p in mod.parameters() if p.requires_grad)
            bns = sorted({_bn_mode(m) for m in mod.modules() if isinstance(m, _BN)})
            rows.append(dict(module=name, params=n, trainable=t, frozen=n - t, bn="; ".join(bns) or "-"))
        return pd.DataFrame(rows)

    def static_html(self) -> str:
        return self.summary.value + self.table().to_html(index=False, border=0)


# ---------------------------------------------------------------------------------------------------------------
# Lesson 01: QuadrantExplorer
# ---------------------------------------------------------------------------------------------------------------
class QuadrantExplorer(_Panel):
    """Lesson 01: pick data size, similarity and k; see every strategy's accuracy there (mean ± std over seeds).

    ``results`` has one row per run with at least the columns ``n_per_class, similarity, strategy, k, seed,
    acc`` (as ``transferlab.experiments.run_grid`` returns; ``k`` = stages frozen). Strategies run at several
    k (``k_strategies``; by default those with more than one k in ``results``) are shown at the chosen k on
    the left and over all k on the right; the others at their only k. With ``recompute(n_per_class,
    similarity, strategy, k, seed) -> dict row`` (``transferlab.experiments.make_recompute``) the "Run this
    setting" button trains the selected strategy at the selected point for the seeds it lacks (``k=None``
    for a strategy that does not take k) and adds the rows to ``.results``.

    In a notebook::

        QuadrantExplorer(results, recompute=make_recompute(config, cache))

    Examples
    --------
    >>> df = pd.DataFrame(dict(n_per_class=[20, 20], similarity=[1.0, 1.0], strategy=["probe", "scratch"],
    ...                        k=[4, 0], seed=[0, 0], acc=[0.9, 0.4]))
    >>> QuadrantExplorer(df).best()["strategy"]
    'probe'
    """

    title = "Which layers to freeze: data size x similarity"
    COLUMNS = ("n_per_class", "similarity", "strategy", "k", "seed", "acc")

    def __init__(self, results: pd.DataFrame, recompute: Callable | None = None, *, seeds: Iterable[int] | None = None,
                 k_strategies: Iterable[str] | None = None):
        self.results = _check_frame(results, self.COLUMNS, "QuadrantExplorer")
        self.recompute = recompute
        self.seeds = sorted(set(self.results["seed"])) if seeds is None else list(seeds)
        strategies = list(dict.fromkeys(self.results["strategy"]))
        if k_strategies is None:
            nk = self.results.groupby("strategy")["k"].nunique()
            k_strategies = [s for s in strategies if nk.get(s, 0) > 1]
        self.k_strategies = list(k_strategies)
        ns = sorted(set(self.results["n_per_class"]))
        sims = sorted(set(self.results["similarity"]))
        ks = sorted({int(k) for k in self.results.loc[self.results["strategy"].isin(self.k_strategies), "k"].dropna()})
        self.n_slider = W.SelectionSlider(options=ns, value=ns[0], description="n per class")
        self.sim_slider = W.SelectionSlider(options=sims, value=sims[-1], description="similarity")
        self.k_slider = W.SelectionSlider(options=ks or [0], value=(ks or [0])[0], description="k frozen",
                                          disabled=not ks)
        self.strategy = W.Dropdown(options=strategies, value=strategies[0], description="strategy")
        self.run_button = W.Button(description="Run this setting", icon="play", disabled=recompute is None,
                                   tooltip="train the selected strategy here for the seeds it lacks")
        self.text = W.HTML()
        self.image = W.Image(format="png")
        for w in (self.n_slider, self.sim_slider, self.k_slider):
            w.observe(lambda _c: self.update(), names="value")
        self.run_button.on_click(lambda _b: self.run_selected())
        sliders = W.VBox([self.n_slider, self.sim_slider, self.k_slider])
        top = W.HBox([sliders, W.VBox([self.strategy, self.run_button])]) if recompute is not None else sliders
        self.widget = W.VBox([top, self.text, self.image])
        self.update()

    def _here(self) -> pd.DataFrame:
        r = self.results
        return r[(r["n_per_class"] == self.n_slider.value) & at_similarity(r["similarity"], self.sim_slider.value)]

    def _label(self, strategy, k) -> str:
        return f"{strategy} (k={int(k)})" if strategy in self.k_strategies and not pd.isna(k) else str(strategy)

    def table(self) -> pd.DataFrame:
        """Mean ± std accuracy per strategy at the selected point (k-strategies at the selected k), best first."""
        here = self._here()
        here = here[~here["strategy"].isin(self.k_strategies) | (here["k"] == self.k_slider.value)]
        out = here.groupby(["strategy", "k"], dropna=False)["acc"].agg(mean="mean", std="std", seeds="count")
        out = out.reset_index()
        out["std"] = out["std"].fillna(0.0)
        return out.sort_values("mean", ascending=False, ignore_index=True)

    def best(self) -> dict:
        """The best strategy at the selected point (highest mean accuracy); ``{}`` when nothing was run there."""
        t = self.table()
        return {} if t.empty else t.iloc[0].to_dict()

    def figure(self) -> Figure:
        t = self.table()
        fig, (ax, ax_k) = _new_fig(2, 4.6, 3.0)
        labels = [self._label(s, k) for s, k in zip(t["strategy"], t["k"], strict=True)]
        ax.barh(labels[::-1], t["mean"][::-1], xerr=t["std"][::-1], color="C0", alpha=0.8, capsize=3)
        ax.set(xlabel="test accuracy", title=f"n={self.n_slider.value}/class, similarity={self.sim_slider.value}",
               xlim=(0, 1))
        here = self._here()
        for i, s in enumerate(self.k_strategies):
            grp = here[here["strategy"] == s]
            if grp.empty:
                continue
            st = grp.groupby("k")["acc"].agg(["mean", "std"]).fillna(0.0)
            ax_k.errorbar(st.index, st["mean"], yerr=st["std"], marker="o", capsize=3, color=f"C{i}", label=s)
        if ax_k.lines:
            ax_k.axvline(self.k_slider.value, color="0.5", ls=":")
            ax_k.legend(fontsize=7)
        ax_k.set(xlabel="k (stages frozen)", ylabel="test accuracy", title="accuracy vs k here")
        return fig

    def update(self) -> None:
        """Redraw for the current slider values (the sliders call this)."""
        t = self.table()
        png = _png(self.figure())  # first, so that the text and the figure change together
        if t.empty:
            self.text.value = (f"<p>No results at n={self.n_slider.value}, similarity={self.sim_slider.value} "
                               f"yet.</p>")
        else:
            b = t.iloc[0]
            self.text.value = (f"<p>At <b>n={self.n_slider.value}</b> per class and <b>similarity="
                               f"{self.sim_slider.value}</b>, the best is <b>"
                               f"{html.escape(self._label(b['strategy'], b['k']))}</b>: {b['mean']:.3f} ± "
                               f"{b['std']:.3f} ({int(b['seeds'])} seeds).</p>")
        self.image.value = png

    def run_selected(self) -> pd.DataFrame:
        """Run ``recompute`` for the selected setting and the seeds it lacks; returns the new rows."""
        if self.recompute is None:
            raise ValueError("no recompute function was given: QuadrantExplorer(results, recompute=...)")
        n, sim, strategy = self.n_slider.value, self.sim_slider.value, self.strategy.value
        uses_k = strategy in self.k_strategies
        r = self.results
        have = r[(r["n_per_class"] == n) & at_similarity(r["similarity"], sim) & (r["strategy"] == strategy)]
        if uses_k:
            have = have[have["k"] == self.k_slider.value]
        todo = [s for s in self.seeds if s not in set(have["seed"])]
        new = []
        self.run_button.disabled = True
        try:
            for seed in todo:
                self.text.value = f"<p>running {html.escape(strategy)} at n={n}, similarity={sim}, seed {seed}…</p>"
                row = dict(self.recompute(n, sim, strategy, self.k_slider.value if uses_k else None, seed))
                missing = [c for c in self.COLUMNS if c not in row]
                if missing:
                    raise ValueError(f"recompute returned a row without {missing}; expected keys {self.COLUMNS}")
                new.append(row)
        finally:
            self.run_button.disabled = False
        if new:
            self.results = pd.concat([self.results, pd.DataFrame(new)], ignore_index=True)
        self.update()
        return pd.DataFrame(new)


# ---------------------------------------------------------------------------------------------------------------
# Lesson 03: RayExplorer
# ---------------------------------------------------------------------------------------------------------------
class RayExplorer(_Panel):
    """Lesson 03: test error / train loss along random rays from each solution (SGD, SWA), and the width.

    ``rays`` is the frame of ``transferlab.landscape.evaluate_rays`` (one row per point; at least the columns
    ``solution, ray, distance, test_error, train_loss``; rows of a line, ``ray = -1``, are left out: a line
    between two solutions is a different plot). Choose the solutions, the rays (thin lines; the thick line
    is their mean), the largest distance, the metric, and how far above the solution's own value counts as
    "left the optimum"; the width per solution (``landscape.ray_width`` with that ``rise``, averaged over
    the rays that reach it within the range) and the ratio to the first solution update with them. With a
    ``seed`` column (rays from several trained models), a selector shows one model or all of them.

    In a notebook::

        RayExplorer(rays)                 # rays = pd.concat([evaluate_rays(sgd, ...), evaluate_rays(swa, ...)])

    Examples
    --------
    >>> df = pd.DataFrame(dict(solution=["SGD"] * 3, ray=0, distance=[0.0, 1, 2], test_error=[0.1, 0.15, 0.35],
    ...                        train_loss=[0.1, 0.5, 2.0]))
    >>> float(RayExplorer(df, rise=0.1).table()["width"][0])
    1.25
    """

    title = "Optima width along random rays"
    COLUMNS = ("solution", "ray", "distance", "test_error", "train_loss")
    METRICS = ("test_error", "train_loss", "test_loss", "train_error", "train_ce")

    def __init__(self, rays: pd.DataFrame, *, rise: float = 0.1):
        rays = _check_frame(rays, self.COLUMNS, "RayExplorer")
        self.rays = rays[rays["ray"] >= 0]
        if self.rays.empty:
            raise ValueError("RayExplorer: no rays (ray >= 0) in the frame; rows with ray = -1 are lines")
        sols = list(dict.fromkeys(self.rays["solution"]))
        ray_ids = sorted(set(self.rays["ray"]))
        hi = float(self.rays["distance"].max())
        self.solutions = W.SelectMultiple(options=sols, value=tuple(sols), description="solutions",
                                          rows=min(4, len(sols)))
        self.ray_select = W.SelectMultiple(options=ray_ids, value=tuple(ray_ids), description="rays",
                                           rows=min(6, len(ray_ids)))
        self.max_distance = W.FloatSlider(value=hi, min=0.0, max=hi, step=hi / 50 if hi > 0 else 0.01,
                                          description="max distance", readout_format=".2f")
        self.metric = W.ToggleButtons(options=[m for m in self.METRICS if m in self.rays.columns], value="test_error")
        self.rise = W.FloatText(value=rise, description="rise", step=0.01,
                                tooltip="width = distance where the metric first exceeds its value at the solution "
                                        "plus this")
        seeds = sorted(set(self.rays["seed"])) if "seed" in self.rays.columns else []
        self.seed = W.Dropdown(options=[("all seeds", "all")] + [(f"seed {s}", s) for s in seeds],
                               value=seeds[0] if seeds else "all", description="model", disabled=not seeds)
        self.text = W.HTML()
        self.image = W.Image(format="png")
        for w in (self.solutions, self.ray_select, self.max_distance, self.metric, self.rise, self.seed):
            w.observe(lambda _c: self.update(), names="value")
        side = W.VBox([self.max_distance, self.metric, self.rise] + ([self.seed] if seeds else []))
        self.widget = W.VBox([W.HBox([self.solutions, self.ray_select, side]), self.text, self.image])
        self.update()

    def _selected(self) -> pd.DataFrame:
        r = self.rays
        keep = (r["solution"].isin(self.solutions.value) & r["ray"].isin(self.ray_select.value)
                & (r["distance"] <= self.max_distance.value + 1e-12))
        r = r[keep]
        if "seed" in r.columns:  # rays of several trained models: ray i of seed a and of seed b are different rays
            if self.seed.value != "all":
                r = r[r["seed"] == self.seed.value]
            r = r.assign(ray=r.groupby(["seed", "ray"]).ngroup())
        return r

    def widths(self) -> pd.DataFrame:
        """``landscape.ray_width`` of the selected rays within the range (one row per solution and ray)."""
        from .landscape import ray_width

        sel = self._selected()
        if sel.empty:
            return pd.DataFrame(columns=["solution", "ray", "base", "threshold", "width", "reached"])
        return ray_width(sel, metric=self.metric.value, rise=self.rise.value)

    def table(self) -> pd.DataFrame:
        """Per selected solution: mean and std of the width over the rays that reach it, and the ratio."""
        w = self.widths()
        rows = []
        for sol in [s for s in self.solutions.options if s in self.solutions.value]:
            g = w[w["solution"] == sol]
            if g.empty:
                continue
            ok = g["width"].dropna()
            rows.append(dict(solution=sol, width=ok.mean() if len(ok) else float("nan"),
                             std=ok.std(ddof=1) if len(ok) > 1 else float("nan"), rays=len(g),
                             unreached=int(g["width"].isna().sum())))
        out = pd.DataFrame(rows, columns=["solution", "width", "std", "rays", "unreached"])
        out["ratio"] = out["width"] / out["width"].iloc[0] if len(out) else []
        return out

    def figure(self) -> Figure:
        fig, (ax,) = _new_fig(1, 6.0, 3.4)
        metric = self.metric.value
        sel = self._selected()
        for i, sol in enumerate(self.solutions.options):
            grp = sel[sel["solution"] == sol]
            if grp.empty:
                continue
            for _, r in grp.groupby("ray"):
                r = r.sort_values("distance")
                ax.plot(r["distance"], r[metric], color=f"C{i}", lw=0.6, alpha=0.35)
            mean = grp.groupby("distance")[metric].mean()
            ax.plot(mean.index, mean.values, color=f"C{i}", lw=2.2, label=f"{sol} (mean of {grp['ray'].nunique()})")
        ax.set(xlabel="distance from the solution", ylabel=metric.replace("_", " "), title=self.title)
        if ax.lines:
            ax.legend(fontsize=8)
        return fig

    def update(self) -> None:
        """Redraw for the current control values (the controls call this)."""
        t = self.table()
        png = _png(self.figure())
        if t.empty:
            self.text.value = "<p>Nothing selected.</p>"
        else:
            parts = []
            for _, r in t.iterrows():
                miss = f", {r['unreached']} of {r['rays']} rays never rise that far" if r["unreached"] else ""
                parts.append(f"{html.escape(str(r['solution']))} {r['width']:.3f}{miss}")
            ratio = ""
            if len(t) > 1:
                ratio = (f"; ratio {html.escape(str(t['solution'].iloc[-1]))}/"
                         f"{html.escape(str(t['solution'].iloc[0]))} = <b>{t['ratio'].iloc[-1]:.2f}</b>")
            self.text.value = (f"<p>Width (distance at which {self.metric.value} first exceeds its value at the "
                               f"solution + {self.rise.value:g}, mean over rays, within distance "
                               f"{self.max_distance.value:.2f}): {'; '.join(parts)}{ratio}.</p>")
        self.image.value = png


# ---------------------------------------------------------------------------------------------------------------
# Lesson 04: RankingView
# ---------------------------------------------------------------------------------------------------------------
class RankingView(_Panel):
    """Lesson 04: each method's transferability scores against fine-tuned accuracy, per task, with weighted tau.

    ``scores`` has one row per (task, model, method): columns ``task, model, method, score, finetune_acc``.
    Weighted Kendall tau is ``scipy.stats.weightedtau(score, finetune_acc)`` per task and method (its default
    hyperbolic weighting, which stresses agreement at the top of the ranking).

    In a notebook::

        RankingView(scores)

    Examples
    --------
    >>> df = pd.DataFrame(dict(task="t", model=list("abc"), method="logme", score=[1.0, 2, 3],
    ...                        finetune_acc=[0.5, 0.6, 0.7]))
    >>> float(RankingView(df).taus().loc["t", "logme"])
    1.0
    """

    title = "Transferability scores vs fine-tuned accuracy"
    COLUMNS = ("task", "model", "method", "score", "finetune_acc")

    def __init__(self, scores: pd.DataFrame):
        self.scores = _check_frame(scores, self.COLUMNS, "RankingView")
        tasks = list(dict.fromkeys(self.scores["task"]))
        methods = list(dict.fromkeys(self.scores["method"]))
        self.task = W.Dropdown(options=tasks, value=tasks[0], description="task")
        self.method = W.ToggleButtons(options=methods, value=methods[0])
        self.text = W.HTML()
        self.image = W.Image(format="png")
        self.task.observe(lambda _c: self.update(), names="value")
        self.method.observe(lambda _c: self.update(), names="value")
        self.widget = W.VBox([W.HBox([self.task, self.method]), self.text, self.image])
        self.update()

    def taus(self) -> pd.DataFrame:
        """Weighted Kendall tau, tasks x methods."""
        from scipy.stats import weightedtau

        out = {}
        for (task, method), g in self.scores.groupby(["task", "method"], sort=False):
            out.setdefault(method, {})[task] = (float(weightedtau(g["score"], g["finetune_acc"]).statistic)
                                                if len(g) > 1 else float("nan"))
        return pd.DataFrame(out)

    def table(self) -> pd.DataFrame:
        t = self.taus()
        return t.reset_index(names="task")

    def figure(self) -> Figure:
        fig, (ax,) = _new_fig(1, 5.4, 3.6)
        s = self.scores
        g = s[(s["task"] == self.task.value) & (s["method"] == self.method.value)]
        ax.scatter(g["score"], g["finetune_acc"], color="C0")
        for _, r in g.iterrows():
            ax.annotate(str(r["model"]), (r["score"], r["finetune_acc"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set(xlabel=f"{self.method.value} score", ylabel="fine-tuned accuracy",
               title=f"{self.task.value}: {self.method.value}")
        return fig

    def update(self) -> None:
        """Redraw for the current task and method (the controls call this)."""
        png = _png(self.figure())
        tau = self.taus().loc[self.task.value]
        parts = ", ".join(f"{html.escape(str(m))} {v:+.3f}" for m, v in tau.items())
        self.text.value = (f"<p>Weighted Kendall tau on <b>{html.escape(str(self.task.value))}</b> (1 = the score "
                           f"ranks the models exactly as fine-tuning does): {parts}.</p>")
        self.image.value = png
