"""transferlab.widgets driven from Python: set values, click through the handlers, check the model/device.

The CUDA parts run on CPU through the same code path, with torch.cuda's query functions monkeypatched.
"""

from __future__ import annotations

import copy
import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import weightedtau
from torch import nn

from transferlab import device as tl_device
from transferlab import freeze as fz
from transferlab import widgets as tw
from transferlab.landscape import ray_width
from transferlab.models import create_model
from transferlab.train import Callback, TrainState, fit

GIB = 2**30
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(autouse=True)
def _reset_default_device():
    yield
    tl_device.set_default_device(None)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two fake GPUs: torch.cuda's query functions answer as a machine with CUDA would."""
    mem = {0: [30 * GIB, 80 * GIB], 1: [70 * GIB, 80 * GIB]}  # free, total
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name=f"Fake GPU {i}", major=9, minor=0))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: tuple(mem[int(i)]))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i=0: GIB // 2)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i=0: GIB)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    return mem


def tiny_model():
    return create_model("kitnet_s", 10, device="cpu")


def tiny_data(n_batches=4, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 3, 16, 16, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(n_batches)]


# ------------------------------------------------------------------------------------------------ DevicePanel
def test_device_panel_cpu_only_says_so_and_suggests_smoke(no_gpu):
    panel = tw.DevicePanel(nn.Linear(4, 2), input_size=(4,))
    assert [v for _, v in panel.selector.options] == ["auto", "cpu"]
    assert "No GPU on this machine" in panel.info.value and "SMOKE = True" in panel.info.value
    assert "cuda" not in panel.info.value
    bundle = panel._repr_mimebundle_()
    assert WIDGET_VIEW in bundle and "No GPU" in bundle["text/html"]


def test_device_panel_selector_sets_the_kits_default_device(no_gpu):
    panel = tw.DevicePanel(nn.Linear(4, 2), input_size=(4,))
    panel.selector.value = "cpu"  # what the dropdown does in the browser
    assert tl_device._DEFAULT_DEVICE == torch.device("cpu")
    assert tl_device.resolve_device(None) == torch.device("cpu")
    panel.selector.value = "auto"
    assert tl_device._DEFAULT_DEVICE is None
    with pytest.raises(ValueError, match="'cuda:3' is not available here"):
        panel.select("cuda:3")


def test_device_panel_with_gpus_lists_memory_selects_and_refreshes(fake_cuda):
    panel = tw.DevicePanel(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), input_size=(3, 2, 2))
    assert [v for _, v in panel.selector.options] == ["auto", "cpu", "cuda:0", "cuda:1"]
    info = panel.info.value
    assert "Fake GPU 0" in info and "Fake GPU 1" in info and "compute capability 9.0" in info
    assert "50.00 / 80.00 GiB used" in info  # total - free, from the driver
    assert "No GPU" not in info
    panel.select("cuda:1")
    assert tl_device.get_default_device() == torch.device("cuda:1")
    assert panel.last_hint["available_bytes"] == 70 * GIB and panel.last_hint["device"] == "cuda:1"
    fake_cuda[0][0] = 10 * GIB  # another process takes memory on GPU 0
    panel.refresh_button.click()
    assert "70.00 / 80.00 GiB used" in panel.info.value


def test_batch_size_hint_matches_a_hand_count():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    # leaf outputs per sample: Flatten 12 + Linear 5 floats, kept and back-propagated: (12 + 5) * 4 * 2 bytes
    per_sample, fixed = 17 * 4 * 2, 65 * 4 * 4  # 65 parameters: weight, grad, two AdamW moments
    h = tw.batch_size_hint(model, (3, 2, 2), available_bytes=2 * (fixed + 100 * per_sample))
    assert (h["per_sample_bytes"], h["fixed_bytes"]) == (per_sample, fixed)
    assert h["batch_size"] == 64  # largest power of two <= 100
    assert tw.batch_size_hint(model, (3, 2, 2), available_bytes=2 * fixed)["batch_size"] == 0
    assert tw.batch_size_hint(model, (3, 2, 2), available_bytes=10**12, max_batch=256)["batch_size"] == 256
    with pytest.raises(ValueError, match="fraction"):
        tw.batch_size_hint(model, (3, 2, 2), fraction=1.5)
    with pytest.raises(ValueError, match="input_size"):
        tw.batch_size_hint(model, 12)


