"""The self-supervised zoo entries (SimCLR), in a temporary TRANSFERLAB_HOME with a tiny recipe."""

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from transferlab import selection, ssl, zoo
from transferlab.models import create_model

TINY = ssl.SimCLRSpec("kitnet_s", n_per_class=8, epochs=2, batch_size=32, description="test-only")
TINY_ENTRIES = {"tiny-ssl": TINY, **{f"tiny-ssl-e{k}": dataclasses.replace(TINY, stop_after=k) for k in range(2)}}


@pytest.fixture
def tiny_ssl(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    for name, spec in TINY_ENTRIES.items():
        monkeypatch.setitem(zoo.ZOO, name, spec)
    monkeypatch.setattr(ssl, "_TRAJECTORIES", {})
    return tmp_path / "home" / "zoo"


def test_the_zoo_holds_self_supervised_entries_next_to_the_supervised_ones():
    supervised = [n for n, s in zoo.ZOO.items() if isinstance(s, zoo.ZooSpec)]
    self_supervised = [n for n, s in zoo.ZOO.items() if isinstance(s, ssl.SimCLRSpec)]
    assert len(supervised) >= 8 and "kitnet_m-simclr" in self_supervised
    assert ssl.checkpoints("kitnet_m-simclr") == {k: f"kitnet_m-simclr-e{k}" for k in range(ssl._RUN.epochs)} | {
        ssl._RUN.epochs: "kitnet_m-simclr"}
    assert len({zoo.ZOO[n].fingerprint() for n in self_supervised}) == len(self_supervised)
    assert all(zoo.ZOO[n].kind == "image" for n in self_supervised)


def test_build_verify_and_load_like_every_zoo_model(tiny_ssl):
    path = zoo.build("tiny-ssl", progress=False)
    assert path == tiny_ssl / "tiny-ssl.safetensors" and path.exists()
    record = zoo.manifest()["tiny-ssl"]
    assert record["sha256"] == zoo.sha256(path) and record["fingerprint"] == TINY.fingerprint()
    assert record["arch"] == "kitnet_s" and record["epochs"] == 2 and 0 <= record["pair_acc"] <= 1
    assert zoo.is_built("tiny-ssl")
    model = zoo.load("tiny-ssl", build_missing=False)
    assert model.num_classes == 0 and model.pretrained_cfg["num_classes"] == 0  # no source classes
    assert model.pretrained_cfg["self_supervised"] is True and model.pretrained_cfg["zoo_name"] == "tiny-ssl"
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, TINY.proj_dim)  # its pretraining head: the projector
    fresh = create_model("tiny-ssl", 5, pretrained=True)
    assert fresh.head.out_features == 5 and torch.equal(fresh.stem[0].weight, model.stem[0].weight)
    row = [r for r in zoo.status() if r["name"] == "tiny-ssl"][0]
    assert row["built"] and row["label"].startswith("none") and row["images"] == 160


def test_a_corrupted_ssl_file_is_moved_aside_and_rebuilt_identically(tiny_ssl):
    path = zoo.build("tiny-ssl", progress=False)
    good = zoo.load("tiny-ssl").state_dict()
    path.write_bytes(path.read_bytes()[:1000])
    ssl._TRAJECTORIES.clear()  # a rebuild in a fresh process trains again, deterministically
    with pytest.warns(UserWarning, match="failed its SHA-256 check"):
        again = zoo.load("tiny-ssl", progress=False)
    assert list(tiny_ssl.glob("tiny-ssl.safetensors.corrupt-*"))
    assert all(torch.equal(good[k], v) for k, v in again.state_dict().items())


def test_an_outdated_recipe_is_rebuilt(tiny_ssl):
    zoo.build("tiny-ssl", progress=False)
    record = json.loads((tiny_ssl / "tiny-ssl.json").read_text())
    record["fingerprint"] = "an-older-recipe"
    (tiny_ssl / "tiny-ssl.json").write_text(json.dumps(record))
    assert not zoo.is_built("tiny-ssl")
    zoo.load("tiny-ssl", progress=False)
    assert zoo.manifest()["tiny-ssl"]["fingerprint"] == TINY.fingerprint()


