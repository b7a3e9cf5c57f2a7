"""GPU-aware widgets that make the lessons' knobs touchable (ipywidgets 8).

Each widget is a small class around an ipywidgets container (``.widget``); a notebook shows it with one line::

    DevicePanel()                                    # what hardware runs the lesson; pick the kit's device
    mon = TrainingMonitor(); display(mon)            # then fit(..., callbacks=[mon]): live curves, Stop button
    FreezeExplorer(model)                            # tick modules to freeze; live counts and BatchNorm modes
    QuadrantExplorer(results, recompute=run_one)     # lesson 01: data size x similarity x k
    RayExplorer(rays)                                # lesson 03: loss/error along random rays, SGD vs SWA
    RankingView(scores)                              # lesson 04: transferability scores vs fine-tuned accuracy
    FinetuneExplorer(results, layers=2, recompute=f) # lesson 06: re-init top k, freeze bottom k, LoRA rank

Figures are matplotlib images inside an ``ipywidgets.Image``: they redraw live in JupyterLab, are kept in the
widget state that nbclient saves (so the static site shows the last view), and need no front-end extension
beyond ipywidgets. Every widget also carries a static ``text/html`` snapshot (a table and the figure), which
``nbconvert`` and unwidgeted viewers show instead, so nothing is lost and nothing blocks when a notebook runs
headless. ``.table()`` and ``.figure()`` give the same content as a DataFrame and a matplotlib Figure.

One module per widget: ``device_panel``, ``monitor`` (``TrainingMonitor``), ``freeze_explorer``, ``quadrant``
(``QuadrantExplorer``), ``rays`` (``RayExplorer``) and ``ranking`` (``RankingView``); the private modules hold
what they share: ``_panel`` the base class and figure helpers, ``_hardware`` the device inventory and the
batch-size hint, ``_poller`` the kernel poller that lets a Stop click through while a cell runs. Import the
names above from ``transferlab.widgets``.
"""

from __future__ import annotations

from ._hardware import batch_size_hint, device_inventory
from .device_panel import DevicePanel
from .freeze_explorer import FreezeExplorer
from .monitor import TrainingMonitor
from .quadrant import QuadrantExplorer
from .ranking import RankingView
from .rays import RayExplorer
from .text_explorer import FinetuneExplorer

__all__ = [
    "device_inventory",
    "batch_size_hint",
    "DevicePanel",
    "TrainingMonitor",
    "FreezeExplorer",
    "QuadrantExplorer",
    "RayExplorer",
    "RankingView",
    "FinetuneExplorer",
]