def test_batch_size_hint_leaves_the_model_unchanged():
    model = tiny_model().train()
    before = copy.deepcopy(model.state_dict())
    tw.batch_size_hint(model, (3, 16, 16), available_bytes=GIB)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------------------------------------------------ TrainingMonitor
def test_training_monitor_records_curves_progress_and_throughput():
    mon = tw.TrainingMonitor()
    data = tiny_data(4)
    hist = fit(tiny_model(), data, epochs=2, callbacks=[mon], progress=False, seed=0)
    assert len(mon.batch_losses) == 8 and mon.progress.value == mon.progress.max == 8
    assert mon.rows == hist.rows and mon.status == "finished" and not hist.stopped_early
    assert mon.samples_per_s == pytest.approx(hist.rows[-1]["samples_per_s"])
    assert "samples/s" in mon.stats.value and "epoch 2/2" in mon.stats.value and "CUDA" not in mon.stats.value
    assert mon.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert mon.stop_button.disabled  # nothing left to stop
    bundle = mon._repr_mimebundle_()
    assert WIDGET_VIEW in bundle and "<img" in bundle["text/html"] and "train_loss" in bundle["text/html"]


class ClickStopAt(Callback):
    def __init__(self, monitor, step):
        self.monitor, self.step = monitor, step

    def on_batch_end(self, state):
        if state.step == self.step:
            self.monitor.stop_button.click()  # the button's handler, as a browser click runs it


@pytest.mark.parametrize("clicker_first", [True, False])
def test_stop_button_ends_fit_after_the_current_batch_keeping_history(clicker_first):
    mon = tw.TrainingMonitor()
    cbs = [ClickStopAt(mon, 3), mon] if clicker_first else [mon, ClickStopAt(mon, 3)]
    model = tiny_model()
    hist = fit(model, tiny_data(4), epochs=5, callbacks=cbs, progress=False, seed=0)
    assert hist.stopped_early and len(hist) == 1  # the partial first epoch is kept
    assert mon.state.step == 3 and mon.status == "stopped"
    assert "stopped by you after epoch 1, batch 3" in mon.stats.value
    # a new fit with the same monitor starts afresh
    hist2 = fit(model, tiny_data(2), epochs=1, callbacks=[mon], progress=False)
    assert not hist2.stopped_early and mon.status == "finished" and len(mon.batch_losses) == 2


def test_training_monitor_shows_cuda_memory_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: int(1.5 * GIB))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: 2 * GIB)
    mon = tw.TrainingMonitor(redraw_every=1e9)
    state = TrainState(nn.Linear(2, 2), None, torch.device("cuda"), epochs=1, batches_per_epoch=2)
    mon.on_fit_start(state)
    mon.on_epoch_start(state)
    state.step, state.batch, state.loss, state.samples_seen = 1, 0, 0.5, 8
    mon.on_batch_end(state)
    assert mon.cuda_memory_gib == 1.5
    assert "CUDA memory 1.50 GiB (peak 2.00)" in mon.stats.value and "on cuda" in mon.stats.value


