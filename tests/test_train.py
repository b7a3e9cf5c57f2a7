import pytest
import torch

from transferlab import train as T
from transferlab.models import create_model
from transferlab.world import target_task


@pytest.fixture(scope="module")
def task():
    return target_task(12, 1.0, n_test_per_class=6, size=16, seed=0)


def test_fit_learns_and_records_history(task):
    m = create_model("kitnet_s", 10)
    h = T.fit(m, task.loader("train", 30), epochs=6, lr=3e-3, val=task.loader("test", 60), progress=False, seed=0)
    assert len(h) == 6 and h["epoch"] == list(range(1, 7))
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h.last("train_acc") > 0.3  # 10 classes: chance is 0.1
    assert {"val_loss", "val_acc", "samples_per_s", "lr", "seconds"} <= set(h.rows[0])
    assert h.frame().shape[0] == 6
    with pytest.raises(KeyError, match="not recorded"):
        h["nope"]


def test_fit_is_reproducible_with_seed(task):
    def run():
        torch.manual_seed(0)
        m = create_model("kitnet_s", 10)
        T.fit(m, task.loader("train", 30, seed=1), epochs=2, progress=False, seed=5)
        return torch.cat([p.flatten() for p in m.parameters()])

    assert torch.equal(run(), run())


def test_fit_leaves_frozen_parameters_alone(task):
    m = create_model("kitnet_s", 10)
    for p in m.stem.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in m.stem.named_parameters()}
    T.fit(m, task.loader("train", 30), epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in m.stem.named_parameters())


def test_callbacks_and_stop_keep_history(task):
    events = []

    class Stopper(T.Callback):
        def on_fit_start(self, s):
            events.append("start")

        def on_batch_end(self, s):
            events.append("batch")
            if s.epoch == 1 and s.batch == 1:
                s.stop = True

        def on_epoch_end(self, s):
            events.append("epoch")

        def on_fit_end(self, s):
            events.append("end")

    m = create_model("kitnet_s", 10)
    h = T.fit(m, task.loader("train", 30), epochs=5, callbacks=[Stopper()], progress=False)
    assert h.stopped_early and len(h) == 2
    assert events[0] == "start" and events[-1] == "end" and events.count("epoch") == 2
    assert events.count("batch") == len(task.loader("train", 30)) + 2


def test_fit_bad_input(task):
    m = create_model("kitnet_s", 10)
    with pytest.raises(ValueError, match="epochs"):
        T.fit(m, task.loader("train"), epochs=0)
    with pytest.raises(ValueError, match="lr"):
        T.fit(m, task.loader("train"), epochs=1, lr=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        T.fit(m, task.loader("train"), epochs=1, optimizer="adam-ish")
    with pytest.raises(ValueError, match="unknown schedule"):
        T.fit(m, task.loader("train"), epochs=1, schedule="warmup")
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="everything frozen"):
        T.fit(m, task.loader("train"), epochs=1)


def test_evaluate_restores_mode_and_matches_manual(task):
    m = create_model("kitnet_s", 10).train()
    ev = T.evaluate(m, task.loader("test", 25))
    assert m.training and ev["n"] == 60
    m.eval()
    with torch.no_grad():
        x, y = next(iter(task.loader("test", 60)))
        acc = (m(x).argmax(1) == y).float().mean().item()
    assert ev["acc"] == pytest.approx(acc)
    with pytest.raises(ValueError, match="no batches"):
        T.evaluate(m, [])


def test_extract_features_and_linear_probe(task):
    m = create_model("kitnet_s", 10)
    f, y = T.extract_features(m, task.loader("train", 50, shuffle=False))
    assert f.shape == (120, m.num_features) and torch.equal(y, task.y_train)
    probe = T.fit_linear_probe(f, y, 10, epochs=200)
    acc = (probe(f).argmax(1) == y).float().mean().item()
    assert acc > 0.5  # it fits its own training features
    with pytest.raises(ValueError, match="features"):
        T.fit_linear_probe(f[:5], y, 10)


