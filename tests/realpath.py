"""A stand-in for the online path, made offline: an ImageFolder on disk and a timm model with local weights.

A lesson run with ``DATA = "folder:<root>"`` and ``MODELS = TIMM_NAME`` goes through the same code as one with
``DATA = "cifar10"`` and ``MODELS = "resnet18.a1_in1k"`` on a machine with a network: ``load_task`` reads and
resizes image files to the model's ``pretrained_cfg``, and ``create_model(name, pretrained=True)`` loads the
weights found at ``$TRANSFERLAB_HOME/weights/<name>.safetensors`` instead of asking the hub.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

TIMM_NAME = "test_resnet.r160_in1k"  # timm's own tiny test model (0.47 M parameters, 160 px input)


def make_image_folder(root: Path, *, classes: int = 10, per_class: int = 16, size: int = 40, seed: int = 0) -> Path:
    """PNG files in ``root/<class>/``, rendered from the world's target task (so the classes are learnable)."""
    from transferlab.world import target_task

    task = target_task(per_class, 0.5, seed=seed, n_test_per_class=1, size=size)
    root.mkdir(parents=True, exist_ok=True)
    counts = [0] * task.num_classes
    for x, y in zip(task.x_train, task.y_train.tolist(), strict=True):
        if y >= classes:
            continue
        folder = root / f"class_{y:02d}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(x.permute(1, 2, 0).numpy()).save(folder / f"img_{counts[y]:03d}.png")
        counts[y] += 1
    return root


def install_timm_weights(home: Path, name: str = TIMM_NAME, seed: int = 0) -> Path:
    """Save a (randomly initialised) timm model where the kit looks for local pretrained weights."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    path = home / "weights" / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def make_offline_home(home: Path, *, classes: int = 10, per_class: int = 16) -> dict:
    """A ``$TRANSFERLAB_HOME`` with the user's zoo linked in (read-only use), timm weights and an ImageFolder.

    Returns the parameters a lesson needs for the real path: ``dict(DATA=..., MODELS=...)``.
    """
    from transferlab import zoo

    home.mkdir(parents=True, exist_ok=True)
    if zoo.zoo_dir().exists() and not (home / "zoo").exists():
        os.symlink(zoo.zoo_dir(), home / "zoo")
    install_timm_weights(home)
    folder = make_image_folder(home / "images", classes=classes, per_class=per_class)
    return dict(DATA=f"folder:{folder}", MODELS=TIMM_NAME)