# ------------------------------------------------------------------------------------------------ FreezeExplorer
def test_freeze_explorer_tick_freezes_and_pins_bn_untick_restores():
    model = tiny_model()
    ex = tw.FreezeExplorer(model)
    assert ex.names[:3] == ["stem", "stem.0", "stem.1"] and "layer1.0" in ex.names and "pool" not in ex.names
    stem_n = sum(p.numel() for p in model.stem.parameters())
    ex.boxes["stem"].value = True  # tick, as in the browser
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert ex.counts()["frozen"] == stem_n and f"frozen</b> {stem_n:,}" in ex.summary.value
    assert ex.bn_modes()["stem.1"].startswith("stats frozen") and fz.is_frozen_bn(model.stem[1])
    assert ex.boxes["stem.0"].value and ex.boxes["stem.1"].value  # children follow their parent
    model.train()
    rm = model.stem[1].running_mean.clone()
    model(torch.randn(4, 3, 16, 16))
    assert torch.equal(model.stem[1].running_mean, rm)
    ex.boxes["stem"].value = False
    assert all(p.requires_grad for p in model.parameters()) and ex.counts()["frozen"] == 0
    assert ex.bn_modes()["stem.1"] == "train (updates running stats)"


def test_freeze_explorer_matches_the_freeze_api_and_shows_partial_parents():
    model, ref = tiny_model(), tiny_model()
    ref.load_state_dict(model.state_dict())
    ex = tw.FreezeExplorer(model)
    ex.set_frozen("layer1")
    ex.set_frozen("layer1.0", False)
    fz.freeze_by_names(ref, ["layer1"])
    fz.unfreeze_by_names(ref, ["layer1.0"])
    assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in ref.parameters()]
    assert fz.frozen_bn_names(model) == fz.frozen_bn_names(ref) == ["layer1.1.1"]
    assert not ex.boxes["layer1"].value and "partly frozen" in ex.boxes["layer1"].description
    assert ex.boxes["layer1.1"].value and not ex.boxes["layer1.0"].value
    t = ex.table().set_index("module")
    assert t.loc["layer1", "frozen"] == sum(p.numel() for p in model.layer1[1].parameters())
    assert ex.log == [("freeze", "layer1", 6), ("unfreeze", "layer1.0", 3)]  # conv weight, BN weight and bias


def test_freeze_explorer_unfreeze_hands_parameters_to_the_optimizer():
    model = tiny_model()
    fz.freeze_by_names(model, ["stem", "layer1"])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ex = tw.FreezeExplorer(model, optimizer=opt)
    assert ex.boxes["stem"].value and ex.boxes["layer1"].value  # reads the model's state when created
    ex.boxes["layer1"].value = False
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert len(opt.param_groups) == 2 and all(id(p) in held for p in model.layer1.parameters())


def test_freeze_explorer_rejects_bad_input():
    ex = tw.FreezeExplorer(tiny_model())
    with pytest.raises(KeyError, match="did you mean 'layer1'"):
        ex.set_frozen("layr1")
    with pytest.raises(ValueError, match="max_depth"):
        tw.FreezeExplorer(tiny_model(), max_depth=0)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        tw.FreezeExplorer("resnet18")


# ------------------------------------------------------------------------------------------------ QuadrantExplorer
def quadrant_results(seeds=(0, 1, 2)):
    rng = np.random.default_rng(0)
    rows = []
    for n in (20, 200):
        for sim in (0.0, 1.0):
            plan = [("probe", 3), ("scratch", 0)] + [("freeze", k) for k in range(4)]
            for strategy, k in plan:
                base = {"probe": 0.5 + 0.3 * sim, "scratch": 0.3 + 0.002 * n}.get(strategy, 0.6 + 0.1 * k * sim)
                for s in seeds:
                    rows.append(dict(n_per_class=n, similarity=sim, strategy=strategy, k=k, seed=s,
                                     acc=min(base + rng.normal(0, 0.02), 1.0), seconds=1.0))
    return pd.DataFrame(rows)


