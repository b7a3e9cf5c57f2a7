"""Timm weights and the Hugging Face hub, tested offline: ``require_hub`` answers within its timeout.

Nothing here contacts a non-loopback address: the hub endpoint is a closed port (or a local listening socket)
on 127.0.0.1, the hub cache is a temporary folder the tests fill by hand, and a hanging name lookup is simulated.
"""

from __future__ import annotations

import importlib.util
import socket
import stat
import time
from pathlib import Path

import pytest
import torch

from transferlab import _hub
from transferlab._paths import current_umask

TIMM_NAME = "test_resnet.r160_in1k"  # timm's own tiny test model (0.47 M parameters)
REPO_ID = f"timm/{TIMM_NAME}"


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(autouse=True)
def hub(tmp_path, monkeypatch):
    """A private kit home and hub cache; the hub online in principle but at a closed port on 127.0.0.1."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    return tmp_path / "hf-cache"


def _go_offline(monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)


def _cache_weights(cache: Path, repo_id: str = REPO_ID) -> Path:
    """Put a timm model's weights in the hub cache's layout (refs/main -> snapshots/<commit>/model.safetensors)."""
    import timm
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    torch.manual_seed(0)
    model = timm.create_model(TIMM_NAME, pretrained=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


@pytest.mark.parametrize("given", [TIMM_NAME, REPO_ID, f"hf-hub:{REPO_ID}"])
def test_unreachable_hub_fails_fast_with_the_timeout_and_the_manual_route(given):
    from transferlab.models import timm_weights_path

    t0 = time.perf_counter()
    with pytest.raises(OSError, match="unreachable") as info:
        _hub.require_hub(given, timeout=2)
    assert time.perf_counter() - t0 < 5
    msg = str(info.value)
    assert _hub.hub_endpoint() in msg and "2 s" in msg
    assert f"fetch_datasets.py --model {TIMM_NAME}" in msg and str(timm_weights_path(TIMM_NAME)) in msg


def test_a_hanging_name_lookup_still_fails_within_the_timeout(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(8) or [])
    t0 = time.perf_counter()
    with pytest.raises(OSError, match=r"within the timeout of 0\.5 s"):
        _hub.require_hub(REPO_ID, timeout=0.5)
    assert time.perf_counter() - t0 < 2


def test_reachable_hub_returns_at_once():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HF_ENDPOINT", endpoint)
            assert _hub.require_hub(TIMM_NAME, timeout=2) is None
    finally:
        listener.close()


def test_cached_weights_need_no_network_even_offline(hub, monkeypatch):
    _cache_weights(hub)
    monkeypatch.setattr(_hub, "reachable", lambda *a: pytest.fail("the network was tried for cached weights"))
    assert _hub.require_hub(TIMM_NAME, timeout=2) is None
    _go_offline(monkeypatch)
    assert _hub.require_hub(REPO_ID, timeout=2) is None


def test_hf_hub_offline_never_tries_the_network(monkeypatch):
    _go_offline(monkeypatch)
    monkeypatch.setattr(_hub, "reachable", lambda *a: pytest.fail("the network was tried with HF_HUB_OFFLINE"))
    with pytest.raises(OSError, match="HF_HUB_OFFLINE"):
        _hub.require_hub(TIMM_NAME, timeout=2)


@pytest.mark.parametrize("given, match", [("resnet81", "unknown timm model 'resnet81'.*Did you mean 'resnet18'"),
                                          ("resnet18.nope", "no such pretrained weights"),
                                          ("", "expected a timm model name")])
def test_bad_names_and_timeouts_are_value_errors(given, match):
    with pytest.raises(ValueError, match=match):
        _hub.require_hub(given, timeout=1)
    with pytest.raises(ValueError, match="timeout must be a number > 0, got -1"):
        _hub.require_hub(TIMM_NAME, timeout=-1)


def _script():
    spec = importlib.util.spec_from_file_location(
        "fetch_datasets", Path(__file__).parents[1] / "data_scripts" / "fetch_datasets.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_fetch_script_model_fails_within_its_timeout_offline(capsys):
    from transferlab.models import timm_weights_path

    t0 = time.perf_counter()
    assert _script().main(["--model", TIMM_NAME, "--timeout", "2"]) == 1
    assert time.perf_counter() - t0 < 5
    err = capsys.readouterr().err
    assert TIMM_NAME in err and "within the timeout of 2 s" in err
    assert not timm_weights_path(TIMM_NAME).parent.exists()


def test_fetch_script_saves_cached_weights_atomically_with_the_umask(hub, monkeypatch, capsys):
    from safetensors.torch import load_file

    from transferlab.models import timm_weights_path

    cached = _cache_weights(hub)
    _go_offline(monkeypatch)  # the hub client reads its cache without asking the network
    assert _script().main(["--model", TIMM_NAME]) == 0
    path = timm_weights_path(TIMM_NAME)
    assert str(path) in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()  # not mkstemp's 0600
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    saved, ref = load_file(str(path)), load_file(str(cached))
    assert saved.keys() == ref.keys() and all(torch.equal(saved[k], ref[k]) for k in ref)
