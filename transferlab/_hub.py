"""Timm's pretrained weights and the Hugging Face hub: answer at once whether they can be had, before asking.

timm downloads pretrained weights through the ``huggingface_hub`` client, which retries a dead connection for
most of a minute and ignores the kit's ``timeout``. :func:`require_hub` decides first, within ``timeout``
seconds: the weights are in the local hub cache, or the hub's host accepts a TCP connection, or an ``OSError``
says the hub is unreachable and how to get the weights by hand (:func:`weights_route`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._download import reachable
from ._paths import home
from ._validate import as_float, did_you_mean

__all__ = ["DEFAULT_ENDPOINT", "require_hub", "hub_endpoint", "hub_offline", "weights_route", "timm_weights_path"]

DEFAULT_ENDPOINT = "https://huggingface.co"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm asks the hub for, in that order
_TRUE = ("1", "ON", "YES", "TRUE")  # huggingface_hub's reading of a boolean environment variable


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT``, or https://huggingface.co.

    Examples
    --------
    >>> import os; hub_endpoint() == (os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    True
    """
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """True when the hub client is told to stay offline (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().upper() in _TRUE


def timm_weights_path(name: str) -> Path:
    """Where the kit looks for local pretrained weights of timm model ``name`` before asking the hub.

    ``$TRANSFERLAB_HOME/weights/<name>.safetensors`` (e.g. ``resnet18.a1_in1k.safetensors``): copy a file there
    (``data_scripts/fetch_datasets.py --model NAME`` writes one) and ``create_model(name, pretrained=True)``
    works on a machine without the hub.

    Examples
    --------
    >>> timm_weights_path("resnet18.a1_in1k").name
    'resnet18.a1_in1k.safetensors'
    """
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise ValueError(f"expected a timm model name such as 'resnet18.a1_in1k', got {name!r}")
    return home() / "weights" / f"{name}.safetensors"


def weights_route(name: str) -> str:
    """The manual route for timm model ``name``'s weights, as every kit message words it.

    Examples
    --------
    >>> weights_route("resnet18.a1_in1k")  # doctest: +ELLIPSIS
    "Offline? Use the kit's zoo (MODELS='zoo'), or on a machine with a network run `python ... --model resnet18..."
    """
    return (f"Offline? Use the kit's zoo (MODELS='zoo'), or on a machine with a network run "
            f"`python data_scripts/fetch_datasets.py --model {name}` and copy the file it writes to "
            f"{timm_weights_path(name)} here (or pass weights='/path/to/file.safetensors').")


@dataclass(frozen=True)
class _Weights:
    """Where a model's weights live: a hub repo (and revision) with candidate file names, or a plain URL."""

    name: str  # the timm model name, for messages and the kit's weights path
    repo_id: str | None
    revision: str | None = None
    filenames: tuple[str, ...] = _WEIGHT_FILES
    url: str | None = None  # weights outside the hub (an old timm release URL)


def _split_revision(repo: str) -> tuple[str, str | None]:
    repo_id, _, revision = repo.partition("@")
    return repo_id, revision or None