def test_quadrant_explorer_sliders_pick_the_cell_and_k():
    df = quadrant_results()
    qe = tw.QuadrantExplorer(df)
    assert qe.k_strategies == ["freeze"] and list(qe.k_slider.options) == [0, 1, 2, 3]
    qe.n_slider.value, qe.sim_slider.value, qe.k_slider.value = 20, 0.0, 2
    t = qe.table().set_index("strategy")
    here = df[(df.n_per_class == 20) & (df.similarity == 0.0)]
    ref = here[(here.strategy != "freeze") | (here.k == 2)].groupby("strategy")["acc"]
    assert np.allclose(t.loc[ref.mean().index, "mean"], ref.mean()) and np.allclose(t.loc[ref.std().index, "std"],
                                                                                     ref.std())
    assert qe.best()["strategy"] == ref.mean().idxmax()
    text_before, png_before = qe.text.value, qe.image.value
    qe.sim_slider.value, qe.k_slider.value = 1.0, 0
    assert qe.text.value != text_before and qe.image.value != png_before
    assert "similarity=1.0" in qe.text.value and qe.best()["strategy"] == "probe"
    qe.k_slider.value = 3  # freezing 3 stages beats the probe in this made-up cell
    assert (qe.best()["strategy"], qe.best()["k"]) == ("freeze", 3) and "freeze (k=3)" in qe.text.value
    assert "<table" in qe.static_html() and "<img" in qe.static_html()


def test_quadrant_explorer_recompute_runs_only_missing_seeds():
    calls = []

    def recompute(n, sim, strategy, k, seed):
        calls.append((n, sim, strategy, k, seed))
        return dict(n_per_class=n, similarity=sim, strategy=strategy, k=2 if k is None else k, seed=seed, acc=0.99)

    df = quadrant_results(seeds=(0,))
    qe = tw.QuadrantExplorer(df, recompute=recompute, seeds=[0, 1])
    qe.n_slider.value, qe.sim_slider.value, qe.k_slider.value = 200, 1.0, 1
    qe.strategy.value = "freeze"
    qe.run_button.click()
    assert calls == [(200, 1.0, "freeze", 1, 1)] and len(qe.results) == len(df) + 1
    assert qe.table().set_index("strategy").loc["freeze", "seeds"] == 2
    qe.strategy.value = "scratch"
    qe.run_button.click()
    assert calls[-1] == (200, 1.0, "scratch", None, 1)  # a strategy without k gets k=None (its default)
    qe.run_button.click()
    assert len(calls) == 2  # nothing missing any more
    with pytest.raises(ValueError, match="no recompute"):
        tw.QuadrantExplorer(df).run_selected()


def test_quadrant_explorer_rejects_bad_frames():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['acc'\]"):
        tw.QuadrantExplorer(quadrant_results().drop(columns="acc"))
    with pytest.raises(ValueError, match="empty"):
        tw.QuadrantExplorer(quadrant_results().iloc[:0])
    with pytest.raises(TypeError, match="DataFrame"):
        tw.QuadrantExplorer([{"acc": 1}])


# ------------------------------------------------------------------------------------------------ RayExplorer
def ray_frame():
    d = np.linspace(0, 1, 41)
    rows = []
    for sol, curv in (("SGD", 1.0), ("SWA", 0.25)):
        for ray in range(3):
            c = curv * (1 + 0.1 * ray)
            for di in d:
                rows.append(dict(solution=sol, ray=ray, t=di, distance=di, test_error=0.1 + c * di**2,
                                 train_loss=0.05 + 2 * c * di**2))
    rows.append(dict(solution="line", ray=-1, t=0.0, distance=0.0, test_error=0.5, train_loss=0.5))
    return pd.DataFrame(rows)


