import pytest
import torch

from transferlab import models as M
from transferlab.zoo import ZOO


@pytest.mark.parametrize("arch", sorted(M.ARCHITECTURES))
def test_kit_architectures_have_named_stages_and_timm_interface(arch):
    m = M.create_model(arch, 7)
    names = [n for n, _ in m.named_children()]
    assert names[0] == "stem" and names[-2:] == ["pool", "head"]
    assert M.stage_names(m) == tuple(n for n in names if n not in ("pool", "head"))
    x = torch.randn(3, 3, 32, 32)
    assert m(x).shape == (3, 7)
    f = m.forward_features(x)
    assert m.forward_head(f, pre_logits=True).shape == (3, m.num_features)
    assert m.get_classifier() is m.head
    assert m.pretrained_cfg["num_classes"] == 7 and len(m.pretrained_cfg["mean"]) == 3


def test_replace_head_is_fresh_seeded_and_keeps_body():
    m = M.create_model("kitnet_s", 10)
    body = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith("head")}
    h1 = M.replace_head(m, 4, seed=1)
    w1 = h1.weight.detach().clone()
    h2 = M.replace_head(m, 4, seed=1)
    assert h2.out_features == 4 and torch.equal(w1, h2.weight)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in body.items())
    assert all(p.requires_grad for p in h2.parameters())
    with pytest.raises(ValueError, match="num_classes"):
        M.replace_head(m, 0)
    with pytest.raises(TypeError, match="reset_classifier"):
        M.replace_head(torch.nn.Linear(2, 2), 3)


def test_create_model_errors_are_clear():
    with pytest.raises(ValueError, match="architecture; pretrained weights come from a zoo entry"):
        M.create_model("kitnet_m", 10, pretrained=True)
    with pytest.raises(ValueError, match="unknown model 'kitnet_xxl'"):
        M.create_model("kitnet_xxl", 10)
    with pytest.raises(ValueError, match="num_classes"):
        M.create_model("kitnet_s", -1)


def test_create_model_zoo_entry_without_weights_is_the_recipe_architecture():
    m = M.create_model("kitres_m-src", 3)
    assert isinstance(m, M.KitNet) and m.head.out_features == 3
    assert m.pretrained_cfg["architecture"] == ZOO["kitres_m-src"].arch


def test_create_model_timm_offline():
    m = M.create_model("resnet18", 5)  # architecture only: no download
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert M.stage_names(m)[-1] == "layer4"


def test_count_params():
    m = M.create_model("kitnet_s", 10)
    total = M.count_params(m)
    m.head.weight.requires_grad_(False)
    assert M.count_params(m, trainable_only=True) == total - m.head.weight.numel()


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto", "efficientnet_b0", "deit_tiny_patch16_224"])
def test_timm_stages_cover_the_body_once_and_never_the_head(name):
    """timm's feature_info names one module per stage, which may hold none of its weights (a ResNet's ``act1``)
    or sit inside a container (``stages.0``): every body parameter must still land in exactly one stage."""
    import timm

    from transferlab.experiments import WeightDrift, param_groups, snapshot, stage_weight_change
    from transferlab.freeze import freeze_stages
    from transferlab.models import stage_names, stage_parameters

    m = timm.create_model(name)
    stages = stage_names(m)
    assert len(stages) >= 4, stages  # not one coarse 'stages' / 'blocks' stage
    head = {id(p) for p in m.get_classifier().parameters()}
    owned = [id(p) for ps in stage_parameters(m).values() for _, p in ps]
    assert len(owned) == len(set(owned)) and set(owned) == {id(p) for p in m.parameters()} - head
    first = {n for n, _ in stage_parameters(m)[stages[0]]}
    stem = {"resnet18": "conv1.weight", "convnext_atto": "stem.0.weight", "efficientnet_b0": "conv_stem.weight",
            "deit_tiny_patch16_224": "pos_embed"}[name]
    assert stem in first  # the stem's weights freeze with the first stage
    groups = param_groups(m, base_lr=1e-4, head_lr=1e-3, layer_decay=0.5)
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    assert groups[0]["name"] == stages[0] and groups[0]["lr"] < groups[-2]["lr"] < groups[-1]["lr"]
    frozen = freeze_stages(m, len(stages))
    assert set(frozen) == {n for n, p in m.named_parameters() if id(p) not in head}
    assert all(p.requires_grad for p in m.get_classifier().parameters())
    drift = WeightDrift()
    drift.stages = {st: [n for n, _ in ps] for st, ps in stage_parameters(m).items()}
    assert set(stage_weight_change(snapshot(m), m, drift.stages)) == set(stages)


def test_pretrained_timm_weights_offline_fail_within_seconds(monkeypatch, tmp_path):
    """Offline, the hub client retries for most of a minute; the kit answers within its timeout, naming the route."""
    import socket
    import time

    from transferlab import models

    with socket.socket() as s:  # a port on loopback that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(models, "HUB_TIMEOUT", 2.0)
    t0 = time.perf_counter()
    with pytest.raises(OSError, match="fetch_datasets.py --model resnet18.a1_in1k"):
        models.create_model("resnet18.a1_in1k", 3, pretrained=True)
    assert time.perf_counter() - t0 < 8


def test_create_model_rejects_a_zero_width_layer_and_none():
    from transferlab.models import create_model

    with pytest.raises(ValueError, match=r"widths\[0\] must be an integer >= 1, got 0"):
        create_model("kitnet_s", 10, widths=(0,))
    with pytest.raises(ValueError, match="unknown model None"):
        create_model(None, 10)
