"""Real datasets for the online path, as the same ``ImageTask`` the offline world gives.

Every lesson builds its data with one call, whatever ``DATA`` says::

    task = load_task(DATA, n_per_class=20, seed=0, size=32)      # DATA = "world" (offline) or "cifar10", ...

- ``"world"`` / ``"target"``, ``"source"``, ``"digits"``: the offline transfer world (:mod:`transferlab.world`).
- ``"cifar10"``, ``"cifar100"``, ``"pets"`` (Oxford-IIIT Pets), ``"eurosat"`` (satellite images, a dissimilar
  domain for ImageNet models): downloaded once into ``$TRANSFERLAB_HOME/data`` and verified against the checksums
  torchvision publishes for them.
- ``"folder:/path/to/images"`` (or an existing directory): any ``ImageFolder`` (one sub-folder per class,
  optionally split into ``train/`` and ``test/`` or ``val/``).

The result is a :class:`transferlab.world.ImageTask`: uint8 images resized to ``size`` (shorter side, then a
centre crop), labels, a stratified and seeded training subset of ``n_per_class`` images per class, and the
normalisation of the model that will read them (``mean``/``std`` from its ``pretrained_cfg``, ImageNet's by
default). The test split never depends on ``seed`` or ``n_per_class``, so accuracies at different data sizes and
seeds are measured on the same images.

Downloads (:func:`download`) are resumable (HTTP ``Range``), atomic (``<file>.part`` renamed only once its
checksum matches), keep a file that fails its checksum aside under a ``.bad-<time>`` name and say so, and fail
fast offline with the URL and the manual route. They never write outside ``$TRANSFERLAB_HOME/data``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .world import ImageTask, digits_task, source_task, target_task

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
    "stratified_indices",
    "resize_images",
    "similarity_ladder",
    "measure_similarity",
    "backbones",
    "suggested_batch_size",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WORLD_NAMES = ("world", "target", "source", "digits")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
_SPLIT_SEED = 20_240_601  # fixed: the train/test split of unsplit datasets never changes with ``seed``


class ChecksumError(ValueError):
    """A file does not match its published checksum (it has been moved aside, never used)."""


class TooFewImagesError(ValueError):
    """A class has fewer images than asked for; ``split`` ("train", "test" or None), ``available``, ``requested``."""

    def __init__(self, message: str, *, split: str | None, label: int, available: int, requested: int):
        super().__init__(message)
        self.split, self.label, self.available, self.requested = split, label, available, requested


class DownloadError(OSError):
    """A download could not be completed (offline, refused, truncated); the message says what to do."""


@dataclass(frozen=True)
class Resource:
    """One file to download: where from, its name on disk, and its published checksum (MD5 or SHA-256)."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A real dataset: what to download, how to list it, and what the lesson should expect of it.

    ``similarity`` is a *prior* (a reading, not a measurement) of how close the dataset is to ImageNet, the
    source task of timm's models, on the same 0-1 scale as the world's ``similarity`` knob; measure it with
    :func:`measure_similarity`.
    """

    name: str
    title: str
    resources: Callable[[], list[Resource]]
    catalogue: Callable[[Path], _Catalogue]
    similarity: float
    note: str
    homepage: str
    size_mb: int


# ----------------------------------------------------------------------------------------------------------
# Files: where they live, how they are checked.
def data_dir() -> Path:
    """The folder every download goes to: ``$TRANSFERLAB_HOME/data`` (default ``~/.cache/transferlab/data``)."""
    from .zoo import home

    return home() / "data"


def _inside(path: Path, folder: Path) -> Path:
    """``path`` resolved, or ValueError when it is not inside ``folder``."""
    resolved, root = Path(path).resolve(), Path(folder).resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"refusing to write {str(path)!r}: it is outside the kit's data folder {str(root)!r}")
    return resolved


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksum_ok(path: Path, md5: str | None, sha256: str | None) -> tuple[bool, str]:
    """(matches, description of the check) for the given published checksum."""
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    got = _digest(path, algorithm)
    return got == expected.lower(), f"{algorithm} {got} (published: {expected})"


def _move_aside(path: Path, name: str | None = None) -> Path:
    """Rename ``path`` to ``<name>.bad-<time>-<pid>`` next to it (kept for inspection, never used)."""
    aside = path.with_name(f"{name or path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    return aside


@contextlib.contextmanager
def _lock(folder: Path, name: str):
    """An exclusive lock per file, so two processes never write the same download at once."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: atomic renames still keep files whole
        yield
        return
    with open(folder / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _manual_route(url: str, path: Path, check: str) -> str:
    return (f"Manual route: on a machine with a network, download {url} (a browser, or `curl -L -C - -o "
            f"{path.name} {url}`), copy it to {path}, and run again: it is checked against the published {check} "
            f"before use.")


def download(url: str, filename: str, *, md5: str | None = None, sha256: str | None = None,
             folder: str | Path | None = None, timeout: float = 15.0, progress: bool = True) -> Path:
    """Download ``url`` to ``folder/filename`` (inside :func:`data_dir`), verified, resumable and atomic.

    Bytes go to ``filename.part``; an interrupted or truncated download keeps the part and the next call resumes
    it with an HTTP ``Range`` request. The part is renamed to ``filename`` only once it matches the published
    checksum. A file that does not match is moved aside to ``filename.bad-<time>`` (never deleted, never used):
    an existing one with a warning before downloading afresh, a fresh download with :class:`ChecksumError`.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` address.
    filename : str
        A bare file name (no folders).
    md5, sha256 : str
        The published checksum; one of them is required.
    folder : path, optional
        Where to put it; must be :func:`data_dir` or inside it (default: :func:`data_dir`).
    timeout : float
        Seconds to wait for the server to answer; offline, the call fails within this time.

    Returns
    -------
    Path of the verified file.

    Raises
    ------
    DownloadError
        The server cannot be reached or the transfer broke off (the message names the URL and the manual route).
    ChecksumError
        The downloaded bytes do not match the checksum (the file is kept aside).

    Examples
    --------
    >>> download("ftp://example.org/x.bin", "x.bin", md5="0" * 32)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: url must start with http:// or https://, got 'ftp://example.org/x.bin'
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if not isinstance(filename, str) or not filename or Path(filename).name != filename or filename in (".", ".."):
        raise ValueError(f"filename must be a bare file name without folders, got {filename!r}")
    if not md5 and not sha256:
        raise ValueError(f"download({url!r}) needs the published md5= or sha256= to verify the file against")
    folder = _inside(Path(folder) if folder is not None else data_dir(), data_dir())
    path = folder / filename
    check = "SHA-256" if sha256 else "MD5"
    with _lock(folder, filename):
        if path.exists():
            ok, got = _checksum_ok(path, md5, sha256)
            if ok:
                return path
            aside = _move_aside(path)
            warnings.warn(f"{path} does not match its published checksum ({got}); moved it to {aside} and "
                          f"downloading it again", stacklevel=2)
        part = path.with_name(filename + ".part")
        _fetch_into(url, part, path, check, timeout, progress)
        ok, got = _checksum_ok(part, md5, sha256)
        if not ok:
            aside = _move_aside(part, filename)
            raise ChecksumError(f"the download of {url} does not match its published checksum: {got}. The bad "
                                f"file is kept at {aside} (not used). Run again to download afresh; if it keeps "
                                f"failing, the server's copy differs from the published one. "
                                + _manual_route(url, path, check))
        os.replace(part, path)
    return path


def _fetch_into(url: str, part: Path, path: Path, check: str, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with Range when it has bytes already)."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "transferlab"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked above
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # the part already holds every byte: let the checksum decide
            return
        raise DownloadError(f"{url} answered HTTP {err.code} ({err.reason}). "
                            + _manual_route(url, path, check)) from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"cannot reach {url} ({reason}); are you offline? The kit's world data and zoo need "
                            f"no network (DATA='world', MODELS='zoo'). " + _manual_route(url, path, check)) from err
    with response:
        resumed = start > 0 and response.status == 206
        if start and not resumed:
            start = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        got = start
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=path.name, disable=not progress)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except (http.client.IncompleteRead, OSError) as err:  # OSError: reset, timeout
            raise DownloadError(f"the download of {url} broke off after {got} bytes ({err!r}); the part is kept "
                                f"at {part}: run again to resume it. " + _manual_route(url, path, check)) from err
        finally:
            bar.close()
    if total is not None and got < total:
        raise DownloadError(f"the download of {url} is truncated: {got} of {total} bytes; the part is kept at "
                            f"{part}: run again to resume it. " + _manual_route(url, path, check))


# ----------------------------------------------------------------------------------------------------------
# Archives: extracted once, into a temporary folder renamed into place, never outside the data folder.
def _extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest`` (idempotent: a marker file records a finished extraction)."""
    marker = dest / f".extracted-{archive.name}"
    if marker.exists():
        return
    dest = _inside(dest, data_dir())
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _inside(tmp / member, tmp)  # zip-slip: no absolute paths, no "..", ever
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # rejects absolute paths, "..", links out, devices
        for entry in tmp.iterdir():
            target = dest / entry.name
            if target.exists():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()  # an earlier extraction: keep it
            else:
                os.replace(entry, target)
        marker.write_text(f"extracted from {archive.name}\n")
    except tarfile.TarError as err:
        raise ValueError(f"{archive} is not a readable archive ({err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# Catalogues: what a dataset holds, before any image is decoded.
@dataclass
class _Catalogue:
    """Labels and a way to get pixels, per split: either arrays in memory (CIFAR) or image files."""

    classes: tuple[str, ...]
    train_y: torch.Tensor
    test_y: torch.Tensor | None  # None: no official test split (one is drawn, fixed, from train)
    train_images: object  # uint8 array [N, H, W, 3] or a list of file paths
    test_images: object = None
    info: dict = field(default_factory=dict)


def _cifar(cls_name: str, label_key: str) -> Callable[[Path], _Catalogue]:
    def catalogue(root: Path) -> _Catalogue:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        # torchvision checks every extracted batch file against its own MD5s here.
        train, test = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
        return _Catalogue(tuple(train.classes), torch.as_tensor(train.targets), torch.as_tensor(test.targets),
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


def _pets_catalogue(root: Path) -> _Catalogue:
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
    return _Catalogue(classes, labels["trainval"], labels["test"], files["trainval"], files["test"])


_EUROSAT = Resource(  # as in torchvision.datasets.EuroSAT.download (torchvision keeps it inside that method)
    "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
    "EuroSAT.zip", md5="c8fa014336c82ac7804f0398fcb19387")


def _eurosat_catalogue(root: Path) -> _Catalogue:
    return _folder_catalogue(root / "2750")


def _folder_catalogue(root: Path) -> _Catalogue:
    """An ImageFolder (torchvision's class-per-sub-folder rules), split by ``train/`` + ``test/``/``val/`` if any."""
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
        return _Catalogue(tuple(train.classes), torch.tensor(train.targets), torch.tensor(test.targets),
                          [Path(p) for p, _ in train.samples], [Path(p) for p, _ in test.samples])
    ds = ImageFolder(str(root))
    return _Catalogue(tuple(ds.classes), torch.tensor(ds.targets), None, [Path(p) for p, _ in ds.samples])


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
        "pets", "Oxford-IIIT Pets", _pets_resources, _pets_catalogue, 0.9,
        "37 cat and dog breeds, ~100 train images each; ImageNet has most of these breeds: very similar.",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/", 792),
    "eurosat": DatasetSpec(
        "eurosat", "EuroSAT (RGB)", lambda: [_EUROSAT], _eurosat_catalogue, 0.2,
        "27,000 64x64 Sentinel-2 satellite tiles of 10 land-use classes, seen from above: a dissimilar domain.",
        "https://github.com/phelber/eurosat", 94),
}


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}, a world task "
                       f"{list(WORLD_NAMES)}, or 'folder:/path/to/images'")
    return DATASETS[name]