def test_ray_explorer_width_matches_landscape_and_the_analytic_curve():
    df = ray_frame()
    rx = tw.RayExplorer(df, rise=0.1)
    assert list(rx.solutions.options) == ["SGD", "SWA"]  # the line (ray -1) is left out
    t = rx.table().set_index("solution")
    ref = ray_width(df[df.ray >= 0], rise=0.1).groupby("solution")["width"].mean()
    assert np.allclose(t["width"], ref[t.index])
    analytic = {s: np.mean([math.sqrt(0.1 / (c * (1 + 0.1 * r))) for r in range(3)]) for s, c in
                (("SGD", 1.0), ("SWA", 0.25))}
    assert t.loc["SGD", "width"] == pytest.approx(analytic["SGD"], abs=0.01)
    assert t.loc["SWA", "ratio"] == pytest.approx(2.0, abs=0.05)
    assert "ratio SWA/SGD = <b>2.0" in rx.text.value


def test_ray_explorer_controls_change_the_view():
    rx = tw.RayExplorer(ray_frame(), rise=0.1)
    text, png = rx.text.value, rx.image.value
    rx.ray_select.value = (0,)
    assert rx.widths()["ray"].unique().tolist() == [0] and rx.image.value != png
    rx.max_distance.value = 0.4  # SWA's width (~0.63) is no longer reached within the range
    t = rx.table().set_index("solution")
    assert t.loc["SWA", "unreached"] == 1 and math.isnan(t.loc["SWA", "width"])
    assert "never rise that far" in rx.text.value
    rx.metric.value = "train_loss"
    rx.solutions.value = ("SWA",)
    assert list(rx.table()["solution"]) == ["SWA"] and rx.text.value != text
    with pytest.raises(ValueError, match="train_loss"):
        tw.RayExplorer(ray_frame().drop(columns="train_loss"))


def test_ray_explorer_keeps_rays_of_different_model_seeds_apart():
    one = ray_frame()
    two = pd.concat([one.assign(seed=0), one.assign(seed=1, test_error=one.test_error * 2 - 0.1)], ignore_index=True)
    rx = tw.RayExplorer(two, rise=0.1)
    assert rx.seed.value == 0  # the first model, as the lesson's figure shows
    t0 = rx.table().set_index("solution")["width"]
    ref0 = ray_width(one[one.ray >= 0], rise=0.1).groupby("solution")["width"].mean()
    assert np.allclose(t0, ref0[t0.index])
    rx.seed.value = "all"
    w = rx.widths()
    assert len(w) == 2 * 2 * 3  # 2 solutions x (2 seeds x 3 rays), not merged
    ref_all = ray_width(two[two.ray >= 0].assign(ray=lambda f: f.seed * 10 + f.ray), rise=0.1)
    assert np.allclose(rx.table().set_index("solution")["width"], ref_all.groupby("solution")["width"].mean())


# ------------------------------------------------------------------------------------------------ RankingView
def ranking_frame():
    rows = []
    acc = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    for task in ("t1", "t2"):
        for m, a in acc.items():
            rows.append(dict(task=task, model=m, method="logme", score=a * 10, finetune_acc=a))
            rows.append(dict(task=task, model=m, method="leep", score=-a if task == "t1" else a, finetune_acc=a))
    return pd.DataFrame(rows)


def test_ranking_view_taus_agree_with_scipy_and_controls_switch():
    df = ranking_frame()
    rv = tw.RankingView(df)
    taus = rv.taus()
    for (task, method), g in df.groupby(["task", "method"]):
        assert taus.loc[task, method] == pytest.approx(weightedtau(g["score"], g["finetune_acc"]).statistic)
    assert taus.loc["t1", "logme"] == pytest.approx(1.0) and taus.loc["t1", "leep"] == pytest.approx(-1.0)
    png = rv.image.value
    rv.method.value = "leep"
    assert rv.image.value != png
    rv.task.value = "t2"
    assert "t2" in rv.text.value and "leep +1.000" in rv.text.value
    with pytest.raises(ValueError, match="finetune_acc"):
        tw.RankingView(df.drop(columns="finetune_acc"))


