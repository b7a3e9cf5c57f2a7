import pytest
import torch

from transferlab import world as W
from transferlab.tasks import SealedSplitError


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


# ---------------------------------------------------------------------------------------------- regression targets
# sha256 of the pixels before render() could return its nuisances (recorded with torch 2.14.1): the pixels of every
# task must not change, or every zoo model and cached result would silently belong to another world.
_FROZEN_PIXELS = {
    "render": "75a3258c5735225fcab2bc3df7508faf68f42db79d4cecdab16b5eeebeef7f97",
    "target": "9417e34ec25ad399eb4e305494c64f32876a090485de197df213ad28519ef979",
    "source": "5aa586698c3db5b16ec296eab678605be73465eea36d073e484a890b58e59b61",
}


def _sha(*tensors):
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def test_render_returns_nuisances_without_changing_a_pixel(monkeypatch):
    f = torch.arange(40) % 12, torch.arange(40) % 10, torch.arange(40) % 2
    plain = W.render(*f, size=24, seed=3)
    img, nuis = W.render(*f, size=24, seed=3, return_nuisances=True)
    assert torch.equal(plain, img)
    assert set(nuis) == set(W.NUISANCES) and all(v.shape == (40,) for v in nuis.values())
    monkeypatch.setattr(W._render, "CHUNK", 7)  # chunks draw in sequence: the nuisances follow the same order
    img7, nuis7 = W.render(*f, size=24, seed=3, return_nuisances=True)
    assert torch.equal(img7, W.render(*f, size=24, seed=3))
    assert all(torch.equal(nuis7[k], W.render(*f, size=24, seed=3, return_nuisances=True)[1][k]) for k in nuis7)
    with pytest.raises(ValueError, match="return_nuisances must be True or False"):
        W.render(*f, return_nuisances="yes")
    empty, nothing = W.render(*(t[:0] for t in f), return_nuisances=True)
    assert empty.shape == (0, 3, 32, 32) and set(nothing) == set(W.NUISANCES)


@pytest.mark.skipif(not torch.__version__.startswith("2.14."), reason="pixel hashes recorded with torch 2.14")
def test_the_worlds_pixels_are_bit_identical_to_before_nuisances_were_returned():
    f = torch.arange(40) % 12, torch.arange(40) % 10, torch.arange(40) % 2
    assert _sha(W.render(*f, size=24, seed=3)) == _FROZEN_PIXELS["render"]
    t = W.target_task(3, 0.5, seed=1, n_test_per_class=2, n_val_per_class=1, size=16)
    assert _sha(t.x_train, t.x_val, t.x_test) == _FROZEN_PIXELS["target"]
    assert _sha(W.source_task(2, n_test_per_class=1, size=16).x_train) == _FROZEN_PIXELS["source"]


def test_nuisances_are_in_their_documented_ranges():
    n = 2000
    _, nuis = W.render(torch.arange(n) % 12, torch.arange(n) % 10, torch.zeros(n, dtype=torch.long), size=8,
                       return_nuisances=True)
    ranges = {"x": (-0.15, 0.15), "y": (-0.15, 0.15), "size": (0.22, 0.34), "rotation": (0, 2 * 3.1416),
              "hue": (0, 1), "background_hue": (0, 1), "saturation": (0.5, 1), "texture_frequency": (0.12, 0.20),
              "texture_orientation": (0, 3.1416)}
    for k, (lo, hi) in ranges.items():
        assert lo <= float(nuis[k].min()) and float(nuis[k].max()) <= hi, k
        assert float(nuis[k].max() - nuis[k].min()) > 0.8 * (hi - lo), f"{k} does not fill its range"


def test_the_drawn_position_and_size_are_where_the_object_is():
    n = 64
    shape = torch.zeros(n, dtype=torch.long)  # bright plain discs on a dark background
    img, nuis = W.render(shape, torch.zeros(n, dtype=torch.long), shape, size=64, noise=0.0, return_nuisances=True)
    mask = (img.float().mean(1) > img.float().mean((1, 2, 3))[:, None, None]).float()  # the bright object
    coords = (torch.arange(64) + 0.5) / 64 - 0.5  # fraction of the width from the centre
    area = mask.sum((1, 2))
    cx = (mask * coords[None, None, :]).sum((1, 2)) / area
    cy = (mask * coords[None, :, None]).sum((1, 2)) / area
    assert torch.allclose(cx, nuis["x"], atol=0.02) and torch.allclose(cy, nuis["y"], atol=0.02)
    radius = torch.sqrt(area / 3.1416) / 64  # a disc's radius is 0.9 of the object's radius
    assert torch.allclose(radius, 0.9 * nuis["size"], atol=0.02)


