"""world.ood_split: the same classes drawn with shifted nuisances; its knobs, its errors, and the untouched task."""

from __future__ import annotations

import pytest
import torch

from transferlab import world as W
from transferlab.tasks import SealedSplitError


def _task(sim=0.5, seed=1, **kw):
    return W.target_task(3, sim, seed=seed, n_test_per_class=4, size=24, **kw)


def _one_class(n=64, shape=0, texture=0, palette=0):
    full = torch.full((n,), 0, dtype=torch.long)
    return full + shape, full + texture, full + palette


# ----------------------------------------------------------------------------------------------- the split
def test_the_split_has_the_tasks_classes_and_training_images_and_a_sealed_shifted_test_split():
    task = _task(n_val_per_class=2)
    ood = W.ood_split(task, pose=0.5, colour=0.5, background=0.5, noise=0.5)
    assert ood.classes == task.classes and ood.num_classes == 10
    assert ood.x_train is task.x_train and ood.y_train is task.y_train  # models train in distribution
    assert ood.splits == ("train", "test") and ood.sealed
    with pytest.raises(SealedSplitError):
        ood.loader("test")
    y = ood.labels("test", final=True)
    assert torch.bincount(y, minlength=10).tolist() == [4] * 10  # as many per class as the task's test split
    assert ood.info["shift"] == dict(pose=0.5, colour=0.5, background=0.5, noise=0.5)
    assert ood.info["kind"] == "target-ood" and ood.info["of"] == task.name
    assert ood.x_test.shape == task.x_test.shape and ood.x_test.dtype == torch.uint8
    # shifted images are new images: none is one of the task's own
    own = torch.cat([task.x_train, task.x_val, task.x_test])
    assert not any(torch.equal(a, b) for a in ood.x_test for b in own)


def test_counts_seed_and_a_shifted_validation_split_are_knobs():
    task = _task()
    ood = W.ood_split(task, noise=1.0, n_test_per_class=2, n_val_per_class=3)
    assert len(ood.labels("test", final=True)) == 20 and len(ood.labels("val")) == 30
    assert ood.splits == ("train", "val", "test")
    again = W.ood_split(task, noise=1.0, n_test_per_class=2, n_val_per_class=3)
    assert torch.equal(ood.x_test, again.x_test) and torch.equal(ood.x_val, again.x_val)  # seeded
    other = W.ood_split(task, noise=1.0, n_test_per_class=2, seed=7)
    assert not torch.equal(ood.x_test, other.x_test)
    assert not torch.equal(ood.x_test, W.ood_split(task, noise=0.5, n_test_per_class=2).x_test)


def test_the_task_itself_is_untouched():
    task = _task(n_val_per_class=2)
    before = [t.clone() for t in (task.x_train, task.x_val, task.x_test, task.y_train, task.y_val, task.y_test)]
    W.ood_split(task, pose=1.0, colour=1.0, background=1.0, noise=1.0, n_val_per_class=2)
    after = (task.x_train, task.x_val, task.x_test, task.y_train, task.y_val, task.y_test)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    fresh = _task(n_val_per_class=2)  # and a task drawn after an OOD split is the same task
    assert all(torch.equal(getattr(fresh, f), getattr(task, f)) for f in ("x_train", "x_val", "x_test"))


def test_every_strength_zero_draws_exactly_the_unshifted_world():
    f = torch.arange(12) % 12, torch.arange(12) % 10, torch.arange(12) % 2
    plain = W.render(*f, size=20, seed=3)
    zero = W.render(*f, size=20, seed=3, shift=dict(pose=0, colour=0, background=0, noise=0))
    assert torch.equal(plain, zero)
    assert torch.equal(plain, W.render(*f, size=20, seed=3, shift={}))


# ----------------------------------------------------------------------------------------------- each knob
def test_pose_makes_objects_smaller():
    f = _one_class()  # bright plain discs on dark backgrounds
    bright = lambda x: (x.float().mean(1) > 128).float().mean().item()  # noqa: E731  (object pixels)
    base = W.render(*f, size=32, seed=0, noise=0.0)
    moved = W.render(*f, size=32, seed=0, noise=0.0, shift=dict(pose=1.0))
    assert bright(moved) < 0.6 * bright(base)