# ------------------------------------------------------------------------------------------------ headless
HEADLESS_CELLS = [
    "import torch\nfrom transferlab.models import create_model\nfrom transferlab.train import fit\n"
    "from transferlab.widgets import DevicePanel, FreezeExplorer, TrainingMonitor\ntorch.set_num_threads(1)",
    "DevicePanel()",
    "model = create_model('kitnet_s', 10, device='cpu')\nFreezeExplorer(model)",
    "mon = TrainingMonitor(); display(mon)\n"
    "data = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(3)]\n"
    "history = fit(model, data, epochs=2, callbacks=[mon], progress=False)\n"
    "print(len(history), mon.status)",
]


@pytest.mark.slow
def test_widgets_execute_headless_and_leave_static_fallbacks(tmp_path):
    """nbclient (no front-end): nothing blocks, widget state is saved, every widget also has static HTML."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in HEADLESS_CELLS])
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert len(state) > 10
    outputs = [o for c in nb.cells for o in c.outputs if o.output_type in ("display_data", "execute_result")]
    shown = [o for o in outputs if WIDGET_VIEW in o.data]
    assert len(shown) == 3
    for o in shown:
        assert o.data[WIDGET_VIEW]["model_id"] in state and o.data["text/html"].strip()
    panel_html, freeze_html, monitor_html = (o.data["text/html"] for o in shown)
    assert "The kit uses" in panel_html and "trainable" in freeze_html
    # the monitor's display was updated when fit ended: the static copy shows the final curves and status
    assert "finished" in monitor_html and "<img" in monitor_html
    assert nb.cells[3].outputs[-1].text.strip() == "2 finished"


@pytest.mark.slow
def test_stop_click_reaches_a_running_fit_in_a_real_kernel():
    """A Stop click sent while the cell runs (ipykernel >= 7) ends the fit early, keeping its history; a cell
    queued meanwhile is not lost: it runs after the fit's cell."""
    import queue
    import time

    from jupyter_client.manager import start_new_kernel

    code = (
        "import torch\ntorch.set_num_threads(1)\nfrom transferlab.models import create_model\n"
        "from transferlab.train import fit\nfrom transferlab.widgets import TrainingMonitor\n"
        "mon = TrainingMonitor(redraw_every=1e9); display(mon)\n"
        "data = [(torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))) for _ in range(4)]\n"
        "h = fit(create_model('kitnet_s', 10, device='cpu'), data, epochs=100000, callbacks=[mon], progress=False)\n"
        "print('ENDED', len(h), h.stopped_early, mon.state.step, mon.status)"
    )
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute(code)
        button, clicked, printed, next_id, order = None, False, None, None, []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=10)
            except queue.Empty:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "comm_open" and content["data"]["state"].get("_model_name") == "ButtonModel":
                button = content["comm_id"]
            state = content.get("data", {}).get("state", {}) if kind == "comm_msg" else {}
            steps = re.search(r"step (\d+)/", str(state.get("value", "")))
            if button and not clicked and steps and int(steps.group(1)) >= 20:  # training is under way
                next_id = kc.execute("print('NEXT CELL RAN')")  # waits behind the fit; must not be lost
                click = {"comm_id": button, "data": {"method": "custom", "content": {"event": "click"}}}
                kc.shell_channel.send(kc.session.msg("comm_msg", click))
                clicked = True
            if kind == "stream" and "ENDED" in content["text"]:
                printed = content["text"].split()
            if kind == "stream" and "NEXT CELL RAN" in content["text"]:
                order.append(msg["parent_header"]["msg_id"])
            if kind == "error":
                pytest.fail(f"the cell raised {content['ename']}: {content['evalue']}")
            done = kind == "status" and content["execution_state"] == "idle"
            if done and clicked and msg["parent_header"].get("msg_id") == next_id:
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert clicked and printed is not None
    _, n_epochs, stopped, step, status = printed
    assert stopped == "True" and status == "stopped" and 20 <= int(step) < 100000 and int(n_epochs) >= 5
    assert order == [next_id]  # the cell queued during the fit ran afterwards, once