def _locate(repo_id_or_model_name: str) -> _Weights:
    """A timm model name (``resnet18.a1_in1k``), ``hf-hub:org/name`` or a repo id ``org/name[@revision]``."""
    if not isinstance(repo_id_or_model_name, str) or not repo_id_or_model_name.strip():
        raise ValueError(f"expected a timm model name such as 'resnet18.a1_in1k' or a hub repo id such as "
                         f"'timm/resnet18.a1_in1k', got {repo_id_or_model_name!r}")
    given = repo_id_or_model_name.strip().removeprefix("hf-hub:")
    if "/" in given:
        repo_id, revision = _split_revision(given)
        return _Weights(repo_id.rsplit("/", 1)[-1], repo_id, revision)
    from timm.models import get_pretrained_cfg, list_models, list_pretrained

    try:
        cfg = get_pretrained_cfg(given)
    except RuntimeError:  # a known architecture with an unknown tag
        cfg = None
    if cfg is None:
        if given.split(".", 1)[0] in list_models():
            raise ValueError(f"timm model {given!r} has no such pretrained weights (timm.list_pretrained() lists "
                             f"those it has).{did_you_mean(given, list_pretrained())}")
        raise ValueError(f"unknown timm model {given!r}; timm.list_pretrained() lists the ones with weights."
                         f"{did_you_mean(given, list_models() + list_pretrained())}")
    if not cfg.hf_hub_id:
        return _Weights(given, None, url=cfg.url or None)
    repo_id, revision = _split_revision(cfg.hf_hub_id)
    filenames = _WEIGHT_FILES
    if cfg.hf_hub_filename:  # timm also tries the .safetensors twin of a .bin file
        twin = cfg.hf_hub_filename.removesuffix(".bin") + ".safetensors"
        filenames = tuple(dict.fromkeys((twin, cfg.hf_hub_filename)))
    return _Weights(given, repo_id, revision, filenames)


def _cached(weights: _Weights) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return weights.repo_id is not None and any(
        isinstance(try_to_load_from_cache(weights.repo_id, f, revision=weights.revision), str)  # else absent
        for f in weights.filenames)


def _in_torch_cache(url: str) -> bool:
    """Whether timm's download of ``url`` is already in torch's hub cache (``<torch.hub.get_dir()>/checkpoints``)."""
    import torch.hub

    return (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1].split("?")[0]).is_file()


def require_hub(repo_id_or_model_name: str, timeout: float) -> None:
    """Return at once when a model's pretrained weights can be had; else ``OSError`` within ``timeout`` seconds.

    They can be had when they are in the local Hugging Face cache (``huggingface_hub.try_to_load_from_cache``,
    for the repo in the timm model's ``pretrained_cfg["hf_hub_id"]``), or when a TCP connection to the hub
    (``$HF_ENDPOINT`` or https://huggingface.co, the URL's port) opens within ``timeout``. With
    ``HF_HUB_OFFLINE`` set the network is not tried. Weights timm takes from a plain URL instead of the hub
    are looked for in torch's hub cache, then checked the same way against that URL's host.

    Parameters
    ----------
    repo_id_or_model_name : str
        A timm model name (``"resnet18.a1_in1k"``), ``"hf-hub:org/name"`` or a hub repo id (``"timm/name"``,
        optionally ``"@revision"``).
    timeout : float
        Seconds to wait for the connection (name lookup included).

    Raises
    ------
    OSError
        Offline or unreachable: the message names the endpoint, the reason, the timeout and the manual route.
    ValueError
        An unknown timm model name.

    Examples
    --------
    >>> require_hub("resnet18.a1_in1k", timeout=0)
    Traceback (most recent call last):
    ...
    ValueError: timeout must be a number > 0, got 0
    """
    timeout = as_float("timeout", timeout, min=0, min_open=True)
    weights = _locate(repo_id_or_model_name)
    what = f"{weights.name!r} ({weights.repo_id or weights.url})"
    if weights.repo_id is None:  # not on the hub: a plain URL, fetched into torch's hub cache, or no weights at all
        if weights.url is None or _in_torch_cache(weights.url):
            return
        where = weights.url
    else:
        if _cached(weights):
            return
        where = hub_endpoint()
        if hub_offline():
            raise OSError(f"cannot get the pretrained weights of {what}: they are not in the local Hugging Face "
                          f"cache and the hub is switched off (HF_HUB_OFFLINE is set), so {where} was not tried. "
                          + weights_route(weights.name))
    why = reachable(where, timeout)
    if why is not None:
        raise OSError(f"cannot get the pretrained weights of {what}: they are not in the local cache and {where} "
                      f"is unreachable within the timeout of {timeout:g} s ({why}). " + weights_route(weights.name))