def test_colour_lowers_contrast_but_keeps_the_palette():
    for palette in (0, 1):
        f = _one_class(palette=palette)
        base = W.render(*f, size=32, seed=0, noise=0.0).float()
        washed = W.render(*f, size=32, seed=0, noise=0.0, shift=dict(colour=1.0)).float()
        contrast = lambda x: x.max(1).values.flatten(1).std(1).mean().item()  # noqa: E731  (HSV value)
        assert contrast(washed) < 0.6 * contrast(base)
        # the palette is a class factor: bright-on-dark stays mostly dark, dark-on-bright mostly bright
        centre, corner = washed[:, :, 14:18, 14:18].mean(), washed[:, :, :3, :3].mean()
        assert (centre > corner) if palette == 0 else (centre < corner)


def test_background_adds_structure_to_the_background():
    f = _one_class()
    edges = lambda x: torch.cat([x.float()[:, :, :2].flatten(2), x.float()[:, :, -2:].flatten(2)], 2).std(2)  # noqa: E731
    base = W.render(*f, size=32, seed=0, noise=0.0)
    shifted = W.render(*f, size=32, seed=0, noise=0.0, shift=dict(background=1.0))
    assert edges(base).mean() < 0.5 and edges(shifted).mean() > 2.5  # a plain colour becomes a wave


def test_noise_raises_pixel_noise():
    f = _one_class()
    rough = lambda x: (x.float()[..., 1:] - x.float()[..., :-1]).abs().mean().item()  # noqa: E731
    base = W.render(*f, size=32, seed=0)
    noisy = W.render(*f, size=32, seed=0, shift=dict(noise=1.0))
    assert rough(noisy) > 2 * rough(base)


# ----------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(nosie=0.5), KeyError, r"no nuisance knob named 'nosie'\. Did you mean 'noise'\?"),
    (dict(palette=1.0), KeyError, r"class factors .* cannot be shifted"),
    (dict(pose=1.5), ValueError, r"pose must be a number >= 0 and <= 1, got 1\.5"),
    (dict(noise=-0.1), ValueError, r"noise must be a number >= 0 and <= 1, got -0\.1"),
    (dict(colour="a lot"), ValueError, r"colour must be a number"),
    (dict(), ValueError, r"name at least one nuisance shift"),
    (dict(noise=0.5, n_test_per_class=0), ValueError, r"n_test_per_class must be an integer >= 1, got 0"),
    (dict(noise=0.5, n_val_per_class=-1), ValueError, r"n_val_per_class must be an integer >= 0, got -1"),
    (dict(noise=0.5, seed=-2), ValueError, r"seed must be"),
])
def test_bad_knobs_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        W.ood_split(_task(), **kwargs)


def test_only_world_target_tasks_have_an_ood_split():
    with pytest.raises(TypeError, match="must be an ImageTask"):
        W.ood_split("target", noise=0.5)
    with pytest.raises(ValueError, match="of kind 'digits'.*no generative factors"):
        W.ood_split(W.digits_task(2, n_test_per_class=2, size=16), noise=0.5)
    with pytest.raises(ValueError, match="of kind 'source'"):
        W.ood_split(W.source_task(2, n_test_per_class=1, size=16), noise=0.5)
    import dataclasses

    task = _task()
    forged = dataclasses.replace(task, info=dict(task.info, similarity=1.0))  # says 1.0, holds 0.5's classes
    with pytest.raises(ValueError, match="classes are not that target's"):
        W.ood_split(forged, noise=0.5)


def test_render_checks_its_shift():
    f = _one_class(2)
    with pytest.raises(TypeError, match="shift must be a dict"):
        W.render(*f, shift="noise")
    with pytest.raises(KeyError, match="Did you mean 'background'"):
        W.render(*f, shift=dict(backgound=0.5))
    assert list(W.OOD_KNOBS) == ["pose", "colour", "background", "noise"]
