import pytest
import torch

from transferlab import world as W


def test_render_is_deterministic_and_uint8():
    f = torch.tensor([0, 3, 7, 11]), torch.tensor([0, 2, 6, 9]), torch.tensor([0, 1, 0, 1])
    a = W.render(*f, size=24, seed=5)
    b = W.render(*f, size=24, seed=5)
    c = W.render(*f, size=24, seed=6)
    assert a.dtype == torch.uint8 and a.shape == (4, 3, 24, 24)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_render_in_several_chunks_is_deterministic(monkeypatch):
    monkeypatch.setattr(W._render, "CHUNK", 3)  # 10 images -> 4 chunks drawn in sequence from one generator
    f = torch.arange(10) % 12, torch.arange(10) % 10, torch.arange(10) % 2
    a = W.render(*f, size=16, seed=1)
    assert a.shape == (10, 3, 16, 16)
    assert torch.equal(a, W.render(*f, size=16, seed=1))
    assert len({img.float().mean().item() for img in a}) == 10  # no chunk repeats another's draws


def test_palettes_differ_as_designed():
    zeros, ones = torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)
    bright = W.render(zeros, zeros, zeros)
    dark = W.render(zeros, zeros, ones)
    # bright-on-dark images are mostly dark; dark-on-bright mostly bright
    assert bright.float().mean() < 90 < dark.float().mean()


def test_source_task_shapes_and_labels():
    t = W.source_task(3, n_test_per_class=2, size=16, seed=0)
    assert t.num_classes == 20 and len(t.y_train) == 60 and len(t.y_test) == 40
    assert torch.bincount(t.y_train, minlength=20).tolist() == [3] * 20
    assert t.x_train.shape == (60, 3, 16, 16)
    s = W.source_task(3, n_test_per_class=2, size=16, seed=0, label="shape")
    assert s.num_classes == 6 and int(s.y_train.max()) < 6
    assert torch.equal(s.x_train, t.x_train)  # same images, coarser labels


def test_target_classes_swap_whole_factors_monotonically():
    prev = set()
    for sim in (1.0, 0.8, 0.5, 0.2, 0.0):
        cls = W.target_classes(sim)
        assert len(set(cls)) == 10, f"classes collide at similarity {sim}"
        novel = {(c, f) for c, trip in enumerate(cls) for f, v in enumerate(trip) if v >= (6, 5, 1)[f]}
        assert prev <= novel, "a lower similarity must keep every novel slot of a higher one"
        assert len(novel) == round((1 - sim) * 30)
        prev = novel
    assert all(s < 6 and t < 5 and p == 0 for s, t, p in W.target_classes(1.0))
    assert all(s >= 6 and t >= 5 and p == 1 for s, t, p in W.target_classes(0.0))


def test_target_held_out_from_source():
    src = {(W.SHAPES[s], W.TEXTURES[t]) for s, t in W._SOURCE_COMBOS}
    tgt = {(W.SHAPES[s], W.TEXTURES[t]) for s, t, _ in W.target_classes(1.0)}
    assert not src & tgt and len(src | tgt) == 30


def test_target_test_split_does_not_depend_on_n_per_class():
    a = W.target_task(2, 0.5, n_test_per_class=3, size=16, seed=1)
    b = W.target_task(7, 0.5, n_test_per_class=3, size=16, seed=1)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    c = W.target_task(2, 0.5, n_test_per_class=3, size=16, seed=2)
    assert not torch.equal(a.x_test, c.x_test)


def test_digits_task():
    t = W.digits_task(5, n_test_per_class=10, size=24)
    assert t.num_classes == 10 and t.x_train.shape == (50, 3, 24, 24) and len(t.y_test) == 100
    assert set(t.y_train.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="smallest class"):
        W.digits_task(170, n_test_per_class=10)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: W.target_task(5, 1.5), "similarity must be a number >= 0 and <= 1, got 1.5"),
        (lambda: W.target_task(5, -0.1), "got -0.1"),
        (lambda: W.target_task(0, 0.5), "n_per_class must be an integer >= 1, got 0"),
        (lambda: W.target_task(2.5, 0.5), "got 2.5"),
        (lambda: W.source_task(5, label="colour"), "label must be"),
        (lambda: W.render(torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                          torch.zeros(1, dtype=torch.long), size=4), "size must be an integer >= 8 and <= 256, got 4"),
        (lambda: W.target_task(5, 0.5, seed=-1), "seed must be"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_loader_normalises_batches_and_shuffles_reproducibly():
    t = W.target_task(4, 1.0, n_test_per_class=2, size=16)
    batches = list(t.loader("train", 16, seed=3))
    assert [len(y) for _, y in batches] == [16, 16, 8]
    x, _ = batches[0]
    assert x.dtype == torch.float32
    assert torch.equal(torch.cat([y for _, y in t.loader("train", 16, seed=3)]), torch.cat([y for _, y in batches]))
    test = list(t.loader("test", 100))
    assert torch.equal(test[0][1], t.y_test)  # test split is not shuffled
    manual = (t.x_test.float() / 255 - W.WORLD_MEAN[0]) / W.WORLD_STD[0]
    assert torch.allclose(test[0][0], manual, atol=1e-5)
    with pytest.raises(ValueError, match="split"):
        t.loader("val")


def test_subset_is_stratified_and_seeded():
    t = W.target_task(10, 1.0, n_test_per_class=2, size=16)
    s = t.subset(3, seed=0)
    assert torch.bincount(s.y_train, minlength=10).tolist() == [3] * 10
    assert torch.equal(s.x_train, t.subset(3, seed=0).x_train)
    with pytest.raises(ValueError, match="fewer than n_per_class"):
        t.subset(11)


def test_world_mean_std_match_source():
    t = W.source_task(100, n_test_per_class=1, seed=0)
    x = t.x_train.float() / 255
    assert abs(x.mean().item() - W.WORLD_MEAN[0]) < 0.01
    assert abs(x.std().item() - W.WORLD_STD[0]) < 0.01
