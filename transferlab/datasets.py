"""Real datasets for the online path, as the same ``ImageTask`` the offline world gives.

Every lesson builds its data with one call, whatever ``DATA`` says::

    task = load_task(DATA, n_per_class=20, seed=0, size=32)      # DATA = "world" (offline) or "cifar10", ...

- ``"world"`` / ``"target"``, ``"source"``, ``"digits"``: the offline transfer world (:mod:`transferlab.world`).
  Only ``"world"``/``"target"`` have a ``similarity`` knob; for the others, as for real data, a value given is
  not applied and a warning says so.
- ``"cifar10"``, ``"cifar100"``, ``"pets"`` (Oxford-IIIT Pets), ``"eurosat"`` (satellite images, a dissimilar
  domain for ImageNet models): downloaded once into ``$TRANSFERLAB_HOME/data`` and verified against the checksums
  torchvision publishes for them.
- ``"folder:/path/to/images"`` (or an existing directory): any ``ImageFolder`` (one sub-folder per class,
  optionally split into ``train/`` and ``test/`` or ``val/``).

The result is a :class:`transferlab.tasks.ImageTask`: uint8 images resized to ``size`` (shorter side, then a
centre crop), labels, a stratified and seeded training subset of ``n_per_class`` images per class, and the
normalisation of the model that will read them (``mean``/``std`` from its ``pretrained_cfg``, ImageNet's by
default). The test split never depends on ``seed`` or ``n_per_class``, so accuracies at different data sizes and
seeds are measured on the same images.

Downloads (:func:`download`, :func:`fetch`) are resumable, atomic and verified, and fail fast offline with the
URL and the manual route, creating nothing; they never write outside ``$TRANSFERLAB_HOME/data``. Decoded images
and read catalogues stay in memory between calls; :func:`clear_caches` frees them.

This module is the public face; the work is done in :mod:`transferlab._catalogue` (what each dataset is),
:mod:`transferlab._download` (getting it onto disk) and :mod:`transferlab._images` (decoding and resizing).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from ._catalogue import DATASETS, WORLD_NAMES, Catalogue, DatasetSpec, Resource, dataset_spec, folder_catalogue
from ._download import ChecksumError, DownloadError, data_dir, download, fetch, is_fetched
from ._images import DECODED_CACHE, materialise, resize_images
from ._validate import as_int, as_seed
from .device import resolve_device
from .features import extract_features, fit_linear_probe
from .tasks import ImageTask, TooFewImagesError, stratified_indices
from .world import digits_task, source_task, target_task
from .zoo import ZOO

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Resource",
    "DatasetSpec",
    "DATASETS",
    "WORLD_NAMES",
    "RECOMMENDED_BACKBONES",
    "ChecksumError",
    "TooFewImagesError",
    "DownloadError",
    "data_dir",
    "download",
    "fetch",
    "is_fetched",
    "load_task",
    "clear_caches",
    "stratified_indices",
    "resize_images",
    "similarity_ladder",
    "measure_similarity",
    "backbones",
    "suggested_batch_size",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SPLIT_SEED = 20_240_601  # fixed: the train/test split of unsplit datasets never changes with ``seed``
_SIMILARITY_NAMES = ("world", "target")  # the world names with a similarity knob


# ----------------------------------------------------------------------------------------------------------
# From a name to an ImageTask.
def _cfg_of(model) -> dict:
    if model is None:
        return {}
    if isinstance(model, dict):
        return model
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, dict):
        raise TypeError(f"model must be a kit or timm model (with .pretrained_cfg) or a cfg dict, got "
                        f"{type(model).__name__}")
    return cfg


def _count_or_none(name: str, value) -> int | None:
    return None if value is None else as_int(name, value, min=1)


def load_task(name: str, n_per_class: int | None = None, *, seed: int = 0, size: int | None = None,
              n_test_per_class: int | None = None, similarity: float | None = None, model=None, download: bool = True,
              progress: bool = True, n_val_per_class: int = 0, seal: bool | None = None) -> ImageTask:
    """The task named by a lesson's ``DATA`` knob, as an ``ImageTask`` whatever the source.

    Parameters
    ----------
    name : str
        ``"world"`` (= ``"target"``, the world's target task at ``similarity``), ``"source"``, ``"digits"``;
        a real dataset in ``DATASETS``; or ``"folder:/path"`` / an existing directory (an ImageFolder).
    n_per_class : int or None
        Training images per class, stratified and drawn with ``seed`` (``None``: every training image; required
        for world tasks).
    seed : int
        Which training images are drawn (world tasks: also which images are rendered).
    size : int, optional
        Image side in pixels. Default: the model's ``pretrained_cfg["input_size"]`` when ``model`` is given,
        else 32 for world tasks and 224 for real ones.
    n_test_per_class : int or None
        Test images per class. Default: 50 for world tasks, the whole test split for real data. The same images
        whatever ``seed`` and ``n_per_class``.
    similarity : float, optional
        For ``"world"``/``"target"``: the target task's similarity to the source task (default 1.0). Every other
        task (``"source"``, ``"digits"``, real data, folders) has a fixed similarity to the pretraining data: a
        value given for one is not applied, and a ``UserWarning`` says so.
    model : nn.Module or dict, optional
        The model (or its ``pretrained_cfg``) that will read the images: sets ``mean``, ``std``, the default
        ``size`` and the resize interpolation. Default: the world's statistics for world tasks, ImageNet's for
        real ones.
    download : bool
        Fetch a real dataset that is not on disk yet (fails fast with the manual route when offline).
    progress : bool
        Show progress bars while downloading and decoding.
    n_val_per_class : int
        Validation images per class (0: no validation split). World tasks render their own; real data holds them
        out of the training pool with a fixed seed, so the validation images never depend on ``seed`` or
        ``n_per_class`` and are never among the training images.
    seal : bool, optional
        Seal the test split (``loader("test")`` then needs ``final=True``). Default: sealed exactly when there is
        a validation split.

    Examples
    --------
    >>> t = load_task("world", 3, size=16, n_test_per_class=2); t.num_classes, len(t.y_train), t.image_size
    (10, 30, 16)
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a string (dataset name or 'folder:/path'), got {type(name).__name__}")
    name = os.fspath(name)
    cfg = _cfg_of(model)
    n_per_class = _count_or_none("n_per_class", n_per_class)
    n_test_per_class = _count_or_none("n_test_per_class", n_test_per_class)
    n_val_per_class = as_int("n_val_per_class", n_val_per_class, min=0)
    seed = as_seed(seed)
    if size is None:
        size = cfg["input_size"][-1] if "input_size" in cfg else (32 if name in WORLD_NAMES else 224)
    size = as_int("size", size, min=1)
    if similarity is not None and name not in _SIMILARITY_NAMES:
        warnings.warn(f"similarity={similarity!r} only applies to the world's target task ('world' or 'target'); "
                      f"{name!r} has a fixed similarity to the pretraining data (measure it with "
                      f"measure_similarity)", stacklevel=2)
    if name in WORLD_NAMES:
        task = _world_task(name, n_per_class, seed, size, n_test_per_class, 1.0 if similarity is None else similarity,
                           n_val_per_class, seal)
        return task.with_stats(cfg["mean"], cfg["std"]) if "mean" in cfg else task
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    interpolation = cfg.get("interpolation", "bilinear")
    if name.startswith("folder:") or (name not in DATASETS and Path(name).is_dir()):
        root = Path(name.removeprefix("folder:")).expanduser()
        cat, title, info = folder_catalogue(root), f"folder[{root.name}]", dict(kind="folder", root=str(root))
    else:
        spec = dataset_spec(name)
        if not is_fetched(name):
            if not download:
                raise FileNotFoundError(f"dataset {name!r} is not downloaded in {data_dir() / name}; run "
                                        f"`python data_scripts/fetch_datasets.py {name}` or pass download=True")
            fetch(name, progress=progress)
        cat = _dataset_catalogue(name, str(data_dir() / name))
        title, info = name, dict(kind="real", dataset=spec.title, similarity_prior=spec.similarity, note=spec.note)
    return _task_from_catalogue(cat, title, info, n_per_class, seed, size, n_test_per_class, mean, std,
                                interpolation, progress, n_val_per_class, seal)


@functools.lru_cache(maxsize=2)
def _dataset_catalogue(name: str, root: str) -> Catalogue:
    """A downloaded dataset's catalogue, read once per process (CIFAR's arrays take seconds to unpickle)."""
    return DATASETS[name].catalogue(Path(root))


def _world_task(name: str, n_per_class: int | None, seed: int, size: int, n_test_per_class: int | None,
                similarity: float, n_val: int, seal: bool | None) -> ImageTask:
    if n_per_class is None:
        raise ValueError(f"n_per_class is required for the world task {name!r} (an integer >= 1)")
    n_test = 50 if n_test_per_class is None else n_test_per_class
    if name in _SIMILARITY_NAMES:
        return target_task(n_per_class, similarity, seed=seed, size=size, n_test_per_class=n_test,
                           n_val_per_class=n_val, seal=seal)
    if name == "source":
        if n_val:
            raise ValueError("the source task is for pretraining and has no validation split; n_val_per_class "
                             "applies to target tasks")
        return source_task(n_per_class, seed=seed, size=size, n_test_per_class=n_test)
    return digits_task(n_per_class, seed=seed, size=size, n_test_per_class=n_test, n_val_per_class=n_val, seal=seal)


def _task_from_catalogue(cat: Catalogue, title: str, info: dict, n_per_class: int | None, seed: int, size: int,
                         n_test_per_class: int | None, mean: tuple, std: tuple, interpolation: str,
                         progress: bool, n_val: int = 0, seal: bool | None = None) -> ImageTask:
    k = len(cat.classes)
    train_pool = torch.arange(len(cat.train_y))
    test_images, test_y = cat.test_images, cat.test_y
    if cat.test_y is None:  # no official split: hold out a fixed 20% of every class (not seed-dependent)
        gen = torch.Generator().manual_seed(_SPLIT_SEED)
        test_mask = torch.zeros(len(cat.train_y), dtype=torch.bool)
        for c in range(k):
            members = (cat.train_y == c).nonzero(as_tuple=True)[0]
            test_mask[members[torch.randperm(len(members), generator=gen)][: max(1, len(members) // 5)]] = True
        train_pool, test_pool = (~test_mask).nonzero(as_tuple=True)[0], test_mask.nonzero(as_tuple=True)[0]
        test_images, test_y = cat.train_images, cat.train_y
    else:
        test_pool = torch.arange(len(test_y))
    picks = {}
    if n_val:  # a fixed validation set held out of the training pool: independent of seed and n_per_class
        try:
            val_pick = train_pool[stratified_indices(cat.train_y[train_pool], n_val, seed=_SPLIT_SEED + 1,
                                                     num_classes=k, split="val")]
        except TooFewImagesError as err:
            raise TooFewImagesError(f"{title}: the training split's class {cat.classes[err.label]!r} has only "
                                    f"{err.available} images, fewer than n_val_per_class={n_val}", split="val",
                                    label=err.label, available=err.available, requested=n_val) from None
        keep = torch.ones(len(cat.train_y), dtype=torch.bool)
        keep[val_pick] = False
        train_pool = train_pool[keep[train_pool]]
        picks["val"] = val_pick.sort().values
    for split, pool, labels, n, s in (("train", train_pool, cat.train_y, n_per_class, seed),
                                      ("test", test_pool, test_y, n_test_per_class, _SPLIT_SEED)):
        try:
            picks[split] = pool[stratified_indices(labels[pool], n, seed=s, num_classes=k, split=split)]
        except TooFewImagesError as err:
            knob = "n_per_class" if split == "train" else "n_test_per_class"
            hint = "" if split == "train" else "; n_test_per_class=None takes the whole test split"
            raise TooFewImagesError(f"{title}: the {split} split's class {cat.classes[err.label]!r} has only "
                                    f"{err.available} images, fewer than {knob}={n}{hint}", split=split,
                                    label=err.label, available=err.available, requested=n) from None
    tr, te = picks["train"], picks["test"]
    x_train = materialise(cat.train_images, tr, size, interpolation, desc=f"{title} train", progress=progress)
    x_test = materialise(test_images, te, size, interpolation, desc=f"{title} test", progress=progress)
    x_val = y_val = None
    if n_val:
        va = picks["val"]
        x_val = materialise(cat.train_images, va, size, interpolation, desc=f"{title} val", progress=progress)
        y_val = cat.train_y[va].clone()
    info = dict(info, seed=seed, n_per_class=n_per_class, size=size)
    return ImageTask(title, x_train, cat.train_y[tr].clone(), x_test, test_y[te].clone(), cat.classes,
                     mean, std, info, x_val=x_val, y_val=y_val, sealed=n_val > 0 if seal is None else bool(seal))


def clear_caches() -> None:
    """Free the memory :func:`load_task` keeps between calls: decoded images and read dataset catalogues.

    A lesson reloads its data for every seed and strategy, so decoded, resized images (up to
    ``$TRANSFERLAB_DECODE_CACHE_MB``, default 1024 MB) and the last two datasets' catalogues (CIFAR's arrays:
    ~180 MB each) stay in memory. Call this when switching to other work; the next ``load_task`` reads the
    files again. Files on disk are never touched.

    Examples
    --------
    >>> clear_caches()
    """
    DECODED_CACHE.clear()
    _dataset_catalogue.cache_clear()


# ----------------------------------------------------------------------------------------------------------
# Similarity: a prior per dataset, and a measured proxy.
def similarity_ladder(data: str = "world") -> list[dict]:
    """The rungs of lesson 01's similarity axis: world similarities offline, real datasets online.

    ``data="world"`` gives similarities 1.0, 0.5, 0.0 of the world's target task; ``data="real"`` gives every
    real dataset, most similar to ImageNet first (by prior; measure with :func:`measure_similarity`); a single
    real dataset name gives just that one. Each rung is ``dict(name=, similarity=, label=)``: pass ``name`` and
    ``similarity`` to :func:`load_task`.

    Examples
    --------
    >>> [r["label"] for r in similarity_ladder("world")]
    ['world sim=1', 'world sim=0.5', 'world sim=0']
    """
    if data in WORLD_NAMES:
        return [dict(name="world", similarity=s, label=f"world sim={s:g}") for s in (1.0, 0.5, 0.0)]
    names = sorted(DATASETS, key=lambda n: -DATASETS[n].similarity) if data == "real" else [data]
    rungs = []
    for n in names:
        spec = dataset_spec(n)
        rungs.append(dict(name=n, similarity=spec.similarity, label=f"{n} (prior {spec.similarity:g})"))
    return rungs


def measure_similarity(task: ImageTask, model, *, device=None, seed: int = 0, batch_size: int = 256,
                       epochs: int = 100) -> dict:
    """A measured proxy of how close ``task`` is to what ``model`` was pretrained on: a linear probe's accuracy.

    1. Features: the model's frozen pre-logit features (``forward_head(forward_features(x), pre_logits=True)``,
       eval mode) of every image of the task's training and test splits, normalised with the task's mean/std.
    2. Probe: :func:`transferlab.train.fit_linear_probe`, a linear classifier on the standardised training
       features, trained full-batch with AdamW (``epochs`` steps, lr 1e-2, weight decay 1e-4, initialised
       from ``seed``).
    3. ``probe_acc``: its accuracy on the test split; ``chance`` = 1 / number of classes;
       ``score`` = (probe_acc - chance) / (1 - chance): 0 at chance, 1 when perfect (negative below chance).

    Higher means the pretrained features already separate the task's classes. It is a proxy, not the world's
    ``similarity`` knob: it also grows with how easy the task is.

    Parameters
    ----------
    task : ImageTask
    model : nn.Module
        A kit or timm model (``forward_features`` and ``forward_head``); its weights are not changed.
    device : str or torch.device, optional
        Where to run the model (default: where it is).
    seed, batch_size, epochs : int
        The probe's initialisation, the feature-extraction batch size, the probe's full-batch steps.

    Returns
    -------
    dict(probe_acc=, chance=, score=)
    """

    if not isinstance(task, ImageTask):
        raise TypeError(f"task must be an ImageTask, got {type(task).__name__}")
    seed, batch_size = as_seed(seed), as_int("batch_size", batch_size, min=1)
    epochs = as_int("epochs", epochs, min=1)
    f_train, y_train = extract_features(model, task.loader("train", batch_size, shuffle=False), device=device)
    f_test, y_test = extract_features(model, task.loader("test", batch_size), device=device)
    probe = fit_linear_probe(f_train, y_train, task.num_classes, epochs=epochs, seed=seed)
    with torch.no_grad():
        acc = (probe(f_test).argmax(1) == y_test).float().mean().item()
    chance = 1.0 / task.num_classes
    return dict(probe_acc=acc, chance=chance, score=(acc - chance) / (1.0 - chance))


# ----------------------------------------------------------------------------------------------------------
# Models for the online path.
RECOMMENDED_BACKBONES = {
    # small ImageNet backbones that fine-tune in minutes on a laptop CPU at 224 px (parameters: 2-12 M)
    "cpu": ("resnet18.a1_in1k", "mobilenetv3_large_100.ra_in1k", "efficientnet_b0.ra_in1k",
            "convnext_atto.d2_in1k", "regnety_008.pycls_in1k", "deit_tiny_patch16_224.fb_in1k"),
    # stronger backbones for one GPU (parameters: 12-30 M); AMP and batches of 128-256
    "gpu": ("resnet50.a1_in1k", "convnext_tiny.in12k_ft_in1k", "vit_small_patch16_224.augreg_in21k_ft_in1k",
            "efficientnet_b3.ra2_in1k", "regnety_032.ra_in1k", "resnet18.a1_in1k"),
}


def backbones(models: str | Sequence[str] = "zoo", device=None) -> list[str]:
    """Model names for a lesson's ``MODELS`` knob: ``"zoo"`` (the kit's), ``"timm"`` (recommended for the device),
    or an explicit list / comma-separated string of names passed through.

    Examples
    --------
    >>> backbones("timm", device="cpu")[0]
    'resnet18.a1_in1k'
    """

    if models == "zoo":  # the image models (the text ones are lesson 06's)
        return [n for n, s in ZOO.items() if s.kind == "image"]
    if models == "timm":
        return list(RECOMMENDED_BACKBONES["gpu" if resolve_device(device).type == "cuda" else "cpu"])
    names = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    if not names or not all(isinstance(m, str) and m for m in names):
        raise ValueError(f"MODELS must be 'zoo', 'timm', or a list of model names, got {models!r}")
    return names


def suggested_batch_size(device=None, image_size: int = 224) -> int:
    """A batch size that fits comfortably: 32 on CPU at 224 px, 64 on MPS, 256 on CUDA (scaled by pixel count).

    The base for the device is scaled by ``(224 / image_size) ** 2``, then clipped to at least 8 and at most
    256 (CPU, MPS) or 1024 (CUDA). It looks at neither the model nor the free memory.

    Examples
    --------
    >>> suggested_batch_size("cpu", 224), suggested_batch_size("cpu", 32)
    (32, 256)
    """

    image_size = as_int("image_size", image_size, min=1)
    base = {"cuda": 256, "mps": 64}.get(resolve_device(device).type, 32)
    scaled = int(base * (224 / image_size) ** 2)
    return int(min(max(scaled, 8), 256 if base < 256 else 1024))
