"""The widgets in a real JupyterLab, driven by headless Chromium: they render and answer through the kernel.

A demo notebook (written into the server's temporary root) shows DevicePanel, FreezeExplorer on a small
KitNet, a slider-driven QuadrantExplorer and a TrainingMonitor over a long fit. The test runs all cells from
the Run menu, then: clicks Stop while the fit runs (the fit must end early, keeping its history), ticks a
freeze box (the parameter counts computed in the kernel must change), and moves a slider (the text computed
in the kernel must change). Screenshots: ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
import subprocess

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = [
    "import sys\nprint('PREFIX', sys.prefix)",
    "import numpy as np, pandas as pd, torch\ntorch.set_num_threads(1)\n"
    "from transferlab.models import create_model\nfrom transferlab.train import fit\n"
    "from transferlab.widgets import DevicePanel, FreezeExplorer, QuadrantExplorer, TrainingMonitor\n"
    "DevicePanel()",
    "model = create_model('kitnet_s', 10, device='cpu')\nFreezeExplorer(model)",
    "rows = [dict(n_per_class=n, similarity=s, strategy=st, k=k, seed=seed,\n"
    "             acc=0.3 + 0.001 * n + 0.1 * k * s + 0.01 * seed)\n"
    "        for n in (20, 200) for s in (0.0, 1.0) for st, k in [('probe', 3), ('freeze', 0), ('freeze', 2)]\n"
    "        for seed in (0, 1, 2)]\n"
    "QuadrantExplorer(pd.DataFrame(rows))",
    "mon = TrainingMonitor('demo fit'); display(mon)\n"
    "data = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(4)]\n"
    "history = fit(create_model('kitnet_s', 10, device='cpu'), data, epochs=5000, callbacks=[mon], progress=False)\n"
    "print('FIT ENDED', len(history), history.stopped_early)",
]


def write_demo(root):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    path = root / "widgets_demo.ipynb"
    nbformat.write(nb, path)
    return path.name


def accept_kernel_dialog(page, timeout_s=10):
    """Click "Select" if JupyterLab asks which kernel to start (it should not, with autoStartDefaultKernel)."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    try:
        dialog.wait_for(timeout=timeout_s * 1000)
    except Exception:  # no dialog: nothing to do
        return
    dialog.locator("button.jp-mod-accept").click()
    dialog.wait_for(state="detached")


def run_all(page):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def test_widgets_render_and_round_trip_through_the_kernel(lab, page, artifacts):
    url, root, python = lab
    name = write_demo(root)
    page.set_default_timeout(90_000)
    page.goto(f"{url}/lab/tree/{name}?reset")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    accept_kernel_dialog(page)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()  # kernel started
    run_all(page)
    accept_kernel_dialog(page, timeout_s=3)

    # the kernel is the repository's venv Python
    expected = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                              check=True).stdout.strip()
    out = page.locator(".jp-OutputArea-output", has_text="PREFIX").first
    out.wait_for()
    assert out.inner_text().split("PREFIX", 1)[1].strip() == expected

    # the monitor renders and trains; Stop ends the fit after the current batch (the click gets through while
    # the cell runs, thanks to jupyter_ui_poll), keeping the history
    stats = page.locator(".jupyter-widgets .widget-html-content", has_text="samples/s").first
    stats.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('.widget-html-content')]"
                           ".some(e => /step (\\d{2,})\\//.test(e.textContent))")
    page.locator("button.jupyter-button", has_text="Stop").click()
    ended = page.locator(".jp-OutputArea-output", has_text="FIT ENDED")
    ended.wait_for(timeout=60_000)
    n_epochs, stopped = ended.inner_text().split("FIT ENDED", 1)[1].split()
    assert stopped == "True" and 1 <= int(n_epochs) < 5000
    page.locator(".widget-html-content", has_text="stopped by you").wait_for()
    page.screenshot(path=str(artifacts / "01_monitor_stopped.png"), full_page=True)

    # every widget view is on the page
    assert page.locator(".jupyter-widgets.widget-container").count() >= 4
    assert page.locator(".widget-html-content", has_text="The kit uses").count() == 1  # DevicePanel

    # tick the FreezeExplorer's "stem" box: the kernel freezes it and sends back the new counts
    summary = page.locator(".widget-html-content", has_text="trainable").first
    assert re.search(r"frozen\s+0\b", summary.inner_text())
    box = page.locator(".widget-checkbox", has_text=re.compile(r"\bstem \(Sequential")).locator("input")
    box.scroll_into_view_if_needed()
    box.check()
    page.wait_for_function("() => [...document.querySelectorAll('.widget-html-content')]"
                           ".some(e => /frozen\\s+[1-9][\\d,]*\\s+\\(/.test(e.textContent))")
    assert "stats frozen" in page.locator(".widget-html-content", has_text="BatchNorm layer").first.inner_text()
    # the children's boxes follow their parent (state computed in the kernel)
    child = page.locator(".widget-checkbox", has_text=re.compile(r"\b0 \(Conv2d")).first.locator("input")
    assert child.is_checked()
    page.locator(".jp-OutputArea-output", has=box).screenshot(path=str(artifacts / "02_freeze_explorer.png"))

    # move the QuadrantExplorer's "n per class" slider: the kernel recomputes the text
    text = page.locator(".widget-html-content", has_text="the best is").first
    assert "n=20" in text.inner_text()
    handle = page.locator(".widget-slider", has_text="n per class").locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => [...document.querySelectorAll('.widget-html-content')]"
                           ".some(e => e.textContent.includes('At n=200 per class'))")
    page.wait_for_timeout(1000)  # the figure's new PNG follows the text by a few milliseconds
    page.locator(".jp-OutputArea-output", has=handle).screenshot(path=str(artifacts / "03_quadrant_slider.png"))
