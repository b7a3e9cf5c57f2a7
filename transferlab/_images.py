"""Pixels for real datasets: decoding image files, resizing to a model's input size, and a bounded memory cache.

- :func:`resize_images`: uint8 images resized so the shorter side is ``size``, then centre-cropped (as timm's
  evaluation transform does), with antialiasing.
- :func:`decode_image`: one image file as uint8 RGB, its format read from the content.
- :class:`DecodedCache` and its one instance :data:`DECODED_CACHE`: decoded, resized images kept between
  :func:`transferlab.datasets.load_task` calls, least recently used first out beyond a budget
  (``$TRANSFERLAB_DECODE_CACHE_MB``, default 1024); :func:`transferlab.datasets.clear_caches` empties it.
- :func:`materialise`: the images at some indices of a catalogue, as one uint8 tensor ``[N, 3, size, size]``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ._validate import as_int

__all__ = ["resize_images", "decode_image", "DecodedCache", "DECODED_CACHE", "materialise"]


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

    size = as_int("size", size, min=1)
    chunk = as_int("chunk", chunk, min=1)
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"expected uint8 images [N, C, H, W], got {getattr(x, 'dtype', type(x).__name__)} with "
                         f"shape {tuple(getattr(x, 'shape', ()))}")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    mode = InterpolationMode(interpolation)
    out = []
    for start in range(0, len(x), chunk):
        part = TF.resize(x[start : start + chunk], [size], interpolation=mode, antialias=True)
        out.append(TF.center_crop(part, [size, size]))
    return torch.cat(out) if out else x.new_zeros(0, x.shape[1], size, size)


def decode_image(path: Path, size: int) -> torch.Tensor:
    """One image file as uint8 RGB [3, H, W] (PIL; format read from the content, JPEGs decoded at a reduced
    scale when they are at least twice ``size``)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # a no-op for formats other than JPEG
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


class DecodedCache:
    """Decoded, resized images kept in memory between ``load_task`` calls (a lesson reloads its data for every
    seed and strategy); least recently used first out beyond ``$TRANSFERLAB_DECODE_CACHE_MB`` (default 1024).

    An entry is keyed by the file's path, modification time and size, so a file changed on disk is decoded again.

    Examples
    --------
    >>> cache = DecodedCache(); cache.bytes, len(cache.items)
    (0, 0)
    """

    def __init__(self):
        self.items: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.bytes = 0

    def budget(self) -> int:
        """The budget in bytes, read from ``$TRANSFERLAB_DECODE_CACHE_MB`` at every call."""
        return int(float(os.environ.get("TRANSFERLAB_DECODE_CACHE_MB", "1024")) * 2**20)

    def get(self, path: Path, size: int, interpolation: str) -> torch.Tensor:
        """The image at ``path``, decoded and resized to ``size`` (from memory when it is there)."""
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, size, interpolation)
        if key in self.items:
            self.items.move_to_end(key)
            img = self.items[key]
        else:
            img = resize_images(decode_image(path, size)[None], size, interpolation=interpolation)[0]
            self.items[key] = img
            self.bytes += img.numel()
        budget = self.budget()
        while self.bytes > budget and len(self.items) > 1:  # keep the one just asked for
            self.bytes -= self.items.popitem(last=False)[1].numel()
        return img

    def clear(self) -> None:
        """Forget every image (frees its memory)."""
        self.items.clear()
        self.bytes = 0


DECODED_CACHE = DecodedCache()
"""The process's one cache of decoded images (cleared by :func:`transferlab.datasets.clear_caches`)."""


def materialise(images, idx: torch.Tensor, size: int, interpolation: str, *, desc: str = "",
                progress: bool = False) -> torch.Tensor:
    """The images at ``idx`` as uint8 ``[len(idx), 3, size, size]``.

    ``images`` is a catalogue's: a list of file paths (decoded through :data:`DECODED_CACHE`) or a uint8 array
    ``[N, H, W, 3]`` (CIFAR's, resized here).

    Examples
    --------
    >>> import numpy as np
    >>> materialise(np.zeros((4, 8, 8, 3), np.uint8), torch.tensor([0, 2]), 4, "bilinear").shape
    torch.Size([2, 3, 4, 4])
    """
    if isinstance(images, list):
        out = torch.empty(len(idx), 3, size, size, dtype=torch.uint8)
        for k, i in enumerate(tqdm(idx.tolist(), desc=desc, disable=not progress, leave=False)):
            out[k] = DECODED_CACHE.get(Path(images[i]), size, interpolation)
        return out
    x = torch.as_tensor(images[idx.numpy()]).permute(0, 3, 1, 2).contiguous()  # NHWC array -> NCHW
    return resize_images(x, size, interpolation=interpolation)
