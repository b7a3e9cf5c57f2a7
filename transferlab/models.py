"""One ``create_model`` for kit architectures, zoo models and timm models alike, and their stages.

The kit's own CNNs (:mod:`transferlab.kitnet`) follow timm's interface (``forward_features``,
``forward_head``, ``num_features``, ``get_classifier``, ``reset_classifier``, ``pretrained_cfg``), so the
functions here (:func:`replace_head`, :func:`stage_names`, :func:`stage_groups`, :func:`stage_parameters`)
work on both. ``KitNet`` and ``ARCHITECTURES`` are re-exported from :mod:`transferlab.kitnet`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import zoo
from ._hub import require_hub, timm_weights_path, weights_route
from ._validate import as_int
from .device import resolve_device, seeded
from .kitnet import ARCHITECTURES, KitNet

__all__ = ["KitNet", "ARCHITECTURES", "create_model", "replace_head", "stage_names", "stage_groups",
           "stage_parameters", "count_params", "timm_weights_path"]


def create_model(name: str, num_classes: int = 10, *, pretrained: bool = False, device=None, seed: int | None = None,
                 **kwargs) -> nn.Module:
    """Create a kit model, a kit zoo model, or any timm model, with a fresh head of ``num_classes``.

    Parameters
    ----------
    name : str
        A kit architecture (``"kitnet_m"``, see ``ARCHITECTURES``), a zoo entry (``"kitnet_m-src"``, see
        ``transferlab.zoo.ZOO``; pretrained weights from the kit's cache), or a timm model name
        (``"resnet18"``; ``pretrained=True`` downloads through timm and needs a network, unless a local file
        is given as ``weights="/path/file.safetensors"`` or cached at ``timm_weights_path(name)``).
    pretrained : bool
        Load pretrained weights. For a kit architecture this is an error: name a zoo entry instead.
    seed : int, optional
        Seeds the random initialisation. ``None`` (the default) initialises from a copy of the caller's torch
        random state, so ``torch.manual_seed(s); create_model(...)`` gives the same weights every time, and the
        caller's state is not advanced either way.

    Examples
    --------
    >>> create_model("kitnet_s", 5).head.out_features
    5
    """
    num_classes = as_int("num_classes", num_classes, min=1)
    if not isinstance(name, str) or not name:
        raise ValueError(f"unknown model {name!r}: expected a kit architecture {sorted(ARCHITECTURES)}, a zoo entry "
                         f"{sorted(zoo.ZOO)} or a timm model name")
    with seeded(seed):  # initialisation draws from a private stream: the caller's state does not move
        model = _build(name, num_classes, pretrained, kwargs)
    return model.to(resolve_device(device))


def _build(name: str, num_classes: int, pretrained: bool, kwargs: dict) -> nn.Module:
    if name in ARCHITECTURES:
        if pretrained:
            options = [n for n, s in zoo.ZOO.items() if getattr(s, "arch", None) == name]
            raise ValueError(f"{name!r} is an architecture; pretrained weights come from a zoo entry: {options}")
        model = KitNet(num_classes, **{**ARCHITECTURES[name], **kwargs})
        model.pretrained_cfg["architecture"] = name
        return model
    if name in zoo.ZOO:
        model = zoo.load(name) if pretrained else zoo.ZOO[name].make_model()
        if getattr(model, "num_classes", None) != num_classes:
            replace_head(model, num_classes)
        return model
    import timm

    if not timm.list_models(name) and name.split(".")[0] not in timm.list_models():
        raise ValueError(f"unknown model {name!r}: not a kit architecture {sorted(ARCHITECTURES)}, not a zoo "
                         f"entry {sorted(zoo.ZOO)}, and not a timm model (see timm.list_models())")
    return _create_timm(name, num_classes, pretrained, kwargs)


_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
HUB_TIMEOUT = 10.0
"""Seconds to wait for the Hugging Face hub to answer before ``create_model(..., pretrained=True)`` gives up."""


def _create_timm(name: str, num_classes: int, pretrained: bool, kwargs: dict) -> nn.Module:
    """timm.create_model, with pretrained weights from a local file when one is given or cached.

    ``weights=<path>`` (a ``.safetensors`` file, or a ``.pth``/``.bin`` state dict loaded with
    ``weights_only=True``) implies ``pretrained=True``; timm loads it through
    ``pretrained_cfg_overlay=dict(file=...)``, keeps the model's ``pretrained_cfg`` (mean, std, input size,
    interpolation) and drops the source classifier when ``num_classes`` differs.
    """
    import timm

    weights = kwargs.pop("weights", None)
    if weights is None and pretrained and timm_weights_path(name).exists():
        weights = timm_weights_path(name)
    if weights is not None:
        weights = Path(weights).expanduser()
        if weights.suffix not in _WEIGHT_SUFFIXES:
            raise ValueError(f"weights file {str(weights)!r} should end in one of {_WEIGHT_SUFFIXES}")
        if not weights.is_file():
            raise FileNotFoundError(f"weights file {str(weights)!r} does not exist")
        overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {}, file=str(weights))
        model = timm.create_model(name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay,
                                  **kwargs)
        model.pretrained_cfg = dict(model.pretrained_cfg, file=str(weights), pretrained=True)
        return model
    if pretrained:  # decide within seconds whether the weights can be had, before timm's client retries for a minute
        require_hub(name, timeout=HUB_TIMEOUT)
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except Exception as err:  # the hub's errors differ by version; re-raise only the ones about reaching it
        if not pretrained or not _is_network_error(err):
            raise
        raise OSError(f"cannot get pretrained weights for {name!r} from the Hugging Face hub ({type(err).__name__}: "
                      f"{err}). Offline? Use the kit's zoo (MODELS='zoo'). " + weights_route(name)) from err


def _is_network_error(err: BaseException) -> bool:
    kinds = type(err).__mro__
    return isinstance(err, OSError) or any(k.__module__.split(".")[0] in ("huggingface_hub", "requests", "httpx",
                                                                        "urllib3") for k in kinds)


def replace_head(model: nn.Module, num_classes: int, *, seed: int | None = None) -> nn.Module:
    """Replace the classifier by a freshly initialised one with ``num_classes`` outputs; returns the new head.

    Works for kit and timm models (``reset_classifier``). The new head is created on the model's device,
    trainable, and seeded when ``seed`` is given.
    """
    if not hasattr(model, "reset_classifier"):
        raise TypeError(f"{type(model).__name__} has no reset_classifier(); expected a kit or timm model")
    num_classes = as_int("num_classes", num_classes, min=1)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    with seeded(seed):
        model.reset_classifier(num_classes)
    head = model.get_classifier()
    head.to(device)
    return head


def stage_names(model: nn.Module) -> tuple[str, ...]:
    """The model's stages from input to output, without the head, as module paths.

    Kit models: ``model.stage_names``. timm models: the modules of ``feature_info`` (``"act1"``, ``"layer1"``..
    for ResNets, ``"stages.0"``.. for ConvNeXt, ``"blocks.0"``.. for EfficientNet and ViT). A stage's module may
    not hold all of its weights (a ResNet's ``act1`` has none: ``conv1`` and ``bn1`` come before it); use
    :func:`stage_groups` for the modules each stage covers.

    Examples
    --------
    >>> stage_names(KitNet(10, widths=(8, 16)))
    ('stem', 'layer1', 'layer2')
    """
    if hasattr(model, "stage_names"):
        return tuple(model.stage_names)
    if hasattr(model, "feature_info"):  # timm
        return tuple(dict.fromkeys(info["module"] for info in model.feature_info))
    raise TypeError(f"cannot tell the stages of {type(model).__name__}; expected a kit or timm model")


def stage_groups(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Every stage's modules: ``{stage: (module paths)}``, from the input on, the classifier in none of them.

    Each stage takes the modules that come before it (after the previous stage) and itself; modules after the
    last stage (a final norm, timm's ``conv_head``) go with the last stage, so freezing every stage freezes
    the whole body (in models without ``get_classifier()`` they are left out: they may be the head). The
    groups cover every parameter except the classifier's and those the model holds itself rather than a
    submodule (a ViT's ``cls_token`` and ``pos_embed``): :func:`stage_parameters` counts those with the first
    stage.

    Examples
    --------
    >>> import timm
    >>> g = stage_groups(timm.create_model("resnet18"))
    >>> g["act1"], g["layer1"], g["layer4"]
    (('conv1', 'bn1', 'act1'), ('maxpool', 'layer1'), ('layer4', 'global_pool'))
    >>> stage_groups(KitNet(10, widths=(8,)))
    {'stem': ('stem',), 'layer1': ('layer1', 'pool')}
    """
    stages = list(stage_names(model))
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    groups: dict[str, list[str]] = {s: [] for s in stages}
    pending: list[str] = []
    idx = 0

    def walk(module: nn.Module, prefix: str) -> None:
        nonlocal idx
        for name, child in module.named_children():
            path = prefix + name
            if head is not None and child is head:
                continue
            if idx < len(stages) and path == stages[idx]:
                groups[stages[idx]].extend([*pending, path])
                pending.clear()
                idx += 1
            elif (idx < len(stages) and any(s.startswith(path + ".") for s in stages[idx:])) or (
                    head is not None and any(m is head for m in child.modules())):
                walk(child, path + ".")
            else:
                pending.append(path)

    walk(model, "")
    if idx < len(stages):
        raise ValueError(f"stage {stages[idx]!r} of {type(model).__name__} is not a module of the model")
    if stages and head is not None:  # without get_classifier() the trailing modules may be the head: left out
        groups[stages[-1]].extend(pending)
    return {s: tuple(g) for s, g in groups.items()}


def stage_parameters(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Every stage's ``(name, parameter)`` pairs (see :func:`stage_groups`).

    Parameters the model holds itself (a ViT's ``cls_token``) join the first stage; those of modules in no stage
    (the classifier, or trailing modules of a model without ``get_classifier()``) are in none.

    Examples
    --------
    >>> [len(ps) for ps in stage_parameters(KitNet(10, widths=(8,))).values()]
    [3, 6]
    """
    groups = stage_groups(model)
    head = {id(p) for p in model.get_classifier().parameters()} if hasattr(model, "get_classifier") else set()
    owner = {}
    for stage, paths in groups.items():
        for path in paths:
            for p in model.get_submodule(path).parameters():
                owner.setdefault(id(p), stage)
    out: dict[str, list[tuple[str, nn.Parameter]]] = {s: [] for s in groups}
    first = next(iter(groups), None)
    for name, p in model.named_parameters():
        if id(p) in head:
            continue
        stage = owner.get(id(p))
        holder = name.rpartition(".")[0]
        if stage is None and first is not None and (holder == "" or any(s.startswith(holder + ".") for s in groups)):
            stage = first  # held by the model itself, or by a container of stages: the input end
        if stage is not None:
            out[stage].append((name, p))
    return out


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
