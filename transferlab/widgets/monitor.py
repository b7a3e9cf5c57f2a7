"""``TrainingMonitor``: a training callback that draws live curves and has a Stop button.

Passed to :func:`transferlab.train.fit` as a callback, the monitor shows the progress, samples per second,
CUDA memory and the loss and accuracy curves while the model trains, redrawing at most every
``redraw_every`` seconds so that drawing costs little of the training time. Its Stop button ends training
cleanly after the current batch; the click gets through while the cell runs thanks to ``ShellPoller``.
"""

from __future__ import annotations

import html
import math
import time

import ipywidgets as W
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..train import Callback, TrainState
from ._hardware import GIB
from ._panel import Panel, figure_png, new_figure
from ._poller import ShellPoller

__all__ = ["TrainingMonitor"]


class TrainingMonitor(Callback, Panel):
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
    >>> h = fit(torch.nn.Linear(4, 2), data, epochs=2, callbacks=[mon], progress=False)
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
        self._poller: ShellPoller | None = None

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
        self._poller = ShellPoller.create()
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
        self.image.value = figure_png(self.figure())
        self._last_draw = time.perf_counter()
        self._draw_seconds = self._last_draw - t0

    def figure(self) -> Figure:
        """Loss (per batch and per epoch) and accuracy (per epoch) so far."""
        fig, (ax_loss, ax_acc) = new_figure(2, 4.4, 2.8)
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
