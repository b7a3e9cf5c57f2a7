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
- An **out-of-distribution split** of a target task (:func:`ood_split`): the same 10 classes (the same
  shape/texture/palette combinations) drawn with shifted *nuisances* only (smaller, off-centre objects; washed-out
  colours on colourful backgrounds; a structured background; stronger noise), each knob a strength in [0, 1]
  (:data:`OOD_KNOBS`). The task's own train / validation / test images are untouched.
- **digits**: scikit-learn's bundled handwritten digits, upsampled: a real, honestly dissimilar target.
- **Regression targets** (:func:`regression_task`): the nuisances the world draws per image (position, size,
  rotation, colour) are known exactly, so they are real-valued targets for free, like dSprites' latent factors.
  ``render(..., return_nuisances=True)`` returns them next to the pixels (the pixels are the same either way).

Rendering is vectorised torch over chunks of images; the same seed gives the same pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _render
from ._render import (
    NOVEL_SHAPES,
    NOVEL_TEXTURES,
    PALETTES,
    SHAPES,
    SOURCE_SHAPES,
    SOURCE_TEXTURES,
    TEXTURES,
    render_chunk,
)
from ._validate import as_float, as_int, as_probability, as_seed
from .tasks import WORLD_MEAN, WORLD_STD, ImageTask, TensorLoader, split_seed

__all__ = [
    "SOURCE_SHAPES",
    "SOURCE_TEXTURES",
    "NOVEL_SHAPES",
    "NOVEL_TEXTURES",
    "PALETTES",
    "SHAPES",
    "TEXTURES",
    "WORLD_MEAN",
    "WORLD_STD",
    "ImageTask",
    "TensorLoader",
    "source_task",
    "target_task",
    "digits_task",
    "render",
    "target_classes",
    "NUISANCES",
    "REGRESSION_TARGETS",
    "ROTATION_ORDER",
    "RegressionTask",
    "regression_task",
    "regression_columns",
    "WORLD_VERSION",
    "OOD_KNOBS",
    "ood_split",
]

WORLD_VERSION = 1
"""Bump when the world's rendering changes: every model pretrained on it (the zoo's recipes) is rebuilt."""

# (shape, texture) combinations: the 10 with (s + t) % 3 == 0 are held out for targets, the other 20 are the
# source classes. Every shape and every texture occurs on both sides.
_TARGET_COMBOS = tuple((s, t) for s in range(6) for t in range(5) if (s + t) % 3 == 0)
_SOURCE_COMBOS = tuple((s, t) for s in range(6) for t in range(5) if (s + t) % 3 != 0)
# The fixed order in which target factor slots (class, factor) turn novel as similarity falls.
_SLOT_ORDER = torch.randperm(30, generator=torch.Generator().manual_seed(20181)).tolist()


def render(
    shape: torch.Tensor,
    texture: torch.Tensor,
    palette: torch.Tensor,
    *,
    size: int = 32,
    seed: int = 0,
    noise: float = 0.06,
    shift: dict | None = None,
    return_nuisances: bool = False,
):
    """Render images from per-image factor indices; nuisances are drawn from ``seed``.

    Parameters
    ----------
    shape, texture, palette : LongTensor [N]
        Indices into ``SHAPES`` (source then novel), ``TEXTURES`` and ``PALETTES``.
    size : int
        Image side in pixels (8 to 256).
    seed : int
        Seeds every nuisance draw; the same arguments give the same pixels.
    shift : dict, optional
        Nuisance shifts ``{knob: strength in [0, 1]}`` (knobs: :data:`OOD_KNOBS`); None, or every strength 0, draws
        exactly the unshifted images.
    return_nuisances : bool
        Also return what was drawn per image, ``{name: float tensor [N]}`` (see :data:`NUISANCES`). The pixels
        are bit-identical with or without it.

    Returns
    -------
    uint8 tensor [N, 3, size, size], or ``(images, nuisances)`` with ``return_nuisances=True``

    Examples
    --------
    >>> img = render(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), size=16)
    >>> tuple(img.shape), img.dtype
    ((1, 3, 16, 16), torch.uint8)
    >>> img2, nuis = render(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), size=16, return_nuisances=True)
    >>> torch.equal(img, img2), sorted(nuis)[:4]
    (True, ['background_hue', 'hue', 'rotation', 'saturation'])
    """
    size = as_int("size", size, min=8, max=256)
    seed = as_seed(seed)
    noise = as_float("noise", noise, min=0.0)
    shift = check_shift(shift or {})
    shape = factor_indices("shape", shape, len(SHAPES), SHAPES)
    texture = factor_indices("texture", texture, len(TEXTURES), TEXTURES)
    palette = factor_indices("palette", palette, len(PALETTES), PALETTES)
    n = len(shape)
    if not (len(texture) == len(palette) == n):
        raise ValueError(f"shape, texture and palette need the same length, got {n}, {len(texture)}, {len(palette)}")
    if not isinstance(return_nuisances, bool):
        raise ValueError(f"return_nuisances must be True or False, got {return_nuisances!r}")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(seed)
    chunk = _render.CHUNK
    drawn: list[dict] = []
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        nuis = {} if return_nuisances else None
        out[sl] = render_chunk(shape[sl], texture[sl], palette[sl], size, gen, noise, shift, nuis)
        drawn.append(nuis)
    if not return_nuisances:
        return out
    names = tuple(drawn[0]) if drawn else NUISANCES
    return out, {k: torch.cat([d[k] for d in drawn]) if drawn else torch.zeros(0) for k in names}


