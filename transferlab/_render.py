"""How the world draws one image: signed distance functions for the shapes, procedural textures, colours and
noise, vectorised over a chunk of images. :func:`transferlab.world.render` is the public entry point."""

from __future__ import annotations

import math

import torch

SOURCE_SHAPES = ("disc", "square", "triangle", "cross", "ring", "bar")
NOVEL_SHAPES = ("star", "crescent", "ell", "dumbbell", "waveband", "semicircle")
SOURCE_TEXTURES = ("plain", "stripes", "checker", "dots", "grid")
NOVEL_TEXTURES = ("rings", "spokes", "blobs", "wavy", "speckle")
PALETTES = ("bright-on-dark", "dark-on-bright")
SHAPES = SOURCE_SHAPES + NOVEL_SHAPES
TEXTURES = SOURCE_TEXTURES + NOVEL_TEXTURES
CHUNK = 2048


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


# Nuisance shifts for out-of-distribution splits (transferlab.world.ood_split): each a strength in [0, 1], 0 = as in
# training. They change only how an image is drawn, never its class factors (shape, texture, palette).
SHIFT_KNOBS = ("pose", "colour", "background", "noise")


def render_chunk(shape, texture, palette, size, gen, noise, shift=None, nuisances: dict | None = None):
    """One chunk of images. ``shift`` (a dict of :data:`SHIFT_KNOBS` strengths, or None) moves the nuisance
    distributions away from the training one; with None, or every strength 0, the draws and pixels are exactly
    those of the unshifted world (extra random numbers are drawn only for an active background shift). When
    ``nuisances`` is a dict, it receives the per-image draws (the pixels and the draws from ``gen`` are the same
    either way: the dict is only filled in)."""
    shift = shift or {}
    pose, colour = shift.get("pose", 0.0), shift.get("colour", 0.0)
    background, extra_noise = shift.get("background", 0.0), shift.get("noise", 0.0)
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
    if pose:  # smaller objects, further off-centre: at 1, radius x0.65 (below the training range), offsets x1.6
        radius = radius * (1 - 0.35 * pose)
        cx, cy = cx * (1 + 0.6 * pose), cy * (1 + 0.6 * pose)
    if colour:  # washed-out objects on colourful backgrounds, less contrast; the brighter side stays the brighter
        sat_fg, sat_bg = sat_fg * (1 - 0.7 * colour), (sat_bg + 0.5 * colour).clamp(max=1.0)
        val_hi, val_lo = val_hi - 0.2 * colour, val_lo + 0.2 * colour
    if background:  # a low-frequency wave of a second colour (of the background's brightness) across the background
        hue_b2, wave_freq = u01(n), 0.03 + 0.03 * u01(n)  # cycles per pixel: well below the textures' 0.12-0.20
        wave_orient, wave_phase = u01(n) * math.pi, u01(n) * 2 * math.pi
    if nuisances is not None:  # in the units of transferlab.world.NUISANCES (image width = 1, centre = 0)
        nuisances.update(x=cx / 2, y=cy / 2, size=radius / 2, rotation=theta, hue=hue_fg, background_hue=hue_bg,
                         saturation=sat_fg, texture_frequency=freq, texture_orientation=orient)

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
    bg_img = bg[:, :, None, None].expand(n, 3, size, size)
    if background:
        bg2 = _hsv_to_rgb(hue_b2, (sat_bg + 0.4).clamp(max=1.0), torch.where(inverted, val_hi, val_lo))
        oc, os_ = torch.cos(wave_orient)[:, None, None], torch.sin(wave_orient)[:, None, None]
        t = (gx[None] * oc + gy[None] * os_) / pixel  # pixels along the wave's direction
        wave = 0.5 + 0.5 * torch.sin(2 * math.pi * wave_freq[:, None, None] * t + wave_phase[:, None, None])
        bg_img = bg_img + background * wave[:, None] * (bg2 - bg)[:, :, None, None]
    # The texture mixes the object colour with a second tone: darker for bright objects, lighter for dark
    # ones, so that a texture stays visible in both palettes.
    second = torch.where(inverted[:, None], fg + 0.45 * (bg - fg), 0.35 * fg)
    obj = fg[:, :, None, None] * tex[:, None] + second[:, :, None, None] * (1 - tex[:, None])
    img = bg_img * (1 - alpha[:, None]) + obj * alpha[:, None]
    img = img + (noise + 0.2 * extra_noise) * torch.randn(img.shape, generator=gen)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)
