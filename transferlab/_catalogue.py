"""What each real dataset is: where its files come from, and how its images and labels are listed once on disk.

A :class:`DatasetSpec` describes one dataset of :data:`DATASETS` (its :class:`Resource` files with their published
checksums, a similarity prior, a note for the lesson). Its ``catalogue(root)`` reads the extracted files into a
:class:`Catalogue`: class names, labels per split, and the pixels or image paths, before any image is decoded.
:func:`folder_catalogue` does the same for any ``ImageFolder`` on disk.

Downloading lives in :mod:`transferlab._download`, turning a catalogue into an ``ImageTask`` in
:func:`transferlab.datasets.load_task`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._validate import did_you_mean

__all__ = ["WORLD_NAMES", "Resource", "DatasetSpec", "Catalogue", "DATASETS", "EUROSAT", "dataset_spec",
           "folder_catalogue", "pets_catalogue"]

WORLD_NAMES = ("world", "target", "source", "digits")
"""The names :func:`transferlab.datasets.load_task` reads from the offline world rather than from disk."""


@dataclass(frozen=True)
class Resource:
    """One file to download: where from, its name on disk, and its published checksum (MD5 or SHA-256)."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None


@dataclass
class Catalogue:
    """Labels and a way to get pixels, per split: either arrays in memory (CIFAR) or image files.

    ``test_y`` is None when the dataset has no official test split (one is then drawn, fixed, from train).
    ``train_images``/``test_images`` are a uint8 array ``[N, H, W, 3]`` or a list of image file paths.
    """

    classes: tuple[str, ...]
    train_y: torch.Tensor
    test_y: torch.Tensor | None
    train_images: object
    test_images: object = None
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """A real dataset: what to download, how to list it, and what the lesson should expect of it.

    ``similarity`` is a *prior* (a reading, not a measurement) of how close the dataset is to ImageNet, the
    source task of timm's models, on the same 0-1 scale as the world's ``similarity`` knob; measure it with
    :func:`transferlab.datasets.measure_similarity`.
    """

    name: str
    title: str
    resources: Callable[[], list[Resource]]
    catalogue: Callable[[Path], Catalogue]
    similarity: float
    note: str
    homepage: str
    size_mb: int


def _cifar(cls_name: str, label_key: str) -> Callable[[Path], Catalogue]:
    def catalogue(root: Path) -> Catalogue:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        # torchvision checks every extracted batch file against its own MD5s here.
        train, test = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
        return Catalogue(tuple(train.classes), torch.as_tensor(train.targets), torch.as_tensor(test.targets),
                         train.data, test.data, info=dict(label_key=label_key))

    return catalogue


def _cifar_resources(cls_name: str) -> Callable[[], list[Resource]]:
    def resources() -> list[Resource]:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        return [Resource(cls.url, cls.filename, md5=cls.tgz_md5)]

    return resources


def _pets_resources() -> list[Resource]:
    from torchvision.datasets import OxfordIIITPet

    return [Resource(url, url.rsplit("/", 1)[-1], md5=md5) for url, md5 in OxfordIIITPet._RESOURCES]


def pets_catalogue(root: Path) -> Catalogue:
    """The 37 breeds from ``annotations/{trainval,test}.txt`` (lines: ``<image id> <class 1-37> ...``)."""
    ids, labels = {}, {}
    for split in ("trainval", "test"):
        ann = root / "annotations" / f"{split}.txt"
        if not ann.exists():
            raise FileNotFoundError(f"{ann} is missing: the Pets annotations are not extracted in {root}")
        rows = [line.split() for line in ann.read_text().splitlines() if line.strip() and not line.startswith("#")]
        ids[split] = [r[0] for r in rows]
        labels[split] = torch.tensor([int(r[1]) - 1 for r in rows])
    names = {}
    all_labels = torch.cat([labels["trainval"], labels["test"]]).tolist()
    for image_id, y in zip(ids["trainval"] + ids["test"], all_labels, strict=True):
        names.setdefault(y, " ".join(part.title() for part in image_id.rsplit("_", 1)[0].split("_")))
    classes = tuple(names[c] for c in range(len(names)))
    files = {s: [root / "images" / f"{i}.jpg" for i in ids[s]] for s in ids}
    return Catalogue(classes, labels["trainval"], labels["test"], files["trainval"], files["test"])


EUROSAT = Resource(  # as in torchvision.datasets.EuroSAT.download (torchvision keeps it inside that method)
    "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
    "EuroSAT.zip", md5="c8fa014336c82ac7804f0398fcb19387")


def _eurosat_resources() -> list[Resource]:
    return [EUROSAT]  # read at call time, so a test (or a mirror) can point it elsewhere


def _eurosat_catalogue(root: Path) -> Catalogue:
    return folder_catalogue(root / "2750")


def folder_catalogue(root: str | Path) -> Catalogue:
    """An ImageFolder (torchvision's class-per-sub-folder rules), split by ``train/`` + ``test/``/``val/`` if any.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder.
    ValueError
        ``train/`` and ``test/`` (or ``val/``) hold different class folders.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train, test = ImageFolder(str(root / "train")), ImageFolder(str(test_dir))
        if train.classes != test.classes:
            raise ValueError(f"{root}: train/ and {test_dir.name}/ have different class folders: "
                             f"{train.classes} vs {test.classes}")
        return Catalogue(tuple(train.classes), torch.tensor(train.targets), torch.tensor(test.targets),
                         [Path(p) for p, _ in train.samples], [Path(p) for p, _ in test.samples])
    ds = ImageFolder(str(root))
    return Catalogue(tuple(ds.classes), torch.tensor(ds.targets), None, [Path(p) for p, _ in ds.samples])


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10", "CIFAR-10", _cifar_resources("CIFAR10"), _cifar("CIFAR10", "labels"), 0.8,
        "32x32 photos of 10 everyday object classes, most of which ImageNet also has (upsampled for ImageNet "
        "models): a similar domain.", "https://www.cs.toronto.edu/~kriz/cifar.html", 163),
    "cifar100": DatasetSpec(
        "cifar100", "CIFAR-100", _cifar_resources("CIFAR100"), _cifar("CIFAR100", "fine_labels"), 0.7,
        "32x32 photos of 100 classes (500 train, 100 test each): similar domain, finer classes.",
        "https://www.cs.toronto.edu/~kriz/cifar.html", 161),
    "pets": DatasetSpec(
        "pets", "Oxford-IIIT Pets", _pets_resources, pets_catalogue, 0.9,
        "37 cat and dog breeds, ~100 train images each; ImageNet has most of these breeds: very similar.",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/", 792),
    "eurosat": DatasetSpec(
        "eurosat", "EuroSAT (RGB)", _eurosat_resources, _eurosat_catalogue, 0.2,
        "27,000 64x64 Sentinel-2 satellite tiles of 10 land-use classes, seen from above: a dissimilar domain.",
        "https://github.com/phelber/eurosat", 94),
}


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of real dataset ``name``, or ``KeyError`` listing the known names.

    Examples
    --------
    >>> dataset_spec("eurosat").title
    'EuroSAT (RGB)'
    >>> dataset_spec("cifar") # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    KeyError: "unknown dataset 'cifar'; expected one of ['cifar10', 'cifar100', 'eurosat', 'pets'], ... Did you mean...
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}, a world task "
                       f"{list(WORLD_NAMES)}, or 'folder:/path/to/images'.{did_you_mean(name, DATASETS)}")
    return DATASETS[name]
