"""The model of a run: built from a :class:`RunConfig`, its stages, and its optimizer's parameter groups.

:func:`build_model` gives the config's pretrained model (zoo weights are read once per process) with a fresh,
seeded head; :func:`stages_of` names its stages (``k`` counts them from the input); :func:`data_config` says at
which size and statistics real images are prepared for it; :func:`param_groups` gives each stage its own learning
rate; :func:`fold_probe_into_head` turns a linear probe into the model's own head (the "head-first" recipe).

Examples
--------
>>> m = build_model(RunConfig(model="kitnet_m-random"), seed=0)
>>> stages_of(RunConfig(model="kitnet_m-random")), m.head.out_features
(('stem', 'layer1', 'layer2', 'layer3'), 10)
"""

from __future__ import annotations

import torch
from torch import nn

from .. import zoo
from ..device import resolve_device, seeded
from ..models import create_model, replace_head, stage_names, stage_parameters
from .config import RunConfig
from .memo import memoize

__all__ = ["build_model", "stages_of", "data_config", "param_groups", "fold_probe_into_head"]

_DATA_CONFIG_KEYS = ("input_size", "mean", "std", "interpolation")


@memoize("zoo weights", maxsize=4)
def _zoo_state(name: str, zoo_dir: str, recipe: str) -> dict:
    """A zoo model's weights, read (checked, built if missing) once per process; the key includes the zoo
    folder and recipe so that a changed ``$TRANSFERLAB_HOME`` or recipe is not served from memory."""
    return {k: v.detach().clone() for k, v in zoo.load(name, device="cpu").state_dict().items()}


def build_model(config: RunConfig, *, pretrained: bool = True, seed: int = 0, num_classes: int = 10,
                device=None) -> nn.Module:
    """The config's model with a fresh ``num_classes`` head seeded by ``seed`` (random weights if not pretrained).

    Zoo weights are read from disk once per process and copied for each run. The random numbers are drawn
    inside :func:`transferlab.device.seeded`: the same seed gives the same model, and the caller's random
    state (torch, NumPy, Python) is left as it was.

    Examples
    --------
    >>> m = build_model(RunConfig(model="kitnet_m-random"), seed=0)
    >>> m.head.out_features
    10
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    with seeded(seed):
        if config.model in zoo.ZOO:
            spec = zoo.ZOO[config.model]
            if pretrained:
                model = spec.make_model()
                model.load_state_dict(_zoo_state(config.model, str(zoo.zoo_dir()), spec.fingerprint()))
                model.pretrained_cfg.update(zoo_name=config.model, pretrained=True)
                replace_head(model, num_classes, seed=seed)
            else:
                model = create_model(spec.arch, num_classes)
        else:
            model = create_model(config.model, num_classes, pretrained=pretrained)
    return model.to(resolve_device(device))


@memoize("stage names", maxsize=8)
def _stage_names(model: str) -> tuple[str, ...]:
    return stage_names(build_model(RunConfig(model=model), pretrained=False, device="cpu"))


def stages_of(config: RunConfig) -> tuple[str, ...]:
    """The stage names of the config's model, input to output (``k`` counts them from the input).

    Examples
    --------
    >>> stages_of(RunConfig(model="kitnet_m-random"))
    ('stem', 'layer1', 'layer2', 'layer3')
    """
    return _stage_names(config.model)


@memoize("data configs", maxsize=8)
def _data_config_items(model: str) -> tuple:
    cfg = build_model(RunConfig(model=model), pretrained=True, device="cpu").pretrained_cfg
    return tuple((k, v) for k, v in cfg.items() if k in _DATA_CONFIG_KEYS)


def data_config(model: str) -> dict:
    """How real images are prepared for ``model``: its ``pretrained_cfg``'s input size, mean, std, interpolation.

    Real datasets are read at the size and normalised with the statistics the model was pretrained with
    (:func:`transferlab.datasets.load_task` takes this as ``model=``). Computed once per model and process.

    Examples
    --------
    >>> cfg = data_config("kitnet_m-random")
    >>> sorted(cfg), cfg["input_size"]
    (['input_size', 'interpolation', 'mean', 'std'], (3, 32, 32))
    """
    return dict(_data_config_items(model))


def param_groups(model: nn.Module, *, base_lr: float, head_lr: float, layer_decay: float | None = None) -> list:
    """Optimizer param groups: one per stage (trainable parameters only) plus the head.

    Without ``layer_decay`` every stage gets ``base_lr``; with it, stage ``i`` of ``n`` (0 = the input stage)
    gets ``head_lr * layer_decay ** (n - i)`` (discriminative learning rates) and ``base_lr`` is unused.
    Stages are :func:`transferlab.models.stage_parameters`: modules before a stage (a ResNet's ``conv1``) and
    parameters the model holds itself (a ViT's ``pos_embed``) count with it. Each group carries a ``"name"``
    key; frozen parameters and empty groups are left out.

    Examples
    --------
    >>> from transferlab.models import KitNet
    >>> groups = param_groups(KitNet(10, widths=(8, 16)), base_lr=1e-3, head_lr=1e-2, layer_decay=0.5)
    >>> [(g["name"], g["lr"]) for g in groups]
    [('stem', 0.00125), ('layer1', 0.0025), ('layer2', 0.005), ('head', 0.01)]
    """
    if layer_decay is not None and not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay!r}")
    per_stage = stage_parameters(model)  # every body parameter in exactly one stage, the stem's with the first
    groups = []
    n = len(per_stage)
    for i, (name, named) in enumerate(per_stage.items()):
        lr = base_lr if layer_decay is None else head_lr * layer_decay ** (n - i)
        groups.append(dict(name=name, lr=lr, params=[p for _, p in named if p.requires_grad]))
    groups.append(dict(name="head", lr=head_lr, params=[p for p in model.get_classifier().parameters()
                                                         if p.requires_grad]))
    return [g for g in groups if g["params"]]


def fold_probe_into_head(probe: nn.Sequential, head: nn.Linear) -> nn.Linear:
    """Copy a probe from :func:`transferlab.train.fit_linear_probe` (standardise, then linear) into ``head``.

    ``W (x - m) / s + b = (W / s) x + (b - (W / s) m)``, so the model's own head computes the probe's logits.

    Examples
    --------
    >>> from transferlab.train import fit_linear_probe
    >>> f, y = torch.randn(20, 4), torch.arange(20) % 3
    >>> probe = fit_linear_probe(f, y, 3, epochs=5); head = nn.Linear(4, 3)
    >>> torch.allclose(fold_probe_into_head(probe, head)(f), probe(f), atol=1e-5)
    True
    """
    scale, linear = probe[0], probe[1]
    if linear.weight.shape != head.weight.shape:
        raise ValueError(f"the probe maps {linear.in_features} features to {linear.out_features} classes but the "
                         f"head is {head.in_features} -> {head.out_features}")
    with torch.no_grad():
        w = linear.weight / scale.std
        head.weight.copy_(w.to(head.weight))
        head.bias.copy_((linear.bias - w @ scale.mean).to(head.bias))
    return head