def test_checkpoints_lie_on_the_final_models_path_and_cost_one_run(tiny_ssl, monkeypatch):
    calls = []
    real_fit = ssl.fit
    monkeypatch.setattr(ssl, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    zoo.build_all(list(TINY_ENTRIES), progress=False)
    assert len(calls) == 1  # one training run for the model and all its checkpoints
    states, metrics = ssl._TRAJECTORIES[(TINY.fingerprint(), "cpu")]
    for k, name in ((0, "tiny-ssl-e0"), (1, "tiny-ssl-e1"), (2, "tiny-ssl")):
        loaded = zoo.load(name, build_missing=False).state_dict()
        assert all(torch.equal(states[k][n], t) for n, t in loaded.items()), name
        assert zoo.manifest()[name]["epoch"] == k and zoo.manifest()[name]["pretext_loss"] == metrics[k]["pretext_loss"]
    assert TINY_ENTRIES["tiny-ssl-e0"].make_model().state_dict().keys() == loaded.keys()
    init = TINY.make_model().state_dict()  # epoch 0 is the initialisation of the run
    assert all(torch.equal(init[n], t) for n, t in zoo.load("tiny-ssl-e0").state_dict().items())
    # a checkpoint built alone, in a fresh process, is the same file's weights
    ssl._TRAJECTORIES.clear()
    alone, _ = TINY_ENTRIES["tiny-ssl-e1"].pretrain(progress=False, device="cpu")
    assert all(torch.equal(states[1][n], t) for n, t in alone.state_dict().items())
    assert len(calls) == 2


def test_pretraining_learns_the_pretext_task(tiny_ssl):
    _, metrics = ssl._trajectory(dataclasses.replace(TINY, epochs=3), progress=False, device="cpu")
    chance = math.log(2 * TINY.batch_size - 1)  # held-out batches of 32 images, 64 views
    assert metrics[0]["pretext_loss"] == pytest.approx(chance, abs=0.5)
    assert metrics[3]["pretext_loss"] < metrics[0]["pretext_loss"] - 0.3
    assert metrics[3]["pair_acc"] > metrics[0]["pair_acc"]


def test_fingerprint_follows_the_recipe_not_the_description():
    fps = {TINY.fingerprint()}
    for change in (dict(epochs=3), dict(lr=1e-3), dict(temperature=0.5), dict(batch_size=64), dict(seed=1),
                   dict(stop_after=1), dict(arch="kitnet_m"), dict(n_per_class=9), dict(proj_dim=32)):
        fps.add(dataclasses.replace(TINY, **change).fingerprint())
    assert len(fps) == 10
    assert dataclasses.replace(TINY, description="other words").fingerprint() == TINY.fingerprint()


@pytest.mark.parametrize("kwargs, match", [
    (dict(arch="kitnet_xl"), "unknown architecture 'kitnet_xl'"),
    (dict(arch="kitnet_s", epochs=0), "epochs must be an integer >= 1"),
    (dict(arch="kitnet_s", stop_after=5), "stop_after must be an integer >= 0 and <= 4"),
    (dict(arch="kitnet_s", temperature=0.0), "temperature"),
    (dict(arch="kitnet_s", n_per_class=2, batch_size=64), "fewer than one batch"),
])
def test_bad_recipes_fail_when_declared(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ssl.SimCLRSpec(**kwargs)


def test_checkpoints_of_a_supervised_model_is_a_clear_error():
    with pytest.raises(ValueError, match="not a self-supervised zoo model"):
        ssl.checkpoints("kitnet_m-src")
    with pytest.raises(KeyError, match="Did you mean 'kitnet_m-simclr'"):
        ssl.checkpoints("kitnet_m-simclar")


def test_nt_xent_is_cross_entropy_over_the_other_views():
    g = torch.Generator().manual_seed(0)
    out, pos = torch.randn(8, 5, generator=g), torch.tensor([4, 5, 6, 7, 0, 1, 2, 3])
    z = F.normalize(out, dim=1)
    manual = 0.0
    for i in range(8):
        others = [j for j in range(8) if j != i]
        logits = torch.stack([z[i] @ z[j] / 0.2 for j in others])
        manual += -(logits[others.index(int(pos[i]))] - torch.logsumexp(logits, 0)) / 8
    assert float(ssl.nt_xent(out, pos, 0.2)) == pytest.approx(float(manual), abs=1e-5)
    same = torch.ones(8, 5)  # every view alike: chance, log(2B - 1)
    assert float(ssl.nt_xent(same, pos)) == pytest.approx(math.log(7), abs=1e-5)
    paired = torch.cat([torch.eye(4, 5), torch.eye(4, 5)])  # each view equal to its positive only
    assert ssl.pair_accuracy(paired, pos) == (8, 8)


def test_views_pair_two_augmentations_of_each_image_and_are_seeded():
    images = (torch.arange(12 * 3 * 8 * 8) % 251).to(torch.uint8).view(12, 3, 8, 8)
    views = ssl.ContrastiveViews(images, 4, seed=1)
    assert len(views) == 3
    batches = list(views)
    v, pos = batches[0]
    assert v.shape == (8, 3, 8, 8) and pos.tolist() == [4, 5, 6, 7, 0, 1, 2, 3]
    assert not torch.equal(v[:4], v[4:])  # two different views
    again = list(ssl.ContrastiveViews(images, 4, seed=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    assert not torch.equal(list(views)[0][0], v)  # the next epoch draws new views
    fixed = ssl.ContrastiveViews(images, 4, seed=1, fixed=True)
    assert torch.equal(list(fixed)[0][0], list(fixed)[0][0])
    with pytest.raises(ValueError, match="make no batch"):
        ssl.ContrastiveViews(images, 16)
    with pytest.raises(ValueError, match="uint8"):
        ssl.ContrastiveViews(images.float(), 4)


def test_augment_keeps_the_shape_and_moves_the_object():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 3, 16, 16)
    x[:, :, 2:6, 2:6] = 3.0  # a bright square in a corner
    a, b = ssl.augment(x, g), ssl.augment(x, g)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert not torch.allclose(a, b)


def test_leep_and_nce_have_nothing_to_read_from_a_self_supervised_model(tiny_ssl):
    zoo.build("tiny-ssl", progress=False)
    model = zoo.load("tiny-ssl")
    assert model.num_classes == 0  # the lesson gives LEEP and NCE only models with source classes
    out = model(torch.randn(6, 3, 32, 32)).detach()
    with pytest.raises(ValueError, match="sum to 1"):  # projector outputs are not class probabilities
        selection.leep(out, torch.tensor([0, 1, 0, 1, 0, 1]))
    feats = model.forward_head(model.forward_features(torch.randn(6, 3, 32, 32)), pre_logits=True).detach()
    assert math.isfinite(selection.logme(feats, torch.tensor([0, 1, 0, 1, 0, 1])))
