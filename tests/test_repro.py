"""transferlab.repro: the bitwise comparison of weights, the pins of a figure, and training runs per thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab import repro
from transferlab.world import target_task


# ------------------------------------------------------------------------------------------ bitwise_equal
def test_identical_states_are_equal_whatever_their_container():
    state = {"w": torch.randn(3, 4), "b": torch.zeros(4), "n": torch.tensor(7)}
    r = repro.bitwise_equal(state, {k: v.clone() for k, v in state.items()})
    assert r["equal"] and r["max_abs_diff"] == 0.0 and r["n_tensors"] == 3 and r["n_different"] == 0
    assert all(v["equal"] for v in r["tensors"].values())
    arrays = [v.numpy() for v in state.values()]  # a list of NumPy arrays against torch tensors
    assert repro.bitwise_equal(arrays, [torch.from_numpy(a.copy()) for a in arrays])["equal"]


def test_one_changed_element_is_found_with_its_size_and_tensor():
    a = {"w": torch.zeros(5), "b": torch.ones(2)}
    b = {"w": torch.zeros(5), "b": torch.ones(2)}
    b["w"][3] = 1e-7  # a last-bit-sized change
    r = repro.bitwise_equal(a, b)
    assert not r["equal"] and r["n_different"] == 1
    assert r["tensors"]["b"] == {"equal": True, "max_abs_diff": 0.0}
    assert not r["tensors"]["w"]["equal"]
    assert r["max_abs_diff"] == pytest.approx(1e-7, rel=1e-3)


def test_bitwise_means_bits_signed_zero_differs_and_a_nan_equals_itself():
    pos, neg = torch.tensor([0.0, 1.0]), torch.tensor([-0.0, 1.0])
    r = repro.bitwise_equal({"x": pos}, {"x": neg})
    assert not r["equal"] and r["max_abs_diff"] == 0.0  # equal numbers, different bits
    nan = torch.tensor([float("nan"), 2.0])
    assert repro.bitwise_equal({"x": nan}, {"x": nan.clone()})["equal"]
    r = repro.bitwise_equal({"x": nan}, {"x": torch.tensor([1.0, 2.0])})
    assert not r["equal"] and np.isnan(r["max_abs_diff"])


def test_a_different_dtype_is_not_bitwise_equal_even_with_equal_values():
    r = repro.bitwise_equal({"x": np.ones(3, np.float32)}, {"x": np.ones(3, np.float64)})
    assert not r["equal"] and r["max_abs_diff"] == 0.0


def test_bfloat16_and_empty_tensors_are_compared():
    a = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    assert repro.bitwise_equal({"a": a, "e": torch.empty(0)}, {"a": a.clone(), "e": torch.empty(0)})["equal"]
    r = repro.bitwise_equal({"a": a}, {"a": torch.tensor([1.0, 2.5], dtype=torch.bfloat16)})
    assert not r["equal"] and r["max_abs_diff"] == 0.5


def test_states_of_different_models_are_refused_with_the_names():
    with pytest.raises(ValueError, match=r"only in the first \['b'\], only in the second \['c'\]"):
        repro.bitwise_equal({"a": torch.zeros(1), "b": torch.zeros(1)}, {"a": torch.zeros(1), "c": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"tensor 'a' has shape \(2,\) in the first state and \(3,\)"):
        repro.bitwise_equal({"a": torch.zeros(2)}, {"a": torch.zeros(3)})
    with pytest.raises(TypeError, match="state dict"):
        repro.bitwise_equal(torch.zeros(2), torch.zeros(2))


def test_the_state_dicts_of_two_trained_models():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    m(torch.randn(8, 4))  # moves the BatchNorm statistics only
    r = repro.bitwise_equal(before, m.state_dict())
    changed = {k for k, v in r["tensors"].items() if not v["equal"]}
    assert changed == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}


# ------------------------------------------------------------------------------------------ pins
def test_thread_counts_dedupe_all_threads():
    assert repro.thread_counts(2) == [1, 2]
    assert repro.thread_counts(8) == [1, 2, 8]
    assert repro.thread_counts(1) == [1]


def test_pins_name_what_a_figure_depends_on():
    p = repro.pins(seed=3, threads=2, deterministic=True, device="cpu", epochs=8)
    for key in ("seed", "torch threads", "deterministic algorithms", "device", "cpu", "python", "torch", "numpy",
                "transferlab commit"):
        assert key in p, key
    assert (p["seed"], p["torch threads"], p["deterministic algorithms"], p["epochs"]) == (3, 2, True, 8)
    assert p["torch"] == torch.__version__
    assert repro.pins(seed=0)["torch threads"] == torch.get_num_threads()


def test_compare_pins_and_its_exercise():
    published = dict(seed=0, threads=1, torch="2.0")
    other = dict(seed=0, threads=2, torch="2.1", extra="x")
    table = repro.compare_pins(published, other)
    assert table.loc[~table["same"], "pin"].tolist() == ["threads", "torch", "extra"]
    assert table.set_index("pin").loc["extra", "published"] == "(not recorded)"
    assert repro.check_pins(["torch", "threads", "extra"], published, other)
    wrong = repro.check_pins(["threads"], published, other)
    assert not wrong and "2 differing pin(s) are missing" in repr(wrong)
    assert "do not differ" in repr(repro.check_pins(["threads", "torch", "extra", "seed"], published, other))
    assert "not pins of these records" in repr(repro.check_pins(["threads", "cuda"], published, other))
    assert "no answer yet" in repr(repro.check_pins(None, published, other))


# ------------------------------------------------------------------------------------------ runs per thread count
@pytest.fixture(scope="module")
def tiny_task():
    return target_task(2, 0.5, seed=0, size=16, n_test_per_class=1, n_val_per_class=2)


@pytest.mark.slow
def test_runs_in_a_fresh_process_repeat_bit_for_bit_at_a_fixed_thread_count(tiny_task):
    kw = dict(model="kitnet_s-src", epochs=1, head_epochs=1, batch=10)
    first = repro.run_threads(tiny_task, [("all at once", 0), ("head first", 1)], threads=1, **kw)
    again = repro.run_threads(tiny_task, [("all at once", 0)], threads=1, **kw)
    two = repro.run_threads(tiny_task, [("all at once", 0), ("all at once", 0, False)], threads=2,
                            deterministic=True, **kw)
    assert [(r["recipe"], r["seed"], r["threads"]) for r in first] == [("all at once", 0, 1), ("head first", 1, 1)]
    assert two[0]["threads"] == 2 and two[0]["deterministic"] and not first[0]["deterministic"]
    assert not two[1]["deterministic"] and not two[1]["pins"]["deterministic algorithms"]  # the per-job switch
    assert repro.bitwise_equal(two[0]["state"], two[1]["state"])["equal"]  # same process, threads, job
    assert repro.bitwise_equal(first[0]["state"], again[0]["state"])["equal"]
    assert first[0]["val_acc"] == again[0]["val_acc"]
    assert not repro.bitwise_equal(first[0]["state"], first[1]["state"])["equal"]  # another recipe and seed
    assert first[0]["pins"]["torch threads"] == 1 and two[0]["pins"]["deterministic algorithms"] is True
    assert set(first[0]["state"]) == set(two[0]["state"]) and all(0 <= r["val_acc"] <= 1 for r in first + two)


def test_run_threads_refuses_bad_jobs_before_starting(tiny_task):
    with pytest.raises(ValueError, match="unknown recipe 'head last'; expected one of"):
        repro.run_threads(tiny_task, [("head last", 0)], model="kitnet_s-src", threads=1)
    with pytest.raises(ValueError, match=r"a job is \(recipe, seed\)"):
        repro.run_threads(tiny_task, [("all at once",)], model="kitnet_s-src", threads=1)
    with pytest.raises(ValueError, match="no jobs"):
        repro.run_threads(tiny_task, [], model="kitnet_s-src", threads=1)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        repro.run_threads(tiny_task, [("all at once", 0)], model="kitnet_s-src", threads=0)
