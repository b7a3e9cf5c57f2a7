"""Self-supervised pretraining for the zoo: SimCLR on the world's source images, with no label ever read.

LogME, unlike LEEP and NCE, needs no source classifier: it scores any model that turns an image into features.
To show it, the zoo holds a model pretrained **without labels**, by SimCLR (Chen et al., 2020): every image is
augmented twice, and the network learns to tell which two of the ``2B`` views in a batch come from the same
image (the NT-Xent loss, a ``2B - 1``-way classification per view). The augmentations decide what the features
learn to ignore; here they are exactly the world's nuisances (position, size, rotation, colour), so the
features are pushed towards what stays: the shape and the texture.

Why SimCLR and not another pretext task, on 2 CPU cores in about a minute:

- **rotation prediction** (RotNet) has nothing to learn here: the world draws every rotation with equal
  probability, so an image turned by 90 degrees is as likely as the original;
- an **autoencoder** keeps what the pixels need (position, colour) rather than what a class needs;
- SimCLR with a batch of 256 gets 510 negatives per view from one forward pass, needs no momentum encoder or
  memory bank (BYOL, MoCo) and learns usable features within a few epochs on this world.

The model keeps its projection head as its pretraining head (as the supervised zoo models keep their source
classifier) and says it has no source classes: ``num_classes == 0``, timm's convention for "no classifier".
LEEP and NCE, which read a source classifier's class probabilities, are therefore undefined for it.

:class:`SimCLRSpec` is the zoo recipe (a :class:`~transferlab.zoo.ZooEntry`). A recipe with ``stop_after=k`` is
a *checkpoint*: the same run stopped after ``k`` of its epochs (the learning-rate schedule is that of the whole
run, so the checkpoints lie on the final model's path). Building any member of a run trains the whole run once
per process and keeps every epoch's weights in memory, so ``make zoo`` pays for one run, not one per checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import as_float, as_int, as_seed
from .device import seeded
from .kitnet import ARCHITECTURES, KitNet
from .tasks import WORLD_MEAN, WORLD_STD
from .train import Callback, evaluate, fit
from .world import WORLD_VERSION
from .zoo_entry import ZooEntry

__all__ = ["augment", "ContrastiveViews", "nt_xent", "pair_accuracy", "SimCLRSpec", "checkpoints", "register",
           "SSL_ENTRIES"]

_RECIPE_VERSION = 1  # bump when the augmentations or the training loop change, so cached models are rebuilt


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One random view of each normalised image in ``x`` [B, C, H, W]: the world's nuisances, drawn anew.

    A random rotation (any angle), horizontal flip, zoom (0.75x to 1.15x) and shift move and turn the object (its
    position, size and rotation are nuisances); a random permutation of the colour channels and a random gain
    and offset change its colours (hue and brightness are nuisances). The bright-on-dark palette is kept.

    Examples
    --------
    >>> v = augment(torch.zeros(4, 3, 16, 16), torch.Generator().manual_seed(0)); tuple(v.shape)
    (4, 3, 16, 16)
    """
    b = x.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    scale = 0.87 + 0.46 * u(b)  # > 1 zooms out: the sampling grid covers more than the image
    angle = 2 * math.pi * u(b)
    flip = (u(b) < 0.5).float() * 2 - 1
    shift = (u(b, 2) * 2 - 1) * 0.12
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    perm = u(b, x.shape[1]).argsort(1)  # a random order of the channels per image
    out = torch.gather(out, 1, perm[:, :, None, None].expand_as(out))
    return out * (0.75 + 0.5 * u(b, 1, 1, 1)) + 0.4 * (u(b, 1, 1, 1) - 0.5)