def is_fetched(name: str) -> bool:
    """True when every file of dataset ``name`` is downloaded, verified and extracted.

    Examples
    --------
    >>> is_fetched("cifar10") in (True, False)
    True
    """
    spec = _spec(name)
    folder = data_dir() / name
    return all((folder / f".extracted-{r.filename}").exists() for r in spec.resources())


def fetch(name: str, *, progress: bool = True, timeout: float = 15.0) -> Path:
    """Download (verified, resumable) and extract dataset ``name`` into ``data_dir()/name``; returns that folder.

    Cheap when already done: the archives are kept, so a re-run only re-checks their checksums.
    """
    spec = _spec(name)
    folder = data_dir() / name
    for res in spec.resources():
        if (folder / f".extracted-{res.filename}").exists():
            continue
        archive = download(res.url, res.filename, md5=res.md5, sha256=res.sha256, folder=folder, timeout=timeout,
                           progress=progress)
        _extract(archive, folder)
    return folder


# ----------------------------------------------------------------------------------------------------------
# From a catalogue to an ImageTask.
def stratified_indices(y: torch.Tensor, n_per_class: int | None, *, seed: int = 0,
                       num_classes: int | None = None) -> torch.Tensor:
    """Sorted indices of ``n_per_class`` members of every class, drawn with ``seed`` (``None``: all of them).

    A smaller ``n_per_class`` with the same seed gives a subset of a larger one (nested data sizes).

    Examples
    --------
    >>> stratified_indices(torch.tensor([0, 1, 0, 1, 0, 1]), 2, seed=0).tolist()
    [0, 3, 4, 5]
    """
    _check_count("n_per_class", n_per_class, allow_none=True)
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    gen = torch.Generator().manual_seed(int(seed))
    picks = []
    for c in range(num_classes):
        members = (y == c).nonzero(as_tuple=True)[0]
        order = members[torch.randperm(len(members), generator=gen)]
        if n_per_class is not None:
            if len(members) < n_per_class:
                raise TooFewImagesError(f"class {c} has only {len(members)} images, fewer than "
                                        f"n_per_class={n_per_class}", split=None, label=c, available=len(members),
                                        requested=n_per_class)
            order = order[:n_per_class]
        picks.append(order)
    return torch.cat(picks).sort().values