NUISANCES = {
    "x": "horizontal position of the object's centre, as a fraction of the image width from the centre (-0.15 to "
         "0.15, rightwards)",
    "y": "vertical position of the object's centre, as a fraction of the image width (-0.15 to 0.15, downwards)",
    "size": "the object's radius as a fraction of the image width (0.22 to 0.34)",
    "rotation": "the object's rotation in radians (0 to 2 pi; a shape's symmetry makes some of it invisible, see "
                "ROTATION_ORDER)",
    "hue": "the object's hue on the colour wheel (0 to 1)",
    "background_hue": "the background's hue (0 to 1)",
    "saturation": "the object's colour saturation (0.5 to 1)",
    "texture_frequency": "the texture's frequency in cycles per pixel (0.12 to 0.20)",
    "texture_orientation": "the texture's orientation in radians (0 to pi)",
}
"""What :func:`render` draws per image and returns with ``return_nuisances=True``: name -> meaning and units."""

def factor_indices(name: str, idx, count: int, names: tuple) -> torch.Tensor:
    """Factor indices as a 1-d long tensor, every one in ``0..count-1`` (no negative wrap-around)."""
    t = torch.as_tensor(idx)
    if t.ndim != 1 or t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-d tensor of integer indices, got {t.dtype} with shape {tuple(t.shape)}")
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= count):
        bad = int(t.min()) if int(t.min()) < 0 else int(t.max())
        raise ValueError(f"{name} index {bad} is out of range: expected 0..{count - 1} ({', '.join(names)})")
    return t.long()


# ----------------------------------------------------------------------------------------------------------
def balanced_labels(num_classes, n, gen):
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
    n_per_class, n_test_per_class, seed = _counts(n_per_class, n_test_per_class, seed)
    size = as_int("size", size, min=8, max=256)
    if label not in ("combo", "shape", "texture"):
        raise ValueError(f"label must be 'combo', 'shape' or 'texture', got {label!r}")
    combos = torch.tensor(_SOURCE_COMBOS)
    splits = []
    for part, n in (("train", n_per_class), ("test", n_test_per_class)):
        gen = torch.Generator().manual_seed(split_seed(seed, part, "source"))
        y = balanced_labels(len(combos), n, gen)
        shape, tex = combos[y, 0], combos[y, 1]
        x = render(shape, tex, torch.zeros_like(y), size=size, seed=split_seed(seed, part, "pixels"))
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
    similarity = as_probability("similarity", similarity)
    n_novel = round((1.0 - float(similarity)) * 30)
    novel = set(_SLOT_ORDER[:n_novel])  # slot = 3 * class + factor
    out = []
    for c, (s, t) in enumerate(_TARGET_COMBOS):
        shape = s + 6 if 3 * c in novel else s
        tex = t + 5 if 3 * c + 1 in novel else t
        pal = 1 if 3 * c + 2 in novel else 0
        out.append((shape, tex, pal))
    return out


def _counts(n_per_class, n_test_per_class, seed) -> tuple[int, int, int]:
    return (as_int("n_per_class", n_per_class, min=1), as_int("n_test_per_class", n_test_per_class, min=1),
            as_seed(seed))