def test_discriminative_param_groups_keep_their_ratios(task):
    m = create_model("kitnet_s", 10)
    opt = torch.optim.AdamW([{"params": m.stem.parameters(), "lr": 1e-4},
                             {"params": [p for n, p in m.named_parameters() if not n.startswith("stem")], "lr": 1e-3}])
    seen = []

    class Peek(T.Callback):
        def on_batch_end(self, s):
            seen.append([g["lr"] for g in s.optimizer.param_groups])

    T.fit(m, task.loader("train", 30), epochs=1, lr=1e-3, optimizer=opt, callbacks=[Peek()], progress=False)
    for lo, hi in seen:
        assert lo == pytest.approx(hi / 10)


# ------------------------------------------------------------------------------------------------- bad input
def _tiny_task():
    from transferlab.world import target_task

    return target_task(2, n_test_per_class=1, size=16)


def test_fit_refuses_an_empty_loader():
    from transferlab.models import create_model

    t = _tiny_task()
    empty = t.loader("train", 8)
    empty.x, empty.y = empty.x[:0], empty.y[:0]
    with pytest.raises(ValueError, match="no batches"):
        T.fit(create_model("kitnet_s", 10), empty, epochs=1, progress=False)


def test_fit_stops_loudly_on_nan_inputs_and_names_them():
    import torch

    from transferlab.models import create_model

    x = torch.randn(8, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    data = [(x, torch.arange(8) % 10)]
    with pytest.raises(FloatingPointError, match="inputs of that batch contain NaN"):
        T.fit(create_model("kitnet_s", 10), data, epochs=1, progress=False)


def test_fit_names_a_label_outside_the_head():
    import torch

    from transferlab.models import create_model

    data = [(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 12]))]
    with pytest.raises(ValueError, match="label 12 is out of range for a model with 10 outputs"):
        T.fit(create_model("kitnet_s", 10), data, epochs=1, progress=False)


def test_evaluate_refuses_nan_outputs_instead_of_counting_class_0():
    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="not finite"):
        T.evaluate(model, [(torch.randn(4, 4), torch.tensor([0, 0, 1, 1]))])


def test_extract_features_of_nothing_is_an_error():
    import torch

    with pytest.raises(ValueError, match="no batches"):
        T.extract_features(torch.nn.Linear(2, 2), [])


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(epochs=-3), "epochs must be an integer >= 1"),
    (dict(lr=0.0), "lr must be a number > 0"),
    (dict(nan=True), "NaN or infinite"),
])
def test_linear_probe_rejects_what_would_give_nan_or_no_training(kwargs, match):
    import torch

    feats = torch.randn(6, 3)
    if kwargs.pop("nan", False):
        feats[2, 1] = float("nan")
    with pytest.raises(ValueError, match=match):
        T.fit_linear_probe(feats, torch.tensor([0, 1, 0, 1, 0, 1]), 2, **kwargs)


def test_numpy_scalars_are_numbers():
    import numpy as np
    import torch

    from transferlab.models import create_model

    t = _tiny_task()
    h = T.fit(create_model("kitnet_s", 10), t.loader("train", np.int64(8)), epochs=np.int64(1), lr=np.float32(1e-3),
            progress=False, seed=np.int64(0))
    assert len(h) == 1
    probe = T.fit_linear_probe(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1]), np.int64(2), epochs=np.int64(2))
    assert probe(torch.randn(1, 3)).shape == (1, 2)


def test_fit_and_probe_leave_the_callers_random_state_alone():
    import random

    import numpy as np
    import torch

    from transferlab.models import create_model

    t = _tiny_task()
    model = create_model("kitnet_s", 10)
    feats = torch.randn(6, 3)
    states = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    T.fit(model, t.loader("train", 8), epochs=1, progress=False, seed=3)
    T.fit(model, t.loader("train", 8), epochs=1, progress=False)
    T.fit_linear_probe(feats, torch.tensor([0, 1, 0, 1, 0, 1]), 2, epochs=2)
    assert torch.equal(torch.random.get_rng_state(), states[0])
    assert (np.random.get_state()[1] == states[1]).all() and random.getstate() == states[2]


def test_a_seeded_fit_gives_the_same_weights_twice():
    import torch

    from transferlab.models import create_model

    t = _tiny_task()
    out = []
    for _ in range(2):
        torch.manual_seed(0)
        m = create_model("kitnet_s", 10)
        T.fit(m, t.loader("train", 8), epochs=1, progress=False, seed=5)
        out.append(m.head.weight.detach().clone())
    assert torch.equal(*out)
