"""NumPy integer and float scalars are numbers wherever the kit accepts Python numbers (an ``np.int64`` from
``df["k"].max()`` or ``np.arange`` is the usual way a learner passes one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from transferlab import experiments, freeze, landscape, models, swa, world
from transferlab.claims import Band, Compare
from transferlab.kitnet import KitNet
from transferlab.tasks import TensorLoader

i, f = np.int64, np.float32

CALLS = {
    "world.target_task": lambda: world.target_task(i(2), f(0.5), seed=i(1), n_test_per_class=i(1),
                                                   n_val_per_class=i(1), size=i(16)),
    "world.source_task": lambda: world.source_task(i(1), n_test_per_class=i(1), size=i(16), seed=np.int32(0)),
    "world.digits_task": lambda: world.digits_task(i(2), n_test_per_class=i(2), n_val_per_class=i(1), size=i(16)),
    "world.render": lambda: world.render(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), size=i(16),
                                         seed=i(2), noise=f(0.1)),
    "TensorLoader": lambda: list(TensorLoader(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.arange(3),
                                              batch_size=i(2), seed=i(1), shuffle=True)),
    "create_model": lambda: models.create_model("kitnet_s", i(4), seed=i(1)),
    "KitNet widths": lambda: KitNet(i(3), widths=(i(8), i(16)), stem_width=i(8)),
    "replace_head": lambda: models.replace_head(KitNet(3, widths=(8,)), i(5), seed=i(0)),
    "freeze_stages": lambda: freeze.freeze_stages(KitNet(3, widths=(8, 16)), i(2)),
    "freeze_by_idxs": lambda: freeze.freeze_by_idxs(KitNet(3, widths=(8,)), [i(0), i(-1)]),
    "random_directions": lambda: landscape.random_directions(torch.nn.Linear(2, 2), i(3), seed=i(4)),
    "ray_width": lambda: landscape.ray_width(pd.DataFrame(dict(solution="a", ray=0, distance=[0.0, 1.0],
                                                               test_error=[0.1, 0.5])), rise=np.float64(0.2)),
    "swa_epochs": lambda: swa.swa_epochs(i(8), budgets=(f(1.0), np.float64(1.5)), swa_start=f(0.75)),
    "sgd_lr_factor": lambda: swa.sgd_lr_factor(f(0.7), final_ratio=np.float64(0.01)),
    "RunConfig": lambda: experiments.RunConfig(lr_scratch=f(4e-3), batch_size=i(32), train_images=i(100)).epochs(i(20)),
    "Compare": lambda: Compare("a", "b", min_effect=f(0.1)).judge({"a": np.array([1.0, 1.1]), "b": [f(0.1), f(0.2)]}),
    "Band": lambda: Band("r", np.float64(5), i(20), log=True).judge({"r": np.array([10, 11, 9])}),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_numpy_scalars_are_accepted(name):
    CALLS[name]()
