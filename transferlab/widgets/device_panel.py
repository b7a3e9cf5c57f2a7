"""``DevicePanel``: what hardware the lesson runs on, and a selector for the kit's default device.

The panel lists the CUDA GPUs (with memory used by everything on the GPU and by this notebook), Apple MPS and
the CPU threads from :func:`device_inventory`; its selector sets :func:`transferlab.device.set_default_device`,
so every ``device=None`` in the kit follows it; and it shows :func:`batch_size_hint` for a model on the device
selected. On a CPU-only machine it says so and suggests the lessons' ``SMOKE = True``.
"""

from __future__ import annotations

import html

import ipywidgets as W
import torch
from torch import nn

from ..device import get_default_device, set_default_device
from ..models import create_model
from ._hardware import GIB, batch_size_hint, device_inventory, mps_available
from ._panel import Panel

__all__ = ["DevicePanel"]


class DevicePanel(Panel):
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
        if mps_available():
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