def resize_images(x: torch.Tensor, size: int, *, interpolation: str = "bilinear", chunk: int = 512) -> torch.Tensor:
    """uint8 images [N, C, H, W] resized so the shorter side is ``size``, then centre-cropped to ``size``.

    Uses torchvision's resize with antialiasing (``interpolation`` as in a timm ``pretrained_cfg``).

    Examples
    --------
    >>> resize_images(torch.zeros(2, 3, 32, 48, dtype=torch.uint8), 16).shape
    torch.Size([2, 3, 16, 16])
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    _check_count("size", size)
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"expected uint8 images [N, C, H, W], got {x.dtype} with shape {tuple(x.shape)}")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    mode = InterpolationMode(interpolation)
    out = []
    for start in range(0, len(x), chunk):
        part = TF.resize(x[start : start + chunk], [size], interpolation=mode, antialias=True)
        out.append(TF.center_crop(part, [size, size]))
    return torch.cat(out) if out else x.new_zeros(0, x.shape[1], size, size)


def _decode(path: Path, size: int) -> torch.Tensor:
    """One image file as uint8 RGB [3, H, W] (PIL; format read from the content, JPEGs decoded at a reduced
    scale when they are at least twice ``size``)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # a no-op for formats other than JPEG
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


class _DecodedCache:
    """Decoded, resized images kept in memory between ``load_task`` calls (a lesson reloads its data for every
    seed and strategy); least recently used first out beyond ``$TRANSFERLAB_DECODE_CACHE_MB`` (default 1024)."""

    def __init__(self):
        self.items: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.bytes = 0

    def budget(self) -> int:
        return int(float(os.environ.get("TRANSFERLAB_DECODE_CACHE_MB", "1024")) * 2**20)

    def get(self, path: Path, size: int, interpolation: str) -> torch.Tensor:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, size, interpolation)
        if key in self.items:
            self.items.move_to_end(key)
            img = self.items[key]
        else:
            img = resize_images(_decode(path, size)[None], size, interpolation=interpolation)[0]
            self.items[key] = img
            self.bytes += img.numel()
        budget = self.budget()
        while self.bytes > budget and len(self.items) > 1:  # keep the one just asked for
            self.bytes -= self.items.popitem(last=False)[1].numel()
        return img

    def clear(self) -> None:
        self.items.clear()
        self.bytes = 0


