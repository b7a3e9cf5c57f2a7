"""Tasks: validation splits that never overlap training or test images, and a test split sealed until final."""

from __future__ import annotations

import pytest
import torch

from transferlab import world
from transferlab.tasks import ImageTask, SealedSplitError, TensorLoader, stratified_indices


def test_a_validation_split_leaves_train_and_test_as_they_were():
    a = world.target_task(4, 0.5, n_test_per_class=3, size=16, seed=2)
    b = world.target_task(4, 0.5, n_test_per_class=3, size=16, seed=2, n_val_per_class=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert b.splits == ("train", "val", "test") and len(b.y_val) == 30 and torch.bincount(b.y_val).tolist() == [3] * 10
    assert not any(torch.equal(v, t) for v in b.x_val for t in b.x_train)  # rendered apart from training images


def test_the_test_split_of_a_task_with_validation_is_sealed_until_final():
    t = world.target_task(2, n_test_per_class=2, n_val_per_class=2, size=16)
    assert t.sealed
    with pytest.raises(SealedSplitError, match="make every choice .* on 'val'"):
        t.loader("test")
    with pytest.raises(SealedSplitError):
        t.labels("test")
    assert len(t.loader("val", 100)) == 1 and len(t.loader("test", 100, final=True).x) == 20
    sub = t.subset(1)
    assert sub.sealed and sub.has_val and len(sub.y_train) == 10  # a subset keeps its validation split and seal
    assert not world.target_task(2, n_test_per_class=2, size=16).sealed  # no validation split: nothing to seal
    assert not world.target_task(2, n_test_per_class=2, n_val_per_class=2, size=16, seal=False).sealed


def test_asking_for_a_missing_validation_split_says_how_to_get_one():
    t = world.target_task(2, n_test_per_class=2, size=16)
    with pytest.raises(ValueError, match="n_val_per_class"):
        t.loader("val")


def test_digits_validation_images_are_neither_training_nor_test_images():
    d = world.digits_task(20, n_test_per_class=10, n_val_per_class=10, seed=1)
    rows = lambda x: {tuple(r.flatten().tolist()) for r in x}  # noqa: E731
    assert not rows(d.x_val) & rows(d.x_test)
    assert len(rows(d.x_val) & rows(d.x_train)) <= 2  # digits has a few duplicate images; the indices are disjoint
    with pytest.raises(ValueError, match="n_val_per_class \\+ n_test_per_class = 180 is too many"):
        world.digits_task(100, n_test_per_class=50, n_val_per_class=30)


def test_load_task_holds_validation_out_of_the_training_pool(tmp_path):
    from realpath import make_image_folder

    from transferlab.datasets import load_task

    root = make_image_folder(tmp_path / "imgs", classes=3, per_class=30)
    t = load_task(f"folder:{root}", 5, size=16, n_val_per_class=4, seed=0)
    u = load_task(f"folder:{root}", 8, size=16, n_val_per_class=4, seed=3)
    assert t.sealed and torch.equal(t.x_val, u.x_val)  # fixed, whatever the seed and data size
    assert not {tuple(r.flatten().tolist()) for r in t.x_val} & {tuple(r.flatten().tolist()) for r in u.x_train}
    w = load_task("world", 3, size=16, n_test_per_class=2, n_val_per_class=2)
    assert w.has_val and w.sealed


def test_mismatched_splits_are_refused():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="both x_val and y_val"):
        ImageTask("t", x, y, x, y, classes=("a", "b"), x_val=x)
    with pytest.raises(ValueError, match="val split has 4 images but 3 labels"):
        ImageTask("t", x, y, x, y, classes=("a", "b"), x_val=x, y_val=y[:3])


@pytest.mark.parametrize("labels, match", [(torch.tensor([0, -1, 1]), ">= 0"), (torch.tensor([0.0, 1.0]), "integer")])
def test_stratified_sampling_refuses_labels_it_would_silently_drop(labels, match):
    with pytest.raises(ValueError, match=match):
        stratified_indices(labels, 1)


@pytest.mark.parametrize("kwargs, match", [(dict(std=0), "std\\[0\\] must be a number > 0"),
                                           (dict(batch_size=2.7), "batch_size must be an integer >= 1, got 2.7"),
                                           (dict(mean=float("nan")), "finite")])
def test_tensor_loader_refuses_what_would_give_inf_or_a_silent_change(kwargs, match):
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=match):
        TensorLoader(x, torch.tensor([0, 1]), **kwargs)


@pytest.mark.parametrize("call, match", [
    (lambda: world.render(torch.tensor([-1]), torch.tensor([0]), torch.tensor([0])), "shape index -1 is out of range"),
    (lambda: world.render(torch.tensor([12]), torch.tensor([0]), torch.tensor([0])), "shape index 12 is out of range"),
    (lambda: world.render(torch.tensor([0]), torch.tensor([0]), torch.tensor([5])), "palette index 5"),
    (lambda: world.render(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), noise=float("nan")), "noise"),
    (lambda: world.render(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), size=32.7), "size must be"),
])
def test_render_refuses_factors_it_would_draw_wrongly(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_numpy_integers_are_sizes_and_seeds():
    import numpy as np

    t = world.target_task(np.int64(2), np.float32(0.5), seed=np.int64(1), n_test_per_class=np.int32(1), size=16)
    assert len(t.y_train) == 20
