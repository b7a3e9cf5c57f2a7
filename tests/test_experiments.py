"""transferlab.experiments: strategies, one run, grids, the result cache and the weight-movement measure."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from transferlab import experiments as X
from transferlab.freeze import freeze_stages, is_frozen_bn
from transferlab.models import KitNet, create_model
from transferlab.tasks import SealedSplitError
from transferlab.train import Callback, evaluate, extract_features

# A tiny budget on the smallest zoo model at 16 px: every run takes well under a second.
TINY = X.RunConfig(model="kitnet_s-src", train_images=60, min_epochs=2, max_epochs=2, n_test_per_class=4,
                   image_size=16, probe_epochs=20, batch_size=16)
STAGES = ("stem", "layer1", "layer2", "layer3")


class Grab(Callback):
    """Keeps the model and a snapshot of it at the start of training."""

    def on_fit_start(self, state):
        self.model = state.model
        self.start = {k: v.detach().clone() for k, v in state.model.state_dict().items()}


# ----------------------------------------------------------------------------------------------- strategies
def test_strategies_and_k_rules():
    assert X.stages_of(TINY) == STAGES
    assert X.STRATEGIES["probe"].check_k(None, 4) == 4
    assert X.STRATEGIES["scratch"].check_k(None, 4) == 0
    assert X.STRATEGIES["freeze"].check_k(3, 4) == 3
    with pytest.raises(IndexError, match=r"k=5 is out of range.*0\.\.4"):
        X.STRATEGIES["freeze"].check_k(5, 4)
    with pytest.raises(ValueError, match="always runs with k=4"):
        X.STRATEGIES["probe"].check_k(1, 4)
    with pytest.raises(TypeError, match="k must be an integer"):
        X.STRATEGIES["freeze"].check_k(True, 4)
    with pytest.raises(KeyError, match="Did you mean 'freeze'"):
        X.run_one(2, 1.0, "freez", 1, config=TINY)
    plan = X.default_plan(4)
    assert plan[0] == ("probe", 4) and [k for s, k in plan if s == "freeze"] == [0, 1, 2, 3]
    assert {s for s, _ in plan} == set(X.STRATEGIES)
    assert X.strategy_label("freeze", 3, STAGES) == "freeze stem..layer2 (k=3)"


def test_run_config_validates_and_budgets_epochs():
    cfg = X.RunConfig(train_images=1000, min_epochs=2, max_epochs=10)
    assert [cfg.epochs(n) for n in (50, 200, 1000)] == [10, 5, 2]
    with pytest.raises(ValueError, match="lr_finetune must be a number > 0"):
        X.RunConfig(lr_finetune=0)
    with pytest.raises(ValueError, match="min_epochs=5 is larger than max_epochs=2"):
        X.RunConfig(min_epochs=5, max_epochs=2)
    with pytest.raises(ValueError, match="layer_decay must be in"):
        X.RunConfig(layer_decay=2.0)
    assert X.RunConfig().fingerprint() == X.RunConfig().fingerprint() != X.RunConfig(lr_finetune=1e-4).fingerprint()


# ----------------------------------------------------------------------------------------------- building blocks
def test_param_groups_cover_trainable_parameters_once():
    m = KitNet(10, widths=(8, 16, 32))
    freeze_stages(m, 1)
    groups = X.param_groups(m, base_lr=1e-3, head_lr=1e-2, layer_decay=0.5)
    assert [g["name"] for g in groups] == ["layer1", "layer2", "layer3", "head"]  # the frozen stem is left out
    # stage i of n gets head_lr * decay ** (n - i): an independent restatement of the rule
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 * 0.5**3, 1e-2 * 0.5**2, 1e-2 * 0.5, 1e-2])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in m.parameters() if p.requires_grad}
    flat = X.param_groups(m, base_lr=1e-3, head_lr=1e-2)
    assert [g["lr"] for g in flat] == [1e-3, 1e-3, 1e-3, 1e-2]


def test_fold_probe_into_head_matches_the_probe():
    from transferlab.train import fit_linear_probe

    gen = torch.Generator().manual_seed(0)
    f = torch.randn(40, 6, generator=gen) * 3 + 2
    y = torch.arange(40) % 4
    probe = fit_linear_probe(f, y, 4, epochs=30)
    head = X.fold_probe_into_head(probe, nn.Linear(6, 4))
    torch.testing.assert_close(head(f), probe(f), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="maps 6 features to 4 classes"):
        X.fold_probe_into_head(probe, nn.Linear(5, 4))


def test_stage_weight_change_against_a_direct_computation():
    torch.manual_seed(0)
    m = KitNet(10, widths=(8, 16))
    before = X.snapshot(m)
    buffers_before = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        m.layer1[0][0].weight.add_(0.1)
        m.stem[1].running_mean.add_(5.0)  # a buffer: not a weight, must not count
    change = X.stage_weight_change(buffers_before, m)
    assert list(change) == ["stem", "layer1", "layer2", "head"]
    assert change["stem"] == 0.0 and change["layer2"] == 0.0 and change["head"] == 0.0
    w0 = nn.utils.parameters_to_vector([before[n] for n in before if n.startswith("layer1.")])
    w1 = nn.utils.parameters_to_vector(m.layer1.parameters()).detach()
    assert change["layer1"] == pytest.approx(float((w1 - w0).norm() / w0.norm()), rel=1e-6)
    assert X.stage_weight_change(before, X.snapshot(m), ["layer1"]) == {"layer1": change["layer1"]}
    with pytest.raises(KeyError, match="no weights under 'layer9'"):
        X.stage_weight_change(before, m, ["layer9"])
    with pytest.raises(KeyError, match="missing from `after`"):
        X.stage_weight_change(before, {"stem.0.weight": before["stem.0.weight"]})
    bad = dict(before, **{"head.bias": torch.zeros(3)})
    with pytest.raises(ValueError, match="'head.bias' has shape"):
        X.stage_weight_change(before, bad)


# ----------------------------------------------------------------------------------------------- run_one
def test_freeze_k_changes_only_the_unfrozen_stages():
    grab = Grab()
    row = X.run_one(3, 1.0, "freeze", 2, seed=0, config=TINY, callbacks=[grab])
    assert {*X.RESULT_COLUMNS} <= set(row) and row["k"] == 2 and row["epochs"] == 2
    change = X.stage_weight_change(grab.start, grab.model, STAGES)
    assert change["stem"] == 0.0 and change["layer1"] == 0.0
    assert change["layer2"] > 0 and change["layer3"] > 0
    after = grab.model.state_dict()
    for name in ("stem.1.running_mean", "layer1.0.1.running_var"):  # frozen BN statistics stay put
        assert torch.equal(after[name], grab.start[name])
    assert not torch.equal(after["layer2.0.1.running_mean"], grab.start["layer2.0.1.running_mean"])
    assert is_frozen_bn(grab.model.stem[1])


def test_runs_are_reproducible_and_seeds_differ():
    a = X.run_one(3, 0.5, "freeze", 1, seed=1, config=TINY)
    b = X.run_one(3, 0.5, "freeze", 1, seed=1, config=TINY)
    assert a["acc"] == b["acc"] and a["train_acc"] == b["train_acc"]
    c = X.run_one(3, 0.5, "freeze", 1, seed=2, config=TINY)
    assert (c["acc"], c["train_acc"]) != (a["acc"], a["train_acc"])


def test_head_first_starts_the_joint_phase_from_the_probe():
    probe = X.run_one(3, 1.0, "probe", seed=0, config=TINY)
    grab = Grab()

    class EvalAtStart(Callback):
        def on_fit_start(self, state):
            task = X.target_task(3, 1.0, 0, config=TINY)
            self.acc = evaluate(state.model, task.loader("val", 100))["acc"]

    at_start = EvalAtStart()
    row = X.run_one(3, 1.0, "head-first", 0, seed=0, config=TINY, callbacks=[grab, at_start])
    assert at_start.acc == pytest.approx(probe["acc"]) == probe["val_acc"]  # the folded head is the probe
    assert row["lr_head"] == row["lr_base"] == TINY.lr_finetune
    assert all(p.requires_grad for p in grab.model.parameters())  # k=0: every weight trains ...
    bns = [m for m in grab.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(is_frozen_bn(m) for m in bns)  # ... and BatchNorm keeps the statistics the probe saw
    assert all(torch.equal(v, grab.start[k]) for k, v in grab.model.state_dict().items() if "running" in k)


def test_scratch_starts_from_random_weights_and_probe_trains_no_base():
    grab = Grab()
    X.run_one(3, 1.0, "scratch", seed=0, config=TINY, callbacks=[grab])
    torch.manual_seed(0)
    fresh = create_model("kitnet_s", 10)  # the same architecture, randomly initialised from the same seed
    assert all(torch.equal(v, grab.start[k]) for k, v in fresh.state_dict().items())
    pre = X.build_model(TINY, seed=0)
    assert not torch.equal(pre.stem[0].weight, fresh.stem[0].weight)
    row = X.run_one(3, 1.0, "probe", seed=0, config=TINY)
    assert row["epochs"] == 0 and row["k"] == 4 and 0 <= row["acc"] <= 1


def test_run_one_rejects_bad_input():
    with pytest.raises(ValueError, match="similarity must be a number in"):
        X.run_one(3, 1.5, "probe", config=TINY)
    with pytest.raises(ValueError, match="n_per_class must be an integer >= 1, got 0"):
        X.run_one(0, 1.0, "probe", config=TINY)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        X.run_one(3, 1.0, "probe", seed=-1, config=TINY)
    with pytest.raises(TypeError, match="config must be a RunConfig"):
        X.run_one(3, 1.0, "probe", config={"lr": 1})


# ----------------------------------------------------------------------------------------------- grids and cache
def test_grid_is_tidy_and_cache_is_reused(tmp_path):
    path = tmp_path / "cache"
    cache = X.ResultCache(path)
    plan = [("probe", 4), ("freeze", 3)]
    df = X.run_grid([2], [1.0, 0.0], plan, seeds=[0, 1], config=TINY, cache=cache, progress=False)
    assert list(df.columns[:7]) == list(X.RESULT_COLUMNS)
    assert len(df) == 8 and not df["cached"].any()
    assert df.groupby(["similarity", "strategy"]).size().eq(2).all()
    reread = X.ResultCache(path)  # a new process sees the rows on disk
    assert len(reread) == 8
    again = X.run_grid([2], [1.0, 0.0], plan, seeds=[0, 1], config=TINY, cache=reread, progress=False)
    assert again["cached"].all()
    pd.testing.assert_series_equal(again["acc"], df["acc"])
    files = sorted(path.iterdir())  # one file per row, each tagged with the format; no temporary files, no lock
    assert len(files) == 8 and all(f.suffix == ".json" and not f.name.startswith(".") for f in files)
    assert {json.loads(f.read_text())["format"] for f in files} == {X.ResultCache.FORMAT}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    other = X.run_grid([2], [1.0], [("probe", 4)], seeds=[0], config=X.RunConfig(**{**TINY.__dict__,
                                                                                       "probe_epochs": 5}),
                       cache=reread, progress=False)
    assert not other["cached"].any()  # another config's rows are not reused


def test_cache_never_overwrites_a_foreign_file(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text('{"my": "data"}')
    with pytest.warns(UserWarning, match="not a transferlab result cache") as caught:
        X.ResultCache(path)
    (aside,) = tmp_path.glob("mine.json.not-a-cache-*")
    assert aside.read_text() == '{"my": "data"}'  # the foreign data is kept, byte for byte
    assert str(path) in str(caught[0].message) and str(aside) in str(caught[0].message)
    with pytest.raises(KeyError, match="lacks 'seed'"):
        X.ResultCache(None).put(dict(config="x", n_per_class=1, similarity=1.0, strategy="probe", k=4))


def test_recompute_callable_for_the_widget():
    cache = X.ResultCache(None)
    recompute = X.make_recompute(TINY, cache)
    row = recompute(2, 0.5, "freeze", 3, 0)
    assert row["cached"] is False and (row["n_per_class"], row["similarity"], row["k"]) == (2, 0.5, 3)
    assert recompute(2, 0.5, "freeze", 3, 0) == dict(row, cached=True)
    with pytest.raises(IndexError):
        recompute(2, 0.5, "freeze", 7, 0)


def test_summarize_and_best_by_cell():
    df = pd.DataFrame(dict(n_per_class=[2] * 6, similarity=[1.0] * 6,
                           strategy=["probe", "probe", "freeze", "freeze", "scratch", "scratch"],
                           k=[4, 4, 1, 1, 0, 0], seed=[0, 1] * 3, acc=[0.5, 0.7, 0.8, 0.6, 0.9, 0.95],
                           seconds=[1.0] * 6))
    s = X.summarize(df)
    assert s["mean"].round(3).tolist() == [0.6, 0.7, 0.925]
    assert s["std"].round(4).tolist() == [round(float(pd.Series([0.5, 0.7]).std()), 4),
                                          round(float(pd.Series([0.8, 0.6]).std()), 4),
                                          round(float(pd.Series([0.9, 0.95]).std()), 4)]
    best = X.best_by_cell(s)
    assert best[["strategy", "k"]].values.tolist() == [["freeze", 1]]  # scratch is not on the freeze ladder
    assert X.best_by_cell(s, family=None)["strategy"].tolist() == ["scratch"]
    with pytest.raises(KeyError, match="lack the columns"):
        X.summarize(df.drop(columns="acc"))


def test_weight_drift_follows_two_fits():
    from transferlab.freeze import unfreeze_all
    from transferlab.train import fit
    from transferlab.world import target_task

    task = target_task(2, n_test_per_class=1, size=16)
    torch.manual_seed(0)
    m = KitNet(10, widths=(8, 16))
    drift = X.WeightDrift(every=1)
    freeze_stages(m, 3)
    fit(m, task.loader("train", 10), epochs=1, progress=False, callbacks=[drift], val=task.loader("test", 10))
    assert drift.rows[-1]["stem"] == 0.0 and drift.rows[-1]["layer2"] == 0.0  # head-only phase
    unfreeze_all(m)
    fit(m, task.loader("train", 10), epochs=1, progress=False, callbacks=[drift])
    frame = drift.frame()
    assert frame["step"].tolist() == [0, 1, 2, 3, 4]
    assert frame["epoch"].tolist() == [0, 0.5, 1, 1.5, 2]
    assert frame["layer2"].iloc[-1] > 0 and "val_acc" in frame.columns
    with pytest.raises(ValueError, match="every must be an integer"):
        X.WeightDrift(every=-1)


def test_real_targets_run_on_an_image_folder_at_the_models_config(tmp_path, monkeypatch):
    """The online path of lesson 01: a timm model (local weights) on an ImageFolder, the axis holding its name."""
    from realpath import TIMM_NAME, install_timm_weights, make_image_folder

    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path))
    install_timm_weights(tmp_path)
    target = f"folder:{make_image_folder(tmp_path / 'images', classes=3, per_class=10)}"
    cfg = X.RunConfig(model=TIMM_NAME, train_images=16, min_epochs=1, max_epochs=1, n_test_per_class=2,
                      n_val_per_class=2, probe_epochs=2, batch_size=8)
    cache = X.ResultCache(tmp_path / "cache.json")
    df = X.run_grid([4], [target], ["probe", ("freeze", 0)], seeds=[0], config=cfg, cache=cache, progress=False)
    assert df["similarity"].tolist() == [target, target] and not df["cached"].any()
    assert df["acc"].between(0, 1).all() and (df["model"] == TIMM_NAME).all()
    again = X.run_grid([4], [target], ["probe", ("freeze", 0)], seeds=[0], config=cfg, cache=X.ResultCache(
        tmp_path / "cache.json"), progress=False)
    assert again["cached"].all() and again["acc"].tolist() == df["acc"].tolist()
    task = X.target_task(4, target, 0, config=cfg)  # cfg: 2 test images per class, image_size 32 (the world's)
    assert task.num_classes == 3 and task.image_size == 160  # the model's input size, not the world's 32 px
    assert X.data_config(TIMM_NAME)["input_size"][-1] == 160
    with pytest.raises(ValueError, match="real dataset"):
        X.run_one(4, "imagenet", "probe", config=cfg)
    with pytest.raises(ValueError, match="as a number"):
        X.run_one(4, "world", "probe", config=cfg)


# ----------------------------------------------------------------------------------------------- random state
# (strategy, k, seed) -> (test accuracy, train_acc) of run_one(3, 0.5, ...) with TINY on the CPU, recorded with the
# code as it was before runs drew their numbers inside device.seeded (when fit reseeded the global torch generator).
# head-first was re-recorded when its joint phase began to keep the pretrained BatchNorm statistics (protocol v2):
# before, its probe's head met batch statistics it was not fit on, and its training accuracy was 0.07.
RECORDED = {
    ("probe", None, 0): (0.5249999761581421, 0.8666666746139526),
    ("freeze", 1, 0): (0.125, 0.3333333333333333),
    ("scratch", 0, 1): (0.1, 0.7666666666666667),
    ("head-first", 1, 1): (0.45, 0.7),
    ("discriminative-lr", 0, 0): (0.25, 0.3333333333333333),
}


def test_seeds_give_the_numbers_they_gave_before():
    torch.manual_seed(123)  # the caller's state plays no part
    for (strategy, k, seed), (acc, train_acc) in RECORDED.items():
        row = X.run_one(3, 0.5, strategy, k, seed=seed, config=TINY, device="cpu")
        assert (row["test_acc"], row["train_acc"]) == (acc, train_acc), (strategy, k, seed)


def _random_states():
    return torch.random.get_rng_state(), np.random.get_state(), random.getstate()


def _assert_same_states(before, after):
    assert torch.equal(before[0], after[0]), "the torch generator moved"
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1]) and before[1][2:] == after[1][2:]
    assert before[2] == after[2], "Python's random generator moved"


def test_runs_leave_the_callers_random_state_alone():
    X.clear_caches()  # zoo weights and tasks are read inside the calls below, as in a fresh process
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    before = _random_states()
    X.build_model(TINY, seed=3)
    X.build_model(TINY, pretrained=False, seed=3)
    X.run_one(3, 0.5, "freeze", 2, seed=1, config=TINY)
    X.run_one(3, 0.5, "head-first", 0, seed=1, config=TINY)
    X.run_grid(2, 1.0, ["scratch", "probe"], seeds=[0], config=TINY, progress=False)
    X.make_recompute(TINY, X.ResultCache(None))(2, 0.0, "discriminative-lr", None, 0)
    _assert_same_states(before, _random_states())
    expected = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_clear_caches_empties_every_in_memory_cache():
    task = X.target_task(2, 0.25, 0, config=TINY)
    assert X.target_task(2, 0.25, 0, config=TINY) is task  # kept in memory
    X.build_model(TINY)
    X.stages_of(TINY)
    X.data_config(TINY.model)
    dropped = X.clear_caches()
    assert {"zoo weights", "stage names", "data configs", "world tasks", "real tasks"} <= set(dropped)
    assert all(dropped[name] >= 1 for name in ("zoo weights", "stage names", "data configs", "world tasks"))
    assert set(X.clear_caches().values()) == {0}  # nothing is left
    assert X.target_task(2, 0.25, 0, config=TINY) is not task  # built again


# ----------------------------------------------------------------------------------------------- bad input
def test_single_values_and_numpy_integers_are_accepted():
    df = X.run_grid(np.int64(2), 0.5, "scratch", seeds=np.int64(0), config=TINY, progress=False)
    assert df[["n_per_class", "similarity", "strategy", "k", "seed"]].values.tolist() == [[2, 0.5, "scratch", 0, 0]]
    row = X.run_one(np.int64(3), np.float32(0.5), "freeze", np.int64(1), np.int64(0), config=TINY)
    assert (row["test_acc"], row["train_acc"]) == RECORDED[("freeze", 1, 0)]
    assert type(row["n_per_class"]) is int and type(row["k"]) is int and type(row["seed"]) is int
    # a dataset's name is one point of the axis (not four letters); the cached row spares the download
    cache = X.ResultCache(None)
    cache.put(dict(config=TINY.fingerprint(), n_per_class=2, similarity="pets", strategy="probe", k=4, seed=0,
                   acc=0.5, seconds=0.0))
    pets = X.run_grid(2, "pets", ("probe", 4), seeds=0, config=TINY, cache=cache, progress=False)
    assert pets["similarity"].tolist() == ["pets"] and pets["cached"].all()
    assert X.make_recompute(TINY, cache)(np.int64(2), "pets", "probe", np.int64(4), np.int64(0))["cached"]
    assert X.RunConfig(batch_size=np.int64(16)).fingerprint() == X.RunConfig(batch_size=16).fingerprint()
    assert X.as_plan(["probe", ("freeze", np.int64(2))], 4) == [("probe", 4), ("freeze", 2)]


def test_bad_grid_input_is_named():
    with pytest.raises(KeyError, match="no strategy named 'scratc'. Did you mean 'scratch'"):
        X.run_grid(2, 0.5, [("probe", 4), "scratc"], seeds=0, config=TINY, progress=False)
    with pytest.raises(KeyError, match="Did you mean 'freeze'"):
        X.make_recompute(TINY, X.ResultCache(None))(2, 0.5, "freez", 1, 0)
    with pytest.raises(KeyError, match="Did you mean 'probe'"):
        X.strategy_label("prob", 4, STAGES)
    with pytest.raises(TypeError, match=r"a strategy name or a \(name, k\) pair, got 3"):
        X.run_grid(2, 0.5, [3], seeds=0, config=TINY, progress=False)
    with pytest.raises(ValueError, match="plan is empty"):
        X.run_grid(2, 0.5, [], seeds=0, config=TINY, progress=False)
    with pytest.raises(ValueError, match="sizes is empty"):
        X.run_grid([], 0.5, "probe", config=TINY, progress=False)
    with pytest.raises(ValueError, match="n_per_class must be an integer >= 1, got 2.5"):
        X.run_grid(2.5, 0.5, "probe", config=TINY, progress=False)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        X.run_grid(2, 0.5, "probe", seeds=[0, -1], config=TINY, progress=False)
    with pytest.raises(ValueError, match="similarity must be a number in"):
        X.run_grid(2, [0.5, 2.0], "probe", config=TINY, progress=False)


# ----------------------------------------------------------------------------------------------- cache files
def _put_rows(path, worker, n_rows, start):
    cache = X.ResultCache(path)
    start.wait()
    for i in range(n_rows):
        cache.put(dict(config="c", n_per_class=1 + i, similarity=0.5, strategy="probe", k=4, seed=worker,
                       acc=i / n_rows, seconds=0.0))


def test_processes_writing_at_once_lose_no_row(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    path, n_rows = tmp_path / "shared.json", 25
    start = ctx.Event()
    workers = [ctx.Process(target=_put_rows, args=(path, w, n_rows, start)) for w in range(3)]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    cache = X.ResultCache(path)
    assert len(cache) == 3 * n_rows
    assert all(cache.get("c", 1 + i, 0.5, "probe", 4, w) is not None for w in range(3) for i in range(n_rows))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.json"]  # the folder only: no lock file
    assert len(list(path.iterdir())) == 3 * n_rows  # one whole file per row, no temporary file left


@pytest.mark.parametrize("content", [b"\x00\xffnot json", b"[1, 2]", b'{"format": "transferlab-results/9", "rows": []}',
                                     b'{"format": "transferlab-results/1", "rows": {"a": 1}}',
                                     b'{"format": "transferlab-results/1", "rows": [{"acc": 0.5}]}'])
def test_a_file_that_is_not_a_cache_is_kept_aside(tmp_path, content):
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.warns(UserWarning, match="not a transferlab result cache") as caught:
        cache = X.ResultCache(path)
    assert str(path) in str(caught[0].message)
    (aside,) = tmp_path.glob("results.json.not-a-cache-*")
    assert aside.read_bytes() == content and len(cache) == 0
    cache.put(dict(config="c", n_per_class=1, similarity=0.5, strategy="probe", k=4, seed=0, acc=0.5))
    assert len(X.ResultCache(path)) == 1 and aside.read_bytes() == content


def test_a_foreign_file_written_after_opening_is_kept_aside_too(tmp_path):
    path = tmp_path / "results.json"
    cache = X.ResultCache(path)
    path.write_text("my notes")
    with pytest.warns(UserWarning, match="kept aside"):
        cache.put(dict(config="c", n_per_class=1, similarity=0.5, strategy="probe", k=4, seed=0, acc=0.5))
    (aside,) = tmp_path.glob("results.json.not-a-cache-*")
    assert aside.read_text() == "my notes" and len(X.ResultCache(path)) == 1


# ----------------------------------------------------------------------------------------------- protocol v2
def test_rows_report_validation_for_choices_and_test_for_the_final_model():
    row = X.run_one(3, 0.5, "freeze", 2, seed=0, config=TINY)
    assert row["acc"] == row["val_acc"] and 0 <= row["test_acc"] <= 1
    task = X.target_task(3, 0.5, 0, config=TINY)
    assert task.splits == ("train", "val", "test") and len(task.labels("val")) == 10 * TINY.n_val_per_class
    with pytest.raises(SealedSplitError):  # nothing in a run opened the test split for anyone else
        task.loader("test")
    grab = Grab()
    again = X.run_one(3, 0.5, "freeze", 2, seed=0, config=TINY, callbacks=[grab])
    assert evaluate(grab.model, task.loader("val", 1000))["acc"] == again["acc"]
    assert evaluate(grab.model, task.loader("test", 1000, final=True))["acc"] == again["test_acc"]
    probe = X.run_one(3, 0.5, "probe", seed=0, config=TINY)
    assert probe["acc"] == probe["val_acc"] and 0 <= probe["test_acc"] <= 1
    with pytest.raises(ValueError, match="n_val_per_class must be an integer >= 1, got 0"):
        X.RunConfig(n_val_per_class=0)


def test_rows_of_the_old_protocol_are_never_reused():
    import hashlib
    from dataclasses import asdict

    from transferlab import zoo
    from transferlab.experiments import config as C

    cfg = X.RunConfig(model="kitnet_s-src")
    old_fields = {k: v for k, v in asdict(cfg).items() if k not in ("n_val_per_class", "ood", "channels_last")}
    v1 = hashlib.sha256((json.dumps(old_fields, sort_keys=True) + f"|{zoo.ZOO[cfg.model].fingerprint()}|v1")
                        .encode()).hexdigest()[:12]
    assert cfg.fingerprint() != v1 and C._PROTOCOL != "v1"
    cache = X.ResultCache(None)  # a v1 row under the same key is not served
    cache.put(dict(config=v1, n_per_class=2, similarity=0.5, strategy="probe", k=4, seed=0, acc=0.99))
    df = X.run_grid(2, 0.5, "probe", seeds=0, config=dataclasses.replace(TINY, model="kitnet_s-src"), cache=cache,
                    progress=False)
    assert not df["cached"].any()


def test_ood_measures_in_a_row():
    cfg = dataclasses.replace(TINY, ood=dict(noise=1.0, pose=0.5))
    assert cfg.ood == (("pose", 0.5), ("noise", 1.0)) and cfg.fingerprint() != TINY.fingerprint()
    rows = {s: X.run_one(3, 0.5, s, None if s == "probe" else 0, seed=0, config=cfg)
            for s in ("probe", "all-at-once", "head-first", "scratch")}
    for row in rows.values():
        assert 0 <= row["ood_acc"] <= 1
    assert rows["probe"]["feature_change_id"] == rows["probe"]["feature_change_ood"] == 0.0
    assert rows["all-at-once"]["feature_change_id"] > 0 and rows["head-first"]["feature_change_ood"] > 0
    assert np.isnan(rows["scratch"]["feature_change_id"])
    assert {f"drift_{s}" for s in STAGES} <= set(rows["head-first"]) and rows["head-first"]["drift_stem"] > 0
    assert "ood_acc" not in X.run_one(3, 0.5, "probe", seed=0, config=TINY)  # only when asked for
    ood = X.ood_task(3, 0.5, 0, config=cfg)
    assert ood.classes == X.target_task(3, 0.5, 0, config=cfg).classes and ood.sealed
    with pytest.raises(ValueError, match="config.ood is empty"):
        X.ood_task(3, 0.5, 0, config=TINY)
    with pytest.raises(KeyError, match="Did you mean 'noise'"):
        X.RunConfig(ood=dict(noice=1.0))
    with pytest.raises(ValueError, match="pose must be a number >= 0 and <= 1"):
        X.RunConfig(ood=dict(pose=2))


def test_feature_change_against_a_direct_computation():
    a, b = torch.randn(20, 8), torch.randn(20, 8)
    assert X.feature_change(a, b) == pytest.approx(float(((b - a) ** 2).sum().sqrt() / (a**2).sum().sqrt()))
    assert X.feature_change(a, a) == 0.0
    with pytest.raises(ValueError, match="features of the same images"):
        X.feature_change(a, b[:5])


def test_base_features_are_computed_once_and_match_the_model():
    f, y = X.base_features(3, 0.5, 0, "train", config=TINY)
    assert X.base_features(3, 0.5, 0, "train", config=TINY)[0] is f
    task = X.target_task(3, 0.5, 0, config=TINY)
    direct, _ = extract_features(X.build_model(TINY, seed=5), task.loader("train", 7, shuffle=False))
    assert torch.allclose(f, direct, atol=1e-5) and torch.equal(y, task.y_train)  # the head's seed plays no part
    with pytest.raises(ValueError, match="split must be"):
        X.base_features(3, 0.5, 0, "ood", config=TINY)


def test_a_probe_on_a_dead_feature_folds_into_a_head_of_sane_size():
    f = torch.cat([torch.randn(40, 5), torch.zeros(40, 1)], dim=1)  # feature 5 never fires in training
    y = torch.arange(40) % 4
    probe = X.fit_probe(f, y, 4, epochs=30)
    head = X.fold_probe_into_head(probe, nn.Linear(6, 4))
    assert head.weight.abs().max() < 100  # dividing by its std (0, clamped to 1e-6) gave ~1e5
    live = torch.randn(10, 6)
    assert torch.allclose(head(live), probe(live), atol=1e-4)
    plain = X.fit_probe(f[:, :5], y, 4, epochs=30)  # features with a spread are standardised as usual
    assert torch.allclose(plain[0].std, f[:, :5].std(0))


def test_all_at_once_and_head_first_differ_only_in_the_head():
    a, h = X.STRATEGIES["all-at-once"], X.STRATEGIES["head-first"]
    assert a.keep_bn_stats and h.keep_bn_stats and not a.head_first and h.head_first
    assert a.base_lr == h.base_lr == "finetune"
    ra = X.run_one(3, 0.5, "all-at-once", 0, seed=0, config=TINY)
    rh = X.run_one(3, 0.5, "head-first", 0, seed=0, config=TINY)
    assert ra["epochs"] == rh["epochs"] and ra["lr_base"] == rh["lr_base"]  # the same budget for the base
    assert ra["lr_head"] == TINY.lr_scratch and rh["lr_head"] == TINY.lr_finetune  # a random head needs the big LR


def test_real_images_get_a_corrupted_test_split_as_their_ood_twin():
    from transferlab.experiments.targets import _corrupted

    task = X.target_task(2, 0.5, 0, config=TINY)
    real = dataclasses.replace(task, info=dict(kind="folder", seed=0))  # images without generative factors
    ood = _corrupted(real, dict(colour=1.0, noise=0.5, pose=1.0))
    assert ood.sealed and ood.classes == task.classes and ood.x_train is task.x_train
    assert ood.x_val.shape == task.x_val.shape and not torch.equal(ood.x_val, task.x_val)  # shifted, for choices
    plain = task.loader("test", 1000, final=True).x.float()
    assert ood.x_test.shape == plain.shape and not torch.equal(ood.x_test.float(), plain)
    spread = lambda x: x.float().flatten(1).std(1).mean()  # noqa: E731
    rough = lambda x: (x.float()[..., 1:] - x.float()[..., :-1]).abs().mean()  # noqa: E731
    assert spread(_corrupted(real, dict(colour=1.0)).x_test) < 0.7 * spread(plain)  # less contrast
    assert rough(_corrupted(real, dict(noise=1.0)).x_test) > 2 * rough(plain)  # more noise
    assert torch.equal(ood.x_test, _corrupted(real, dict(colour=1.0, noise=0.5)).x_test)  # seeded
    with pytest.raises(ValueError, match="only the 'colour' and 'noise' knobs"):
        _corrupted(real, dict(pose=1.0))
