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


def test_functions_that_use_a_model_run_where_it_is_not_on_the_default_device(monkeypatch):
    """On a GPU machine the default device is CUDA; evaluating a CPU model must neither move it nor fail.

    Simulated here with the default set to PyTorch's 'meta' device: anything that followed the default
    instead of the model would move the model (or its inputs) there and break.
    """
    from transferlab.landscape import evaluate_rays, random_directions
    from transferlab.models import create_model
    from transferlab.swa import AveragedModel, bn_update
    from transferlab.train import evaluate, extract_features
    from transferlab.world import target_task

    task = target_task(4, n_test_per_class=2, size=16)
    m = create_model("kitnet_s", 10, device="cpu")
    monkeypatch.setattr(D, "_DEFAULT_DEVICE", torch.device("meta"))
    assert D.get_default_device().type == "meta"
    assert 0 <= evaluate(m, task.loader("test", 10))["acc"] <= 1
    assert extract_features(m, task.loader("test", 10))[0].device.type == "cpu"
    d = random_directions(m, 2, seed=0)
    assert d.device.type == "cpu"
    evaluate_rays(m, d, [0.0, 1.0], train=task.loader("train", 10), test=task.loader("test", 10),
                  bn=task.loader("train", 10), progress=False)
    bn_update(AveragedModel(m), task.loader("train", 10))
    assert all(p.device.type == "cpu" for p in m.parameters())
    assert str(D.model_device(m, "cpu")) == "cpu"
