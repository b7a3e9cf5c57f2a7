"""The offline transfer world: images drawn from explicit generative factors.

Every image is one object on a background. Its *class* is a combination of factors (a shape, a texture, and,
for target tasks, a palette); its *nuisances* are drawn at random per image (position, size, rotation,
texture frequency/orientation/phase, foreground and background colours, pixel noise).

- The **source** task uses 20 of the 30 (shape, texture) combinations of the source vocabulary: 6 shapes
  (disc, square, triangle, cross, ring, bar) x 5 textures (plain, stripes, checker, dots, grid), bright objects
  on dark backgrounds. Models in the kit's zoo are pretrained on it.
- A **target** task has 10 classes. At ``similarity=1`` they are the 10 held-out combinations of the source
  vocabulary: new classes, same visual world. Lowering the similarity replaces *whole factors* by their novel
  counterparts (shapes: star, crescent, L, dumbbell, wave-band, semicircle; textures: concentric rings, spokes,
  blobs, wavy stripes, speckle; palette: dark objects on bright backgrounds). There are 10 classes x 3 factors
  = 30 factor slots; ``round((1 - similarity) * 30)`` of them are novel, in a fixed order, so a lower
  similarity always contains the novel slots of a higher one. At ``similarity=0`` every factor is novel.
  Swapping whole factors (rather than blending them) is deliberate: blended factors make the middle of the
  range the hardest task and grey out the palette, so the knob stops being monotone.
- **digits**: scikit-learn's bundled handwritten digits, upsampled: a real, honestly dissimilar target.

Rendering is vectorised torch over chunks of images; the same seed gives the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = [
    "SOURCE_SHAPES",
    "SOURCE_TEXTURES",
    "NOVEL_SHAPES",
    "NOVEL_TEXTURES",
    "WORLD_MEAN",
    "WORLD_STD",
    "ImageTask",
    "TensorLoader",
    "TASK_NAMES",
    "make_task",
    "source_task",
    "target_task",
    "digits_task",
    "render",
    "target_classes",
]

SOURCE_SHAPES = ("disc", "square", "triangle", "cross", "ring", "bar")
NOVEL_SHAPES = ("star", "crescent", "ell", "dumbbell", "waveband", "semicircle")
SOURCE_TEXTURES = ("plain", "stripes", "checker", "dots", "grid")
NOVEL_TEXTURES = ("rings", "spokes", "blobs", "wavy", "speckle")
PALETTES = ("bright-on-dark", "dark-on-bright")
SHAPES = SOURCE_SHAPES + NOVEL_SHAPES
TEXTURES = SOURCE_TEXTURES + NOVEL_TEXTURES

# Per-channel statistics of the source task (measured on 50k images, seed 0); the zoo's models expect inputs
# normalised with them, just as ImageNet models expect ImageNet's.
WORLD_MEAN = (0.171, 0.171, 0.171)
WORLD_STD = (0.146, 0.146, 0.146)

TASK_NAMES = ("source", "target", "digits")

# (shape, texture) combinations: the 10 with (s + t) % 3 == 0 are held out for targets, the other 20 are the
# source classes. Every shape and every texture occurs on both sides.
_TARGET_COMBOS = tuple((s, t) for s in range(6) for t in range(5) if (s + t) % 3 == 0)
_SOURCE_COMBOS = tuple((s, t) for s in range(6) for t in range(5) if (s + t) % 3 != 0)
# The fixed order in which target factor slots (class, factor) turn novel as similarity falls.
_SLOT_ORDER = torch.randperm(30, generator=torch.Generator().manual_seed(20181)).tolist()
_CHUNK = 2048


# ----------------------------------------------------------------------------------------------------------
# Signed distance functions in object coordinates (the object spans roughly the unit disc).
def _box(u, v, bx, by):
    qx, qy = u.abs() - bx, v.abs() - by
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _disc(u, v, r=1.0, cx=0.0, cy=0.0):
    return torch.sqrt((u - cx) ** 2 + (v - cy) ** 2) - r


def _triangle(u, v):
    k = math.sqrt(3.0)
    u, v = u.abs() - 0.95, v + 0.95 / k
    flip = u + k * v > 0
    u2 = torch.where(flip, (u - k * v) / 2, u)
    v2 = torch.where(flip, (-k * u - v) / 2, v)
    u2 = u2 - u2.clamp(-1.9, 0.0)
    return -torch.sqrt(u2**2 + v2**2) * torch.sign(v2)


def _sdf(shape: int, u, v):
    name = SHAPES[shape]
    if name == "disc":
        return _disc(u, v, 0.9)
    if name == "square":
        return _box(u, v, 0.75, 0.75)
    if name == "triangle":
        return _triangle(u, v)
    if name == "cross":
        return torch.minimum(_box(u, v, 0.95, 0.28), _box(u, v, 0.28, 0.95))
    if name == "ring":
        return (torch.sqrt(u**2 + v**2) - 0.7).abs() - 0.24
    if name == "bar":
        return _box(u, v, 1.0, 0.32)
    if name == "star":
        r, phi = torch.sqrt(u**2 + v**2), torch.atan2(v, u)
        return r - (0.62 + 0.33 * torch.cos(5 * phi))
    if name == "crescent":
        return torch.maximum(_disc(u, v, 0.95), -_disc(u, v, 0.8, 0.45, 0.15))
    if name == "ell":
        return torch.minimum(_box(u + 0.55, v, 0.28, 0.95), _box(u, v - 0.67, 0.83, 0.28))
    if name == "dumbbell":
        ends = torch.minimum(_disc(u, v, 0.4, -0.6, 0.0), _disc(u, v, 0.4, 0.6, 0.0))
        return torch.minimum(ends, _box(u, v, 0.6, 0.14))
    if name == "waveband":
        return torch.maximum((v - 0.35 * torch.sin(3.2 * u)).abs() - 0.27, u.abs() - 1.0)
    if name == "semicircle":
        return torch.maximum(_disc(u, v - 0.35, 0.95), v - 0.35)
    raise ValueError(f"unknown shape index {shape}")  # pragma: no cover - internal


def _texture(tex: int, x, y, freq, orient, phase, gen_noise):
    """A pattern in [0, 1]; x, y in pixels relative to the object centre; freq in cycles per pixel."""
    c, s = torch.cos(orient), torch.sin(orient)
    t1, t2 = x * c + y * s, -x * s + y * c
    w = 2 * math.pi * freq
    name = TEXTURES[tex]
    if name == "plain":
        return torch.ones_like(x)
    if name == "stripes":
        return 0.5 + 0.5 * torch.tanh(3 * torch.cos(w * t1 + phase))
    if name == "checker":
        return 0.5 + 0.5 * torch.tanh(3 * torch.cos(w * t1 + phase) * torch.cos(w * t2 + phase))
    if name == "dots":
        return torch.sigmoid(8 * (torch.cos(w * t1 + phase) * torch.cos(w * t2 + phase) - 0.45))
    if name == "grid":
        lines = torch.maximum(torch.cos(w * t1 + phase), torch.cos(w * t2 + phase))
        return torch.sigmoid(10 * (lines - 0.75))
    if name == "rings":
        return 0.5 + 0.5 * torch.tanh(3 * torch.cos(w * torch.sqrt(x**2 + y**2) + phase))
    if name == "spokes":
        return 0.5 + 0.5 * torch.tanh(3 * torch.cos(7 * torch.atan2(t2, t1) + phase))
    if name == "blobs":
        f = 0.45 * w
        field_ = torch.cos(f * t1 + phase) + torch.cos(f * (0.5 * t1 + 0.87 * t2) + 2 * phase)
        field_ = field_ + torch.cos(f * (-0.5 * t1 + 0.87 * t2) - phase)
        return torch.sigmoid(4 * field_)
    if name == "wavy":
        return 0.5 + 0.5 * torch.tanh(3 * torch.cos(w * (t1 + 2.5 * torch.sin(0.35 * w * t2)) + phase))
    if name == "speckle":
        return (torch.rand(x.shape, generator=gen_noise) > 0.5).to(x.dtype)
    raise ValueError(f"unknown texture index {tex}")  # pragma: no cover - internal


def _hsv_to_rgb(h, s, v):
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def render(
    shape: torch.Tensor,
    texture: torch.Tensor,
    palette: torch.Tensor,
    *,
    size: int = 32,
    seed: int = 0,
    noise: float = 0.06,
) -> torch.Tensor:
    """Render images from per-image factor indices; nuisances are drawn from ``seed``.

    Parameters
    ----------
    shape, texture, palette : LongTensor [N]
        Indices into ``SHAPES`` (source then novel), ``TEXTURES`` and ``PALETTES``.
    size : int
        Image side in pixels (8 to 256).
    seed : int
        Seeds every nuisance draw; the same arguments give the same pixels.

    Returns
    -------
    uint8 tensor [N, 3, size, size]

    Examples
    --------
    >>> img = render(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), size=16)
    >>> tuple(img.shape), img.dtype
    ((1, 3, 16, 16), torch.uint8)
    """
    if not 8 <= int(size) <= 256:
        raise ValueError(f"size must be between 8 and 256 pixels, got {size!r}")
    n = len(shape)
    if not (len(texture) == len(palette) == n):
        raise ValueError(f"shape, texture and palette need the same length, got {n}, {len(texture)}, {len(palette)}")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(int(seed))
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        out[sl] = _render_chunk(shape[sl], texture[sl], palette[sl], size, gen, noise)
    return out


def _render_chunk(shape, texture, palette, size, gen, noise):
    n = len(shape)
    u01 = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    cx, cy = (u01(n) - 0.5) * 0.6, (u01(n) - 0.5) * 0.6  # +-15% of the width (the image spans [-1, 1])
    radius = 0.44 + 0.24 * u01(n)  # 0.22-0.34 of the width
    theta = u01(n) * 2 * math.pi
    freq = 0.12 + 0.08 * u01(n)  # cycles per pixel
    orient, phase = u01(n) * math.pi, u01(n) * 2 * math.pi
    hue_fg, hue_bg = u01(n), u01(n)
    sat_fg, sat_bg = 0.5 + 0.5 * u01(n), 0.1 + 0.3 * u01(n)
    val_hi, val_lo = 0.75 + 0.25 * u01(n), 0.05 + 0.2 * u01(n)

    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    dx, dy = gx[None] - cx[:, None, None], gy[None] - cy[:, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    r = radius[:, None, None]
    u, v = (dx * c + dy * s) / r, (-dx * s + dy * c) / r

    sdf = torch.empty_like(u)
    for k in shape.unique().tolist():
        idx = (shape == k).nonzero(as_tuple=True)[0]
        sdf[idx] = _sdf(k, u[idx], v[idx])
    pixel = 2.0 / size
    alpha = torch.sigmoid(-2.0 * sdf * r / pixel)  # anti-aliased edge about one pixel wide

    tex = torch.empty_like(u)
    px, py = dx / pixel, dy / pixel
    for k in texture.unique().tolist():
        idx = (texture == k).nonzero(as_tuple=True)[0]
        tex[idx] = _texture(
            k, px[idx], py[idx], freq[idx, None, None], orient[idx, None, None], phase[idx, None, None], gen
        )

    inverted = palette.bool()
    fg = _hsv_to_rgb(hue_fg, sat_fg, torch.where(inverted, val_lo, val_hi))
    bg = _hsv_to_rgb(hue_bg, sat_bg, torch.where(inverted, val_hi, val_lo))
    # The texture mixes the object colour with a second tone: darker for bright objects, lighter for dark
    # ones, so that a texture stays visible in both palettes.
    second = torch.where(inverted[:, None], fg + 0.45 * (bg - fg), 0.35 * fg)
    obj = fg[:, :, None, None] * tex[:, None] + second[:, :, None, None] * (1 - tex[:, None])
    img = bg[:, :, None, None] * (1 - alpha[:, None]) + obj * alpha[:, None]
    img = img + noise * torch.randn(img.shape, generator=gen)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


# ----------------------------------------------------------------------------------------------------------
class TensorLoader:
    """Mini-batches of normalised float images from uint8 tensors held in memory.

    Much faster than a ``DataLoader`` over a ``TensorDataset`` for small images (one indexing op per batch,
    no per-item Python). Shuffling is seeded and changes every epoch in a reproducible way.
    """

    def __init__(self, x, y, batch_size=128, *, shuffle=False, seed=0, mean=WORLD_MEAN, std=WORLD_STD,
                 drop_last=False):
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"x must be a uint8 tensor [N, C, H, W], got {x.dtype} with shape {tuple(x.shape)}")
        if len(x) != len(y):
            raise ValueError(f"x and y disagree on N: {len(x)} images but {len(y)} labels")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self._epoch = 0

    def __len__(self):
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __iter__(self):
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self._epoch))
        else:
            order = torch.arange(n)
        self._epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield (self.x[idx].float() - self.mean) / self.std, self.y[idx]


@dataclass(frozen=True)
class ImageTask:
    """A classification task held in memory: uint8 images and integer labels, split train/test."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...] = WORLD_MEAN
    std: tuple[float, ...] = WORLD_STD
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    def loader(self, split="train", batch_size=128, *, shuffle=None, seed=0, mean=None, std=None,
               drop_last=False) -> TensorLoader:
        """Batches of ``split`` ("train" or "test"), normalised with the task's mean/std unless given.

        ``shuffle`` defaults to True for "train" and False for "test".
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        return TensorLoader(
            x, y, batch_size, shuffle=(split == "train") if shuffle is None else shuffle, seed=seed,
            mean=self.mean if mean is None else mean, std=self.std if std is None else std, drop_last=drop_last,
        )

    def subset(self, n_per_class: int, *, seed: int = 0) -> ImageTask:
        """A stratified, seeded subset of the training split (the test split is kept whole)."""
        idx = _stratified(self.y_train, n_per_class, seed, self.num_classes)
        info = dict(self.info, n_per_class=int(n_per_class))
        return ImageTask(self.name, self.x_train[idx], self.y_train[idx], self.x_test, self.y_test, self.classes,
                         self.mean, self.std, info)

    def __repr__(self):
        return (f"ImageTask({self.name!r}, classes={self.num_classes}, train={len(self.y_train)}, "
                f"test={len(self.y_test)}, size={self.image_size})")


def _stratified(y, n_per_class, seed, num_classes):
    _check_n(n_per_class)
    gen = torch.Generator().manual_seed(int(seed))
    picks = []
    for c in range(num_classes):
        members = (y == c).nonzero(as_tuple=True)[0]
        if len(members) < n_per_class:
            raise ValueError(f"class {c} has only {len(members)} training images, fewer than n_per_class={n_per_class}")
        picks.append(members[torch.randperm(len(members), generator=gen)[:n_per_class]])
    return torch.cat(picks).sort().values


def _check_n(n_per_class):
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"n_per_class must be an integer >= 1, got {n_per_class!r}")


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _labels(num_classes, n, gen):
    """n images per class, in a seeded random order."""
    y = torch.arange(num_classes).repeat_interleave(n)
    return y[torch.randperm(len(y), generator=gen)]


def source_task(n_per_class: int = 2000, *, seed: int = 0, size: int = 32, n_test_per_class: int = 50,
                label: str = "combo") -> ImageTask:
    """The pretraining task: 20 (shape, texture) classes of the source vocabulary.

    Parameters
    ----------
    n_per_class : int
        Training images per class (2000 gives 40,000 images).
    label : {"combo", "shape", "texture"}
        What the label names: the (shape, texture) combination (20 classes), or only the shape (6) or only the
        texture (5) of the same images. The zoo pretrains some models on the partial labels, which makes them
        transfer differently.

    Examples
    --------
    >>> t = source_task(2, n_test_per_class=1, size=16); t.num_classes, len(t.y_train)
    (20, 40)
    """
    _check_n(n_per_class)
    _check_n(n_test_per_class)
    _check_seed(seed)
    if label not in ("combo", "shape", "texture"):
        raise ValueError(f"label must be 'combo', 'shape' or 'texture', got {label!r}")
    combos = torch.tensor(_SOURCE_COMBOS)
    splits = []
    for part, n in (("train", n_per_class), ("test", n_test_per_class)):
        gen = torch.Generator().manual_seed(_split_seed(seed, part, "source"))
        y = _labels(len(combos), n, gen)
        shape, tex = combos[y, 0], combos[y, 1]
        x = render(shape, tex, torch.zeros_like(y), size=size, seed=_split_seed(seed, part, "pixels"))
        target = {"combo": y, "shape": shape, "texture": tex}[label]
        splits += [x, target]
    if label == "combo":
        classes = tuple(f"{SHAPES[s]}/{TEXTURES[t]}" for s, t in _SOURCE_COMBOS)
    else:
        classes = SOURCE_SHAPES if label == "shape" else SOURCE_TEXTURES
    return ImageTask(f"source[{label}]", *splits, classes=classes,
                     info=dict(kind="source", label=label, seed=seed, n_per_class=n_per_class))


def target_classes(similarity: float) -> list[tuple[int, int, int]]:
    """The (shape, texture, palette) indices of the 10 target classes at ``similarity``.

    Examples
    --------
    >>> [SHAPES[s] for s, _, _ in target_classes(1.0)][:3]
    ['disc', 'disc', 'square']
    """
    _check_similarity(similarity)
    n_novel = round((1.0 - float(similarity)) * 30)
    novel = set(_SLOT_ORDER[:n_novel])  # slot = 3 * class + factor
    out = []
    for c, (s, t) in enumerate(_TARGET_COMBOS):
        shape = s + 6 if 3 * c in novel else s
        tex = t + 5 if 3 * c + 1 in novel else t
        pal = 1 if 3 * c + 2 in novel else 0
        out.append((shape, tex, pal))
    return out


def _check_similarity(similarity):
    if isinstance(similarity, bool) or not isinstance(similarity, (int, float)) or not 0.0 <= similarity <= 1.0:
        raise ValueError(f"similarity must be a number in [0, 1], got {similarity!r}")


def target_task(n_per_class: int, similarity: float = 1.0, *, seed: int = 0, size: int = 32,
                n_test_per_class: int = 50) -> ImageTask:
    """A 10-class target task; ``similarity`` in [0, 1] sets how much of the source vocabulary it reuses.

    The test split depends only on ``similarity``, ``seed`` and ``n_test_per_class``, not on
    ``n_per_class``, so accuracies at different data sizes are measured on the same images.

    Examples
    --------
    >>> t = target_task(3, similarity=0.5, n_test_per_class=2, size=16); t.num_classes, len(t.y_train)
    (10, 30)
    """
    _check_n(n_per_class)
    _check_n(n_test_per_class)
    _check_similarity(similarity)
    _check_seed(seed)
    factors = torch.tensor(target_classes(similarity))
    splits = []
    for part, n in (("train", n_per_class), ("test", n_test_per_class)):
        gen = torch.Generator().manual_seed(_split_seed(seed, part, "target"))
        y = _labels(10, n, gen)
        f = factors[y]
        x = render(f[:, 0], f[:, 1], f[:, 2], size=size, seed=_split_seed(seed, part, f"pixels{similarity:.4f}"))
        splits += [x, y]
    classes = tuple(f"{SHAPES[s]}/{TEXTURES[t]}/{PALETTES[p]}" for s, t, p in factors.tolist())
    novel = round((1.0 - float(similarity)) * 30)
    return ImageTask(f"target[sim={similarity:g}]", *splits, classes=classes,
                     info=dict(kind="target", similarity=float(similarity), novel_factor_slots=novel,
                               seed=seed, n_per_class=n_per_class))


def digits_task(n_per_class: int, *, seed: int = 0, size: int = 32, n_test_per_class: int = 50) -> ImageTask:
    """scikit-learn's handwritten digits (8x8, bundled, no network), upsampled to ``size``: a real target.

    1,797 images, about 180 per class: ``n_per_class + n_test_per_class`` may be at most 174 (the smallest
    class has 174 images).
    """
    from sklearn.datasets import load_digits

    _check_n(n_per_class)
    _check_n(n_test_per_class)
    _check_seed(seed)
    d = load_digits()
    y_all = torch.as_tensor(d.target, dtype=torch.long)
    smallest = int(torch.bincount(y_all).min())
    if n_per_class + n_test_per_class > smallest:
        raise ValueError(f"digits has at most {smallest} images in its smallest class; n_per_class + "
                         f"n_test_per_class = {n_per_class + n_test_per_class} is too many")
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    x = (x.repeat(1, 3, 1, 1) * 255).round().to(torch.uint8)
    gen = torch.Generator().manual_seed(_split_seed(seed, "split", "digits"))
    train_idx, test_idx = [], []
    for c in range(10):
        members = (y_all == c).nonzero(as_tuple=True)[0]
        members = members[torch.randperm(len(members), generator=gen)]
        test_idx.append(members[:n_test_per_class])
        train_idx.append(members[n_test_per_class : n_test_per_class + n_per_class])
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    return ImageTask("digits", x[tr], y_all[tr], x[te], y_all[te], classes=tuple(str(i) for i in range(10)),
                     info=dict(kind="digits", seed=seed, n_per_class=n_per_class))


def make_task(name: str, **kwargs) -> ImageTask:
    """Build a task by name: ``"source"``, ``"target"`` or ``"digits"`` (keyword arguments pass through).

    Examples
    --------
    >>> make_task("digits", n_per_class=5, n_test_per_class=5).num_classes
    10
    """
    builders = {"source": source_task, "target": target_task, "digits": digits_task}
    if name not in builders:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(builders)}")
    return builders[name](**kwargs)


def _split_seed(seed: int, part: str, what: str) -> int:
    """A stable 63-bit seed for (seed, part, what), independent of Python's hash randomisation."""
    h = 1469598103934665603
    for ch in f"{seed}|{part}|{what}":
        h = ((h ^ ord(ch)) * 1099511628211) % (1 << 63)
    return h
