import pytest
import torch

from transferlab import device as D


def test_pick_device_cpu_and_auto():
    assert D.pick_device("cpu") == torch.device("cpu")
    auto = D.pick_device()
    assert auto.type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert auto.type != "cuda"


@pytest.mark.parametrize("bad", ["gpu", "tpu:0", "cuda:banana"])
def test_pick_device_rejects_unknown(bad):
    with pytest.raises(ValueError, match=repr(bad).strip("'")):
        D.pick_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_pick_device_unavailable_cuda_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="not available"):
        D.pick_device("cuda")


def test_default_device_roundtrip():
    try:
        assert D.set_default_device("cpu") == torch.device("cpu")
        assert D.resolve_device(None) == torch.device("cpu")
    finally:
        D.set_default_device(None)
    assert D.get_default_device() == D.pick_device()


def test_seed_everything_repeats_and_validates():
    D.seed_everything(3)
    a = (torch.rand(3), torch.randn(2))
    D.seed_everything(3)
    b = (torch.rand(3), torch.randn(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    D.seed_everything(4)
    assert not torch.equal(a[0], torch.rand(3))
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError):
            D.seed_everything(bad)


def test_seed_everything_deterministic_switch():
    before = torch.are_deterministic_algorithms_enabled()
    try:
        D.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        D.seed_everything(0)  # False leaves the switch alone
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)


def test_env_report_fields():
    r = D.env_report()
    for key in ("python", "torch", "torchvision", "timm", "numpy", "device", "cpu_threads", "cuda_available"):
        assert key in r
    assert r["torch"] == torch.__version__
    if torch.cuda.is_available():
        assert r["gpu_memory_total_gib"] > 0


def test_autocast_is_noop_on_cpu():
    with D.autocast(torch.device("cpu")):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
