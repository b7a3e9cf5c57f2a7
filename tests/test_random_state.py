"""No public function changes the caller's random state: torch's, NumPy's and Python's generators are the same
after a call as before it (the kit draws from private streams, seeded explicitly or forked from the caller's)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from transferlab import batchnorm, datasets, experiments, features, landscape, models, selection, swa, train, world
from transferlab.device import seeded
from transferlab.kitnet import KitNet


def _tiny():
    return world.target_task(2, 0.5, n_test_per_class=1, n_val_per_class=1, size=16)


def _fixed(build):
    """Build a test fixture (a model) on a private stream: making the test's inputs is not what is under test."""
    with seeded(0):
        return build()


def _model():
    return _fixed(lambda: KitNet(10, widths=(8,), stem_width=8))


CFG = experiments.RunConfig(model="kitnet_m-random", train_images=20, min_epochs=1, max_epochs=1,
                            n_test_per_class=1, image_size=16, probe_epochs=2)

CALLS = {
    "world.target_task": lambda: world.target_task(2, 0.3, n_test_per_class=1, size=16),
    "world.render": lambda: world.render(torch.tensor([0, 7]), torch.tensor([1, 9]), torch.tensor([0, 1]), size=16),
    "TensorLoader (shuffled)": lambda: list(_tiny().loader("train", 4, shuffle=True)),
    "models.create_model": lambda: models.create_model("kitnet_s", 3),
    "models.create_model (timm)": lambda: models.create_model("resnet18", 3),
    "models.replace_head": lambda: models.replace_head(_model(), 4),
    "train.fit (seeded)": lambda: train.fit(_model(), _tiny().loader("train", 8), epochs=1, progress=False, seed=1),
    "train.fit (unseeded)": lambda: train.fit(_model(), _tiny().loader("train", 8), epochs=1, progress=False),
    "train.evaluate (train mode)": lambda: train.evaluate(
        _fixed(lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(768, 10))),
        _tiny().loader("val"), mode="train"),
    "features.fit_linear_probe": lambda: features.fit_linear_probe(torch.ones(4, 3), torch.tensor([0, 1, 0, 1]), 2,
                                                                   epochs=2),
    "swa.train_swa": lambda: swa.train_swa(_model(), _tiny().loader("train", 8), budget=4, budgets=(1.0,),
                                           progress=False),
    "swa.check_running_average": lambda: swa.check_running_average(lambda a, w, n: (a * n + w) / (n + 1)),
    "landscape.random_directions": lambda: landscape.random_directions(_model(), 2, seed=0),
    "landscape.check_sphere_direction": lambda: landscape.check_sphere_direction(
        lambda n, seed: torch.nn.functional.normalize(torch.randn(n), dim=0)),  # the learner's fn draws globally
    "selection.logme": lambda: selection.logme(np.eye(6, 4) + 0.1, np.array([0, 1, 0, 1, 0, 1])),
    "selection.check_evidence": lambda: selection.check_evidence(lambda *a: 0.0),
    "experiments.build_model": lambda: experiments.build_model(CFG, pretrained=False, seed=3),
    "experiments.run_one": lambda: experiments.run_one(2, 0.5, "probe", None, 0, config=CFG),
    "datasets.load_task": lambda: datasets.load_task("world", 2, size=16, n_test_per_class=1),
    "batchnorm.output_spread": lambda: batchnorm.output_spread(
        _fixed(lambda: torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))).train(), torch.ones(2, 3),
        passes=2),
}


def _states():
    return torch.random.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate()


@pytest.mark.parametrize("name", sorted(CALLS))
def test_the_callers_random_state_is_left_alone(name):
    call = CALLS[name]
    call()  # warm-up: lazy imports and caches may draw once on first use, in setup code that is not the call
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = _states()
    call()
    after = _states()
    assert torch.equal(before[0], after[0]), f"{name} moved the caller's torch generator"
    assert (before[1] == after[1]).all(), f"{name} moved the caller's NumPy generator"
    assert before[2] == after[2], f"{name} moved the caller's Python generator"