class ContrastiveViews:
    """Batches of two views per image for SimCLR: ``(views [2B, C, H, W], positives [2B])``.

    ``views[i]`` and ``views[positives[i]]`` are two augmentations of the same image. Images are uint8
    ``[N, C, H, W]``, normalised with the world's statistics; labels are never read (there are none). Order and
    augmentations are seeded and change every epoch; with ``fixed=True`` every pass gives the same batches (for
    measuring the pretext loss on held-out images).

    Examples
    --------
    >>> views = ContrastiveViews(torch.zeros(6, 3, 8, 8, dtype=torch.uint8), 3)
    >>> [(tuple(v.shape), p.tolist()) for v, p in views][0]
    ((6, 3, 8, 8), [3, 4, 5, 0, 1, 2])
    """

    def __init__(self, images: torch.Tensor, batch_size: int = 256, *, seed: int = 0, fixed: bool = False):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor [N, C, H, W], got "
                             f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
        self.batch_size = as_int("batch_size", batch_size, min=2)
        if len(images) < self.batch_size:
            raise ValueError(f"{len(images)} images make no batch of {self.batch_size} (batches are full: every "
                             "view needs the same number of negatives)")
        self.images, self.seed, self.fixed, self._epoch = images, as_seed(seed), bool(fixed), 0
        c = images.shape[1]
        self.mean = torch.tensor(WORLD_MEAN[:c] if len(WORLD_MEAN) >= c else WORLD_MEAN[:1] * c).view(1, c, 1, 1) * 255
        self.std = torch.tensor(WORLD_STD[:c] if len(WORLD_STD) >= c else WORLD_STD[:1] * c).view(1, c, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __iter__(self):
        epoch = 0 if self.fixed else self._epoch
        self._epoch += 1
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.arange(len(self.images)) if self.fixed else torch.randperm(len(self.images), generator=gen)
        b = self.batch_size
        positives = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
        for i in range(len(self)):
            x = (self.images[order[i * b:(i + 1) * b]].float() - self.mean) / self.std
            yield torch.cat([augment(x, gen), augment(x, gen)]), positives


def _similarities(out: torch.Tensor, temperature: float) -> torch.Tensor:
    z = F.normalize(out.float(), dim=1)
    sim = z @ z.T / temperature
    return sim.fill_diagonal_(float("-inf"))  # a view is not its own positive


def nt_xent(out: torch.Tensor, positives: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent loss: cross-entropy of each view's cosine similarities (over ``temperature``) to the
    ``2B - 1`` other views, with its positive as the label. ``log(2B - 1)`` at chance.

    Examples
    --------
    >>> round(float(nt_xent(torch.zeros(4, 2) + torch.eye(4, 2), torch.tensor([2, 3, 0, 1]))), 3)  # chance-like
    1.099
    """
    return F.cross_entropy(_similarities(out, temperature), positives)


@torch.no_grad()
def pair_accuracy(out: torch.Tensor, positives: torch.Tensor) -> tuple[int, int]:
    """``(correct, n)``: views whose most similar other view is their positive (the pretext task's accuracy)."""
    return int((_similarities(out, 1.0).argmax(1) == positives).sum()), len(positives)


@dataclass(frozen=True)
class SimCLRSpec(ZooEntry):
    """A zoo recipe: a KitNet pretrained by SimCLR on the source task's images, their labels never read.

    ``stop_after`` (0 to ``epochs``) makes the recipe a checkpoint of the same run (see the module docstring).

    Examples
    --------
    >>> s = SimCLRSpec("kitnet_s", epochs=2); s.make_model().num_classes, s.summary()["label"]
    (0, 'none (SimCLR, self-supervised)')
    """

    arch: str
    n_per_class: int = 400  # source images per (shape, texture) class; only the images are used
    epochs: int = 4
    lr: float = 4e-3
    batch_size: int = 256
    temperature: float = 0.2
    proj_dim: int = 64
    seed: int = 0
    stop_after: int | None = None
    description: str = ""
    kind = "image"
    label_noise = 0.0

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {sorted(ARCHITECTURES)}")
        as_int("n_per_class", self.n_per_class, min=1)
        as_int("epochs", self.epochs, min=1)
        as_float("lr", self.lr, min=0.0, min_open=True)
        as_int("batch_size", self.batch_size, min=2)
        as_float("temperature", self.temperature, min=0.0, min_open=True)
        as_int("proj_dim", self.proj_dim, min=1)
        as_seed(self.seed)
        if self.stop_after is not None:
            as_int("stop_after", self.stop_after, min=0, max=self.epochs)
        if self.n_per_class * 20 < self.batch_size:
            raise ValueError(f"n_per_class={self.n_per_class} gives {self.n_per_class * 20} source images, fewer "
                             f"than one batch of {self.batch_size}")

    @property
    def label(self) -> str:
        return "none (SimCLR, self-supervised)"

    @property
    def trained_epochs(self) -> int:
        return self.epochs if self.stop_after is None else self.stop_after

    def run(self) -> SimCLRSpec:
        """The whole run this recipe is a checkpoint of (itself when it is not one)."""
        return dataclasses.replace(self, stop_after=None, description="")

    def make_model(self) -> KitNet:
        with seeded(self.seed):
            model = KitNet(1, **ARCHITECTURES[self.arch])
            d = model.num_features
            model.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, self.proj_dim))
        model.num_classes = 0  # no source classes: timm's convention for "no classifier"
        model.pretrained_cfg.update(architecture=self.arch, num_classes=0)
        return model

    def fingerprint(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "description"}
        blob = json.dumps(fields, sort_keys=True) + f"|simclr{_RECIPE_VERSION}|world{WORLD_VERSION}"
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def pretrain(self, *, progress: bool, device) -> tuple[KitNet, dict]:
        states, metrics = _trajectory(self.run(), progress=progress, device=device)
        model = self.make_model()
        model.load_state_dict(states[self.trained_epochs])
        return model.cpu(), dict(metrics[self.trained_epochs])

    def summary(self) -> dict:
        return dict(arch=self.arch, label=self.label, images=self.n_per_class * 20, epochs=self.trained_epochs,
                    label_noise=0.0)

    def loaded_info(self) -> dict:
        return dict(source="transfer world, source images without labels (SimCLR)", self_supervised=True,
                    pretrain_epochs=self.trained_epochs)


_TRAJECTORIES: dict[tuple[str, str], tuple[dict, dict]] = {}


class _KeepEpochs(Callback):
    def __init__(self, states: dict, metrics: dict):
        self.states, self.metrics = states, metrics

    def on_epoch_end(self, state):
        row = state.history.rows[-1]
        self.states[state.epoch + 1] = copy.deepcopy(state.model.state_dict())
        self.metrics[state.epoch + 1] = dict(pretext_loss=round(row["val_loss"], 4),
                                             pair_acc=round(row["val_acc"], 4), epoch=state.epoch + 1)


def _trajectory(run: SimCLRSpec, *, progress: bool, device) -> tuple[dict, dict]:
    """``({epoch: state_dict}, {epoch: metrics})`` for epochs 0 to ``run.epochs``, trained once per process."""
    from .device import resolve_device
    from .world import source_task

    device = resolve_device(device)
    key = (run.fingerprint(), str(device))
    if key not in _TRAJECTORIES:
        held = min(25, max(2, run.n_per_class // 4))  # held-out images per class, for the pretext loss
        task = source_task(run.n_per_class, seed=run.seed, n_test_per_class=held)  # labels are never read
        train = ContrastiveViews(task.x_train, run.batch_size, seed=run.seed)
        held_out = ContrastiveViews(task.x_test, min(run.batch_size, len(task.x_test)), seed=run.seed + 1, fixed=True)
        loss = lambda out, pos: nt_xent(out, pos, run.temperature)  # noqa: E731
        model = run.make_model()
        first = evaluate(model, held_out, device=device, loss_fn=loss, metric=pair_accuracy)
        states = {0: copy.deepcopy(model.cpu().state_dict())}
        metrics = {0: dict(pretext_loss=round(first["loss"], 4), pair_acc=round(first["acc"], 4), epoch=0)}
        fit(model, train, epochs=run.epochs, lr=run.lr, weight_decay=5e-4, val=held_out, device=device,
            loss_fn=loss, metric=pair_accuracy, callbacks=[_KeepEpochs(states, metrics)], progress=progress,
            seed=run.seed, desc=f"SimCLR {run.arch}")
        states = {k: {n: t.detach().cpu().clone() for n, t in v.items()} for k, v in states.items()}
        _TRAJECTORIES[key] = (states, metrics)
    return _TRAJECTORIES[key]


def checkpoints(name: str) -> dict[int, str]:
    """``{epoch: zoo name}`` of the run that zoo model ``name`` belongs to, from epoch 0 (its initialisation) on.

    Examples
    --------
    >>> checkpoints("kitnet_m-simclr")[0]
    'kitnet_m-simclr-e0'
    """
    from ._validate import as_key
    from .zoo import ZOO

    spec = as_key("zoo model", name, ZOO)
    if not isinstance(spec, SimCLRSpec):
        raise ValueError(f"{name!r} is not a self-supervised zoo model; its per-epoch checkpoints are not kept "
                         f"(self-supervised models: {[n for n, s in ZOO.items() if isinstance(s, SimCLRSpec)]})")
    run = spec.run().fingerprint()
    found = {s.trained_epochs: n for n, s in ZOO.items() if isinstance(s, SimCLRSpec) and s.run().fingerprint() == run}
    return dict(sorted(found.items()))


# The kit's self-supervised zoo entries: the model itself and its checkpoints after each earlier epoch.
_RUN = SimCLRSpec("kitnet_m", description="medium CNN pretrained without labels (SimCLR), source images")
SSL_ENTRIES: dict[str, SimCLRSpec] = {"kitnet_m-simclr": _RUN}
SSL_ENTRIES.update({f"kitnet_m-simclr-e{k}": dataclasses.replace(
    _RUN, stop_after=k, description=f"kitnet_m-simclr after {k} of its {_RUN.epochs} epochs (a checkpoint)")
    for k in range(_RUN.epochs)})


def register(zoo_registry: dict) -> None:
    """Add the self-supervised entries to a zoo registry (``transferlab.zoo.ZOO`` holds them from the start)."""
    for name, spec in SSL_ENTRIES.items():
        zoo_registry.setdefault(name, spec)