_DECODED = _DecodedCache()


def _materialise(images, idx: torch.Tensor, size: int, interpolation: str, desc: str, progress: bool):
    if isinstance(images, list):
        out = torch.empty(len(idx), 3, size, size, dtype=torch.uint8)
        for k, i in enumerate(tqdm(idx.tolist(), desc=desc, disable=not progress, leave=False)):
            out[k] = _DECODED.get(Path(images[i]), size, interpolation)
        return out
    x = torch.as_tensor(images[idx.numpy()]).permute(0, 3, 1, 2).contiguous()  # NHWC array -> NCHW
    return resize_images(x, size, interpolation=interpolation)


def _check_count(what: str, value, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1{' or None' if allow_none else ''}, got {value!r}")


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


def load_task(name: str, n_per_class: int | None = None, *, seed: int = 0, size: int | None = None,
              n_test_per_class: int | None = None, similarity: float | None = None, model=None, download: bool = True,
              progress: bool = True) -> ImageTask:
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
        For ``"world"``: the target task's similarity to the source task (default 1.0). A real dataset has a
        fixed similarity to ImageNet: a value given for one is not applied, and a warning says so.
    model : nn.Module or dict, optional
        The model (or its ``pretrained_cfg``) that will read the images: sets ``mean``, ``std``, the default
        ``size`` and the resize interpolation. Default: the world's statistics for world tasks, ImageNet's for
        real ones.
    download : bool
        Fetch a real dataset that is not on disk yet (fails fast with the manual route when offline).

    Examples
    --------
    >>> t = load_task("world", 3, size=16, n_test_per_class=2); t.num_classes, len(t.y_train), t.image_size
    (10, 30, 16)
    """
    cfg = _cfg_of(model)
    _check_count("n_per_class", n_per_class, allow_none=True)
    _check_count("n_test_per_class", n_test_per_class, allow_none=True)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if size is None:
        size = int(cfg["input_size"][-1]) if "input_size" in cfg else (32 if name in WORLD_NAMES else 224)
    _check_count("size", size)
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a string (dataset name or 'folder:/path'), got {type(name).__name__}")
    if name in WORLD_NAMES:
        task = _world_task(name, n_per_class, seed, size, n_test_per_class, 1.0 if similarity is None else similarity)
        if "mean" in cfg:
            task = _with_stats(task, cfg["mean"], cfg["std"])
        return task
    if similarity is not None:
        warnings.warn(f"similarity={similarity!r} only applies to the world; {str(name)!r} has a fixed similarity to "
                      f"the pretraining data (measure it with measure_similarity)", stacklevel=2)
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    interpolation = cfg.get("interpolation", "bilinear")
    if str(name).startswith("folder:") or (name not in DATASETS and Path(name).is_dir()):
        root = Path(str(name).removeprefix("folder:")).expanduser()
        cat, title, info = _folder_catalogue(root), f"folder[{root.name}]", dict(kind="folder", root=str(root))
    else:
        spec = _spec(name)
        if not is_fetched(name):
            if not download:
                raise FileNotFoundError(f"dataset {name!r} is not downloaded in {data_dir() / name}; run "
                                        f"`python data_scripts/fetch_datasets.py {name}` or pass download=True")
            fetch(name, progress=progress)
        cat = _dataset_catalogue(name, str(data_dir() / name))
        title, info = name, dict(kind="real", dataset=spec.title, similarity_prior=spec.similarity, note=spec.note)
    return _task_from_catalogue(cat, title, info, n_per_class, seed, size, n_test_per_class, mean, std,
                                interpolation, progress)


@functools.lru_cache(maxsize=2)
def _dataset_catalogue(name: str, root: str) -> _Catalogue:
    """A downloaded dataset's catalogue, read once per process (CIFAR's arrays take seconds to unpickle)."""
    return DATASETS[name].catalogue(Path(root))


def _world_task(name, n_per_class, seed, size, n_test_per_class, similarity):
    if n_per_class is None:
        raise ValueError(f"n_per_class is required for the world task {name!r} (an integer >= 1)")
    n_test = 50 if n_test_per_class is None else n_test_per_class
    if name in ("world", "target"):
        return target_task(n_per_class, similarity, seed=seed, size=size, n_test_per_class=n_test)
    if name == "source":
        return source_task(n_per_class, seed=seed, size=size, n_test_per_class=n_test)
    return digits_task(n_per_class, seed=seed, size=size, n_test_per_class=n_test)


def _with_stats(task: ImageTask, mean, std) -> ImageTask:
    return ImageTask(task.name, task.x_train, task.y_train, task.x_test, task.y_test, task.classes,
                     tuple(mean), tuple(std), task.info)


def _task_from_catalogue(cat: _Catalogue, title, info, n_per_class, seed, size, n_test_per_class, mean, std,
                         interpolation, progress) -> ImageTask:
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
    for split, pool, labels, n, s in (("train", train_pool, cat.train_y, n_per_class, seed),
                                      ("test", test_pool, test_y, n_test_per_class, _SPLIT_SEED)):
        try:
            picks[split] = pool[stratified_indices(labels[pool], n, seed=s, num_classes=k)]
        except TooFewImagesError as err:
            knob = "n_per_class" if split == "train" else "n_test_per_class"
            hint = "" if split == "train" else "; n_test_per_class=None takes the whole test split"
            raise TooFewImagesError(f"{title}: the {split} split's class {cat.classes[err.label]!r} has only "
                                    f"{err.available} images, fewer than {knob}={n}{hint}", split=split,
                                    label=err.label, available=err.available, requested=n) from None
    tr, te = picks["train"], picks["test"]
    x_train = _materialise(cat.train_images, tr, size, interpolation, f"{title} train", progress)
    x_test = _materialise(test_images, te, size, interpolation, f"{title} test", progress)
    info = dict(info, seed=seed, n_per_class=n_per_class, size=size)
    return ImageTask(title, x_train, cat.train_y[tr].clone(), x_test, test_y[te].clone(), cat.classes,
                     mean, std, info)


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
        spec = _spec(n)
        rungs.append(dict(name=n, similarity=spec.similarity, label=f"{n} (prior {spec.similarity:g})"))
    return rungs


def measure_similarity(task: ImageTask, model, *, device=None, seed: int = 0, batch_size: int = 256,
                       epochs: int = 100) -> dict:
    """A measured proxy of how close ``task`` is to what ``model`` was pretrained on.

    The test accuracy of a linear probe on the model's frozen pre-logit features (trained on the task's training
    split, full batch, seeded), and that accuracy rescaled so chance is 0 and perfect is 1 (``score``).
    Higher means the pretrained features already separate the task's classes.

    Returns ``dict(probe_acc=, chance=, score=)``.
    """
    from .train import extract_features, fit_linear_probe

    if not isinstance(task, ImageTask):
        raise TypeError(f"task must be an ImageTask, got {type(task).__name__}")
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
    from .device import resolve_device
    from .zoo import ZOO

    if models == "zoo":
        return list(ZOO)
    if models == "timm":
        return list(RECOMMENDED_BACKBONES["gpu" if resolve_device(device).type == "cuda" else "cpu"])
    names = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    if not names or not all(isinstance(m, str) and m for m in names):
        raise ValueError(f"MODELS must be 'zoo', 'timm', or a list of model names, got {models!r}")
    return names


def suggested_batch_size(device=None, image_size: int = 224) -> int:
    """A batch size that fits comfortably: 32 on CPU at 224 px, 64 on MPS, 256 on CUDA (scaled by pixel count).

    Examples
    --------
    >>> suggested_batch_size("cpu", 224), suggested_batch_size("cpu", 32)
    (32, 256)
    """
    from .device import resolve_device

    _check_count("image_size", image_size)
    base = {"cuda": 256, "mps": 64}.get(resolve_device(device).type, 32)
    scaled = int(base * (224 / image_size) ** 2)
    return int(min(max(scaled, 8), 256 if base < 256 else 1024))