def target_task(n_per_class: int, similarity: float = 1.0, *, seed: int = 0, size: int = 32,
                n_test_per_class: int = 50, n_val_per_class: int = 0, seal: bool | None = None) -> ImageTask:
    """A 10-class target task; ``similarity`` in [0, 1] sets how much of the source vocabulary it reuses.

    The test split depends only on ``similarity``, ``seed`` and ``n_test_per_class``, not on
    ``n_per_class``, so accuracies at different data sizes are measured on the same images. With
    ``n_val_per_class > 0`` a validation split is rendered too (its own images, for every choice a lesson makes)
    and the test split is sealed (``seal``, default: sealed exactly when there is a validation split): it is read
    with ``loader("test", final=True)``. Train and test images are the same with or without a validation split.

    Examples
    --------
    >>> t = target_task(3, similarity=0.5, n_test_per_class=2, size=16); t.num_classes, len(t.y_train)
    (10, 30)
    >>> target_task(3, n_test_per_class=2, n_val_per_class=2, size=16).splits
    ('train', 'val', 'test')
    """
    n_per_class, n_test_per_class, seed = _counts(n_per_class, n_test_per_class, seed)
    n_val_per_class = as_int("n_val_per_class", n_val_per_class, min=0)
    similarity = as_probability("similarity", similarity)
    factors = torch.tensor(target_classes(similarity))
    parts = {}
    for part, n in (("train", n_per_class), ("test", n_test_per_class), ("val", n_val_per_class)):
        if n == 0:
            continue
        gen = torch.Generator().manual_seed(split_seed(seed, part, "target"))
        y = balanced_labels(10, n, gen)
        f = factors[y]
        x = render(f[:, 0], f[:, 1], f[:, 2], size=size, seed=split_seed(seed, part, f"pixels{similarity:.4f}"))
        parts[part] = (x, y)
    classes = tuple(f"{SHAPES[s]}/{TEXTURES[t]}/{PALETTES[p]}" for s, t, p in factors.tolist())
    novel = round((1.0 - float(similarity)) * 30)
    x_val, y_val = parts.get("val", (None, None))
    return ImageTask(f"target[sim={similarity:g}]", *parts["train"], *parts["test"], classes=classes,
                     info=dict(kind="target", similarity=float(similarity), novel_factor_slots=novel,
                               seed=seed, n_per_class=n_per_class), x_val=x_val, y_val=y_val,
                     sealed=sealed_default(seal, n_val_per_class))


def sealed_default(seal: bool | None, n_val: int) -> bool:
    return n_val > 0 if seal is None else bool(seal)


def digits_task(n_per_class: int, *, seed: int = 0, size: int = 32, n_test_per_class: int = 50,
                n_val_per_class: int = 0, seal: bool | None = None) -> ImageTask:
    """scikit-learn's handwritten digits (8x8, bundled, no network), upsampled to ``size``: a real target.

    1,797 images, about 180 per class: ``n_per_class + n_val_per_class + n_test_per_class`` may be at most 174
    (the smallest class has 174 images). A validation split seals the test split, as in :func:`target_task`.
    """
    from sklearn.datasets import load_digits

    n_per_class, n_test_per_class, seed = _counts(n_per_class, n_test_per_class, seed)
    n_val_per_class = as_int("n_val_per_class", n_val_per_class, min=0)
    size = as_int("size", size, min=8, max=256)
    d = load_digits()
    y_all = torch.as_tensor(d.target, dtype=torch.long)
    smallest = int(torch.bincount(y_all).min())
    total = n_per_class + n_val_per_class + n_test_per_class
    if total > smallest:
        raise ValueError(f"digits has at most {smallest} images in its smallest class; n_per_class + "
                         f"n_val_per_class + n_test_per_class = {total} is too many")
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    x = (x.repeat(1, 3, 1, 1) * 255).round().to(torch.uint8)
    gen = torch.Generator().manual_seed(split_seed(seed, "split", "digits"))
    train_idx, val_idx, test_idx = [], [], []
    for c in range(10):
        members = (y_all == c).nonzero(as_tuple=True)[0]
        members = members[torch.randperm(len(members), generator=gen)]
        test_idx.append(members[:n_test_per_class])
        rest = members[n_test_per_class:]  # validation images come after the test images, training after both
        val_idx.append(rest[:n_val_per_class])
        train_idx.append(rest[n_val_per_class : n_val_per_class + n_per_class])
    tr, va, te = torch.cat(train_idx), torch.cat(val_idx), torch.cat(test_idx)
    has_val = n_val_per_class > 0
    return ImageTask("digits", x[tr], y_all[tr], x[te], y_all[te], classes=tuple(str(i) for i in range(10)),
                     info=dict(kind="digits", seed=seed, n_per_class=n_per_class),
                     x_val=x[va] if has_val else None, y_val=y_all[va] if has_val else None,
                     sealed=sealed_default(seal, n_val_per_class))


# out-of-distribution splits and regression targets live in their own modules; their public names are here
from ._ood import OOD_KNOBS, check_shift, ood_split  # noqa: E402 - they build on render() and target_task() above

# the regression targets (rotation, size, position, colour) live in their own module; their public names are here
from ._regression import (  # noqa: E402 - they build on render() and target_classes() above
    REGRESSION_TARGETS,
    ROTATION_ORDER,
    RegressionTask,
    regression_columns,
    regression_task,
)