def test_regression_task_splits_columns_and_sealing():
    t = W.regression_task(30, n_val=10, n_test=12, size=16, seed=2)
    assert isinstance(t, W.RegressionTask) and t.splits == ("train", "val", "test") and t.sealed
    assert t.targets == ("rotation", "size", "position", "colour")
    assert t.columns == ("rotation_cos", "rotation_sin", "size", "x", "y", "hue_cos", "hue_sin") == t.classes
    assert t.num_outputs == 7 and t.y_train.shape == (30, 7) and t.y_train.dtype == torch.float32
    assert t.columns_of("position") == [3, 4] and t.columns_of("size") == [2]
    assert len(t.labels("val")) == 10
    with pytest.raises(SealedSplitError, match="sealed"):
        t.loader("test")
    assert t.labels("test", final=True).shape == (12, 7)
    circ = t.y_train[:, [0, 1]].pow(2).sum(1)  # (cos, sin) pairs lie on the unit circle
    assert torch.allclose(circ, torch.ones(30), atol=1e-5)
    again = W.regression_task(30, n_val=10, n_test=12, size=16, seed=2)
    assert torch.equal(again.x_train, t.x_train) and torch.equal(again.y_train, t.y_train)
    assert not torch.equal(W.regression_task(30, n_test=12, size=16, seed=3).y_train, t.y_train)
    # the same train/test images with or without a validation split
    plain = W.regression_task(30, n_test=12, size=16, seed=2)
    assert torch.equal(plain.x_train, t.x_train) and not plain.sealed
    assert plain.subset(10).y_train.shape == (10, 7) and torch.equal(plain.subset(10).y_train, plain.y_train[:10])
    assert "RegressionTask(" in repr(t) and "test sealed" in repr(t)


def test_rotation_is_what_the_shapes_symmetry_leaves_visible():
    shape = torch.tensor([W.SHAPES.index(s) for s in ("square", "bar", "triangle", "ell")])
    base = dict(zip(W.NUISANCES, torch.zeros(len(W.NUISANCES), 4), strict=True))
    turned = dict(base, rotation=torch.tensor([0.5 * 3.14159265, 3.14159265, 2 * 3.14159265 / 3, 0.0]))
    a, cols = W.regression_columns(base, shape, ["rotation"])
    b, _ = W.regression_columns(turned, shape, ["rotation"])
    assert cols == ("rotation_cos", "rotation_sin")
    assert torch.allclose(a, b, atol=1e-5)  # a quarter turn of a square, a half turn of a bar... look the same
    ell_quarter = W.regression_columns(dict(base, rotation=torch.full((4,), 1.5708)), shape, ["rotation"])[0]
    assert not torch.allclose(ell_quarter[3], a[3], atol=0.1)  # an L turned by a quarter turn does not
    rt = W.regression_task(200, ["rotation"], n_test=10, size=8)
    assert rt.info["targets"] == ("rotation",)


@pytest.mark.parametrize("call, error, match", [
    (lambda: W.regression_task(10, ["rotaton"]), ValueError, "unknown regression target 'rotaton'.*'rotation'"),
    (lambda: W.regression_task(10, []), ValueError, "targets is empty"),
    (lambda: W.regression_task(10, ["size", "size"]), ValueError, "twice"),
    (lambda: W.regression_task(1), ValueError, "n_train must be an integer >= 2"),
    (lambda: W.regression_task(10, n_val=1), ValueError, "n_val must be 0"),
    (lambda: W.regression_task(10, similarity=1.5), ValueError, "similarity"),
    (lambda: W.regression_task(10, n_test=12, size=8).columns_of("colour "), KeyError, "no target 'colour '"),
    (lambda: W.regression_columns({"x": torch.zeros(2)}, torch.zeros(2, dtype=torch.long)), ValueError,
     "the dict that render"),
    (lambda: W.regression_columns(W.render(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long),
                                           torch.zeros(2, dtype=torch.long), size=8, return_nuisances=True)[1],
                                  torch.zeros(2, dtype=torch.long), ["rotation"]), ValueError,
     "rotation of disc cannot be seen"),
    (lambda: W.regression_columns(W.render(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long),
                                           torch.zeros(2, dtype=torch.long), size=8, return_nuisances=True)[1],
                                  torch.zeros(3, dtype=torch.long), ["size"]), ValueError, "disagree on N"),
])
def test_regression_accessors_fail_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_regression_tasks_with_rotation_leave_round_shapes_out():
    t = W.regression_task(300, n_test=10, size=8)
    assert t.info["shapes"] == ("bar", "cross", "square", "triangle")  # no disc, no ring at similarity 1
    no_rot = W.regression_task(300, ["size"], n_test=10, size=8)  # without rotation every class may appear
    assert no_rot.columns == ("size",) and {"disc", "ring"} <= set(no_rot.info["shapes"])
