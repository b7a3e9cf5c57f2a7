"""transferlab.freeze: the four freeze methods and the helpers against one set of reference expectations."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlab import freeze as fz
from transferlab.models import KitNet, stage_names


class Char3Seq(nn.Module):
    """The source's Char3SeqModel shape (an embedding and three linear layers), with a BatchNorm after fc1."""

    def __init__(self, vocab=12, emb=8, hidden=16, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.fc1 = nn.Linear(3 * emb, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)

    def prefix(self, x):
        return torch.relu(self.bn(self.fc1(self.embed(x).flatten(1))))

    def suffix(self, h):
        return self.fc3(torch.relu(self.fc2(h)))

    def forward(self, x):
        return self.suffix(self.prefix(x))


FROZEN = ["embed", "fc1", "bn"]
OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-1),
}
# What each method does, per the lesson. bn_stats: running statistics change in train mode;
# frozen_grads: autograd computes .grad for the frozen parameters; frozen_state: the optimizer keeps state
# for them; saves_less: autograd saves fewer activations than when frozen parameters require grad.
EXPECT = {
    "requires_grad": dict(bn_stats=True, frozen_grads=False, frozen_state=False, saves_less=True),
    "exclude": dict(bn_stats=True, frozen_grads=True, frozen_state=False, saves_less=False),
    "restore": dict(bn_stats=True, frozen_grads=True, frozen_state=True, saves_less=False),
    "no_grad": dict(bn_stats=True, frozen_grads=False, frozen_state=False, saves_less=True),
    "helper": dict(bn_stats=False, frozen_grads=False, frozen_state=False, saves_less=True),
}


def _batches(n=6, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, 12, (bs, 3), generator=g), torch.randint(0, 5, (bs,), generator=g)) for _ in range(n)]


def _reference(model0, batches, opt_name, bn_train):
    """Independent formulation: features from a fixed copy of the frozen prefix, only the suffix trained."""
    ref = copy.deepcopy(model0)
    ref.train(bn_train)  # train mode: the BN normalises with batch statistics; eval: with stored ones
    suffix = nn.ModuleDict(dict(fc2=ref.fc2, fc3=ref.fc3))
    opt = OPTIMIZERS[opt_name](suffix.parameters())
    for x, y in batches:
        with torch.no_grad():
            h = ref.prefix(x)
        loss = F.cross_entropy(ref.suffix(h), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in suffix.state_dict().items()}


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("method", fz.FREEZE_METHODS)
def test_methods_against_reference(method, opt_name):
    torch.manual_seed(0)
    model = Char3Seq()
    model0 = copy.deepcopy(model)
    batches = _batches()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    run = fz.setup_freeze_method(model, FROZEN, method, OPTIMIZERS[opt_name])
    frozen_params = [p for n, p in model.named_parameters() if n.split(".")[0] in FROZEN]
    assert sorted(run.frozen) == sorted(n for n, _ in model.named_parameters() if n.split(".")[0] in FROZEN)
    model.train()
    for x, y in batches:
        model.train()  # as a training loop does every epoch: must not undo the helper's BN freeze
        run.step(F.cross_entropy(model(x), y))
    after = model.state_dict()
    exp = EXPECT[method]
    # frozen weights are bitwise unchanged by every method, with momentum and with decoupled weight decay
    for name in ("embed.weight", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias"):
        assert torch.equal(after[name], before[name]), (method, name)
    stats_changed = not all(torch.equal(after[k], before[k])
                            for k in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"))
    assert stats_changed == exp["bn_stats"]
    assert all(p.grad is not None for p in frozen_params) == exp["frozen_grads"]
    assert any(p in run.optimizer.state for p in frozen_params) == exp["frozen_state"]
    # the trainable layers end exactly where the independent reference ends
    ref = _reference(model0, batches, opt_name, bn_train=exp["bn_stats"])
    for k, v in ref.items():
        torch.testing.assert_close(after[k], v, rtol=1e-6, atol=1e-7, msg=f"{method}: {k}")
    # activation memory: requires_grad=False, no_grad and the helper save less for backward
    x = batches[0][0]
    plain = fz.saved_activation_bytes(Char3Seq().train(), x)
    assert (fz.saved_activation_bytes(model, x) < plain) == exp["saves_less"]


# ---------------------------------------------------------------------------------------------- names
def test_freeze_by_names_str_list_and_dotted_path():
    m = KitNet(10, widths=(8, 16))
    assert fz.freeze_by_names(m, "stem") == ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
    names = fz.freeze_by_names(m, ["layer1.0"])
    assert names == [n for n, _ in m.named_parameters() if n.startswith("layer1.0.")]
    assert all(not p.requires_grad for n, p in m.named_parameters() if n.startswith(("stem.", "layer1.0.")))
    assert all(p.requires_grad for n, p in m.named_parameters() if n.startswith(("layer1.1.", "layer2.", "head.")))
    assert fz.freeze_by_names(m, []) == []


def test_unknown_name_raises_keyerror_with_valid_names_and_closest_match():
    m = KitNet(10, widths=(8, 16))
    with pytest.raises(KeyError) as err:
        fz.freeze_by_names(m, ["stem", "layr1"])
    msg = str(err.value)
    assert "'layr1'" in msg and "did you mean 'layer1'" in msg and "'head'" in msg
    assert all(p.requires_grad for p in m.parameters()), "nothing may be frozen when one name is bad"
    with pytest.raises(KeyError, match="is a parameter"):
        fz.freeze_by_names(m, "head.weight")
    with pytest.raises(KeyError):
        fz.freeze_by_names(m, "")
    with pytest.raises(TypeError, match="freeze_by_idxs"):
        fz.freeze_by_names(m, [0])
    with pytest.raises(KeyError):
        fz.unfreeze_by_names(m, "haed")


def test_shared_parameters_reported_once():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert fz.freeze_by_names(m, ["0", "2"]) == ["0.weight", "0.bias"]


# ---------------------------------------------------------------------------------------------- BN pinning
def _bn_state(bn):
    return [t.clone() for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]


def test_bn_stats_stay_bitwise_fixed_through_train_mode_until_unfrozen():
    torch.manual_seed(0)
    m = KitNet(10, widths=(8, 16))
    x = torch.randn(8, 3, 16, 16) * 3 + 1
    m.train()
    m(x)  # give the BN layers non-trivial statistics
    fz.freeze_by_names(m, ["stem", "layer1"])
    bn = m.stem[1]
    assert fz.is_frozen_bn(bn) and not fz.is_frozen_bn(m.layer2[0][1])
    assert fz.frozen_bn_names(m) == ["stem.1", "layer1.0.1", "layer1.1.1"]
    saved = _bn_state(bn)
    for _ in range(3):
        m.train()
        assert bn.training  # model.train() flips the flag ...
        m(x)
        assert not bn.training  # ... and the pre-hook flips it back before the layer runs
    for a, b in zip(_bn_state(bn), saved, strict=True):
        assert torch.equal(a, b)
    # the frozen BN normalises with its stored statistics, exactly as in eval mode
    stem = copy.deepcopy(m.stem)
    stem.eval()
    m.train()
    torch.testing.assert_close(m.stem(x), stem(x), rtol=0, atol=0)
    # the unfrozen stages still update their statistics in train mode
    other = _bn_state(m.layer2[0][1])
    m(x)
    assert not torch.equal(m.layer2[0][1].num_batches_tracked, other[2])
    # the pin survives a deepcopy (a hook that reads a flag, not a handle that points elsewhere)
    m2 = copy.deepcopy(m).train()
    m2(x)
    assert torch.equal(m2.stem[1].running_mean, saved[0])
    # unfreezing restores normal behaviour: hook removed, mode from the model, statistics update again
    fz.unfreeze_by_names(m, "stem")
    assert not fz.is_frozen_bn(bn) and bn.training and not bn._forward_pre_hooks
    m(x)
    assert bn.num_batches_tracked.item() == saved[2].item() + 1
    assert not torch.equal(bn.running_mean, saved[0])
    m.eval()
    fz.unfreeze_by_names(m, "layer1")
    assert not m.layer1[0][1].training  # takes the model's mode (eval here)


def test_freeze_bn_stats_false_leaves_bn_updating():
    m = KitNet(10, widths=(8, 16)).train()
    fz.freeze_by_names(m, "stem", freeze_bn_stats=False)
    before = _bn_state(m.stem[1])
    m(torch.randn(4, 3, 16, 16))
    assert not torch.equal(m.stem[1].running_mean, before[0])
    assert not m.stem[1].weight.requires_grad


def test_freeze_twice_registers_one_hook():
    m = KitNet(10, widths=(8,))
    fz.freeze_by_names(m, "stem")
    fz.freeze_by_names(m, ["stem", "stem.1"])
    assert len(m.stem[1]._forward_pre_hooks) == 1


# ---------------------------------------------------------------------------------------------- optimizer
def test_unfreeze_adds_only_new_params_by_identity_with_fresh_state():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    fz.freeze_by_names(m, ["0", "1"])
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    m(torch.ones(2, 4)).sum().backward()
    opt.step()
    # a parameter equal in value to a held one is still a different parameter
    with torch.no_grad():
        m[1].weight.copy_(m[2].weight.repeat(2, 1))
    opt.state[m[1].weight]["momentum_buffer"] = torch.ones(4, 4)  # stale state that must be dropped
    fz.unfreeze_by_names(m, "1", optimizer=opt, lr=0.01)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == 0.01
    assert [id(p) for p in opt.param_groups[1]["params"]] == [id(m[1].weight), id(m[1].bias)]
    assert m[1].weight not in opt.state
    # unfreezing params the optimizer already holds adds nothing (plain add_param_group would raise)
    fz.unfreeze_by_names(m, ["1", "2"], optimizer=opt)
    assert len(opt.param_groups) == 2
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": list(m[2].parameters())})
    fz.unfreeze_by_names(m, "0", optimizer=opt)
    assert len(opt.param_groups) == 3
    held = [p for g in opt.param_groups for p in g["params"]]
    assert len(held) == len({id(p) for p in held}) == 6
    with pytest.raises(ValueError, match="lr"):
        fz.unfreeze_by_names(m, "0", lr=0)


# ---------------------------------------------------------------------------------------------- indices, stages
def test_freeze_by_idxs_negative_and_out_of_range():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Linear(3, 1))
    assert fz.freeze_by_idxs(m, -1) == ["3.weight", "3.bias"]
    assert fz.freeze_by_idxs(m, [0, 2]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for bad in (4, 7, -5):  # the source's modulo helper would wrap 7 to 3 here; we refuse
        with pytest.raises(IndexError, match=r"valid indices are -4\.\.3"):
            fz.freeze_by_idxs(m, bad)
    with pytest.raises(TypeError):
        fz.freeze_by_idxs(m, True)
    with pytest.raises(TypeError):
        fz.freeze_by_idxs(m, "0")
    assert fz.unfreeze_by_idxs(m, [-4]) == ["0.weight", "0.bias"]
    assert m[0].weight.requires_grad and not m[3].weight.requires_grad


def test_freeze_stages():
    m = KitNet(10, widths=(8, 16))
    stages = stage_names(m)
    assert fz.freeze_stages(m, 0) == [] and all(p.requires_grad for p in m.parameters())
    names = fz.freeze_stages(m, len(stages))
    assert {n.split(".")[0] for n in names} == set(stages)
    assert all(p.requires_grad for p in m.head.parameters())
    assert not any(p.requires_grad for s in stages for p in getattr(m, s).parameters())
    fz.unfreeze_all(m)
    assert all(p.requires_grad for p in m.parameters()) and not fz.frozen_bn_names(m)
    assert {n.split(".")[0] for n in fz.freeze_stages(m, 1)} == {"stem"}
    for bad in (-1, len(stages) + 1):
        with pytest.raises(IndexError, match=rf"0\.\.{len(stages)}"):
            fz.freeze_stages(m, bad)


def test_trainable_summary_counts():
    m = KitNet(10, widths=(8, 16))
    fz.freeze_stages(m, 2)
    t = fz.trainable_summary(m)
    assert list(t.child) == ["stem", "layer1", "layer2", "pool", "head", "total"]
    body = t[t.child != "total"]
    assert (body.trainable + body.frozen == body.params).all()
    total = t[t.child == "total"].iloc[0]
    assert total.params == sum(p.numel() for p in m.parameters()) == body.params.sum()
    assert total.trainable == sum(p.numel() for p in m.parameters() if p.requires_grad)
    mode = dict(zip(t.child, t.bn_mode, strict=True))
    assert mode["stem"] == "stats frozen" and mode["layer2"].startswith("train") and mode["head"] == "-"


def test_setup_rejects_unknown_method():
    with pytest.raises(ValueError, match="'freeze'"):
        fz.setup_freeze_method(nn.Linear(2, 2), [], "freeze", OPTIMIZERS["sgd"])


# ---------------------------------------------------------------------------------------------- probes, traps
def test_memory_probes_match_hand_counts():
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.ones(3, 4)
    # Linear saves its input (x: 3x4; relu out: 3x8), ReLU its output (3x8, same storage as fc2's input)
    assert fz.saved_activation_bytes(m, x) == 4 * (3 * 4 + 3 * 8)
    m(x).sum().backward()
    assert fz.grad_bytes(m) == 4 * sum(p.numel() for p in m.parameters())
    opt = torch.optim.AdamW(m.parameters())
    opt.step()
    n = sum(p.numel() for p in m.parameters())
    assert fz.optimizer_state_bytes(opt) == 4 * 2 * n + sum(
        st["step"].numel() * st["step"].element_size() for st in opt.state.values())


def test_exclude_method_piles_up_frozen_grads():
    torch.manual_seed(0)
    m = Char3Seq()
    twin = copy.deepcopy(m)
    run = fz.setup_freeze_method(m, ["embed"], "exclude", OPTIMIZERS["sgd"])
    twin_run = fz.setup_freeze_method(twin, ["embed"], "exclude", OPTIMIZERS["sgd"])
    per_step = []
    for x, y in _batches(3):
        run.step(F.cross_entropy(m(x), y))
        twin.embed.weight.grad = None  # what zero_grad would do if it saw the frozen parameter
        twin_run.step(F.cross_entropy(twin(x), y))
        per_step.append(twin.embed.weight.grad.clone())
    # zero_grad only sees the optimizer's params: the frozen grad is the running sum of every step's grad
    torch.testing.assert_close(m.embed.weight.grad, sum(per_step))
    assert m.embed.weight.grad.abs().sum() > per_step[-1].abs().sum()


def test_adamw_moves_frozen_weights_when_grads_are_zeroed_not_none():
    torch.manual_seed(0)
    m = Char3Seq()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = _batches(1)[0]
    opt.zero_grad(set_to_none=False)
    F.cross_entropy(m(x), y).backward()
    opt.step()
    w = m.fc1.weight.detach().clone()
    m.fc1.weight.requires_grad = False
    m.fc1.bias.requires_grad = False
    opt.zero_grad(set_to_none=False)  # fc1's grads become zeros, not None: AdamW still steps them
    F.cross_entropy(m(x), y).backward()
    opt.step()
    assert not torch.equal(m.fc1.weight, w)


def test_check_frozen_finds_each_kind_of_mistake():
    m = KitNet(10, widths=(8, 16))
    fz.freeze_by_names(m, "stem")
    assert fz.check_frozen(m, "stem", verbose=False).problems == []
    assert any("'layer1.0.0.weight' is trainable" in p
               for p in fz.check_frozen(m, ["stem", "layer1"], verbose=False).problems)
    m.stem[0].weight.requires_grad = True
    assert fz.check_frozen(m, "stem", verbose=False).problems == ["'stem.0.weight' is trainable but should be frozen"]
    m2 = KitNet(10, widths=(8, 16))
    for p in m2.stem.parameters():
        p.requires_grad = False  # parameters frozen by hand, BN statistics not
    assert fz.check_frozen(m2, "stem", verbose=False).problems == ["BatchNorm 'stem.1' should have frozen statistics"]
    assert fz.check_frozen(m2, "stem", bn_stats=False, verbose=False).problems == []
    opt = torch.optim.SGD([p for p in m2.parameters() if p.requires_grad], lr=0.1)
    opt.add_param_group({"params": [m2.stem[0].weight]})
    assert fz.check_frozen(m2, "stem", optimizer=opt, bn_stats=False, verbose=False).problems == []
    opt2 = torch.optim.SGD(list(m2.head.parameters()), lr=0.1)
    assert len(fz.check_frozen(m2, "stem", optimizer=opt2, bn_stats=False, verbose=False).problems) > 0
    with pytest.raises(KeyError):
        fz.check_frozen(m2, "stme")


class _SplitStem(nn.Module):
    """Like timm's ResNet: the stem is several children, and the first 'stage' is its last one."""

    stage_names = ("act1", "layer1", "layer2")

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.act1 = nn.ReLU()
        self.layer1 = nn.Conv2d(4, 4, 3)
        self.layer2 = nn.Conv2d(4, 4, 3)
        self.fc = nn.Linear(4, 2)


def test_freeze_stages_takes_a_split_stem_with_the_first_stage():
    m = _SplitStem()
    assert fz.freeze_stages(m, 1) == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"]
    assert fz.is_frozen_bn(m.bn1) and m.layer1.weight.requires_grad
    assert fz.freeze_stages(m, 3)[-1] == "layer2.bias" and m.fc.weight.requires_grad


# ---------------------------------------------------------------------------------------------- reliability, API
def test_numpy_integers_and_floats_are_accepted():
    m = KitNet(10, widths=(8, 16))
    assert fz.freeze_by_idxs(m, np.int64(0)) == fz.freeze_by_idxs(m, [np.int32(-5)])
    assert fz.freeze_stages(m, np.int64(2)) == fz.freeze_stages(m, 2)
    opt = torch.optim.SGD(m.head.parameters(), lr=0.1)
    fz.unfreeze_by_idxs(m, np.int64(1), optimizer=opt, lr=np.float32(0.01))
    assert opt.param_groups[1]["lr"] == pytest.approx(0.01) and isinstance(opt.param_groups[1]["lr"], float)
    with pytest.raises(ValueError, match=r"lr must be a number > 0, got -1"):
        fz.unfreeze_by_names(m, "stem", lr=-1)
    with pytest.raises(TypeError, match="k must be an integer, got float 1.0"):
        fz.freeze_stages(m, 1.0)


def test_check_frozen_is_a_check_result():
    from transferlab.checks import CheckResult

    m = KitNet(10, widths=(8, 16))
    fz.freeze_by_names(m, "stem")
    right, wrong = fz.check_frozen(m, "stem"), fz.check_frozen(m, ["stem", "layer1"])
    assert isinstance(right, CheckResult) and right and repr(right) == "✅ correct"
    assert not wrong and repr(wrong).startswith("❌ not yet: 'layer1.0.0.weight' is trainable")
    assert "\n" not in repr(wrong) and f"({len(wrong.problems)} in all)" in repr(wrong)


def test_trainable_summary_counts_mixed_bn_modes():
    m = KitNet(10, widths=(8, 16))
    fz.freeze_by_names(m, "layer1.0")
    modes = dict(zip(*fz.trainable_summary(m.train())[["child", "bn_mode"]].values.T, strict=True))
    assert modes["layer1"] == "mixed (1 stats frozen, 1 train (updates stats))"
    assert modes["layer2"] == "train (updates stats)" and fz.trainable_summary(m.eval()).bn_mode.iloc[2] == "eval"


def test_moved_names_still_import_from_freeze():
    from transferlab import freeze_methods

    for name in ("FREEZE_METHODS", "FrozenRun", "setup_freeze_method", "saved_activation_bytes", "grad_bytes",
                 "optimizer_state_bytes"):
        assert getattr(fz, name) is getattr(freeze_methods, name)
    from transferlab.freeze import FREEZE_METHODS  # noqa: F401  (the import statement form works too)

    with pytest.raises(AttributeError, match="no attribute 'frozen_methods'"):
        fz.frozen_methods  # noqa: B018


# ---------------------------------------------------------------------------------------------- the source's code
# The source's helpers, as written (the widely copied code; e.g. zhihu.com/question/311095447/answer/589307812).
# Lesson 02 shows this exact code (test_lesson_02_shows_the_source_code_tested_here checks it), bugs included.
SOURCE_HELPERS = '''
from collections.abc import Iterable


def set_freeze_by_names(model, layer_names, freeze=True):
    if not isinstance(layer_names, Iterable):
        layer_names = [layer_names]
    for name, child in model.named_children():
        if name not in layer_names:
            continue
        for param in child.parameters():
            param.requires_grad = not freeze


def freeze_by_names(model, layer_names):
    set_freeze_by_names(model, layer_names, True)


def unfreeze_by_names(model, layer_names):
    set_freeze_by_names(model, layer_names, False)


def set_freeze_by_idxs(model, idxs, freeze=True):
    if not isinstance(idxs, Iterable):
        idxs = [idxs]
    num_child = len(list(model.children()))
    idxs = tuple(map(lambda idx: num_child + idx if idx < 0 else idx, idxs))
    for idx, child in enumerate(model.children()):
        if idx not in idxs:
            continue
        for param in child.parameters():
            param.requires_grad = not freeze


def freeze_by_idxs(model, idxs):
    set_freeze_by_idxs(model, idxs, True)


def unfreeze_by_idxs(model, idxs):
    set_freeze_by_idxs(model, idxs, False)
'''


def _source():
    namespace: dict = {}
    exec(compile(SOURCE_HELPERS, "<the source's helpers>", "exec"), namespace)  # noqa: S102 - a fixed quotation
    return namespace


def _deep():
    """Children layer1 ... layer10 and head: one name is the beginning of another."""
    from collections import OrderedDict

    layers = [(f"layer{i}", nn.Linear(4, 4)) for i in range(1, 11)]
    return nn.Sequential(OrderedDict(layers + [("head", nn.Linear(4, 2))]))


def test_source_freeze_by_names_with_a_string_is_a_substring_match_and_the_kit_is_not():
    from transferlab.freeze_methods import frozen_children

    src = _source()
    m = _deep()
    src["freeze_by_names"](m, "layer10")  # a str is Iterable: `name not in "layer10"` is a substring test
    assert frozen_children(m) == ["layer1", "layer10"]
    m = _deep()
    src["freeze_by_names"](m, ["layer10"])  # the list form is right
    assert frozen_children(m) == ["layer10"]
    m = _deep()
    fz.freeze_by_names(m, "layer10")
    assert frozen_children(m) == ["layer10"]
    m = _deep()
    fz.freeze_by_names(m, ["layer1", "layer10"])
    src["unfreeze_by_names"](m, "layer10")  # unfreezing layer10 thaws layer1 too
    assert frozen_children(m) == []


def test_source_helpers_skip_typos_and_out_of_range_indices_silently_and_the_kit_refuses():
    from transferlab.freeze_methods import frozen_children

    src = _source()
    m = _deep()
    src["freeze_by_names"](m, ["layer2", "layer_3"])
    assert frozen_children(m) == ["layer2"]
    m = _deep()
    src["freeze_by_idxs"](m, 11)  # one past the end of 11 children
    assert frozen_children(m) == []
    with pytest.raises(KeyError, match="did you mean 'layer3'"):
        fz.freeze_by_names(_deep(), ["layer2", "layer_3"])
    with pytest.raises(IndexError, match="out of range"):
        fz.freeze_by_idxs(_deep(), 11)
    m = _deep()
    src["freeze_by_idxs"](m, [-1, 0])  # what the source's index helper does right: negative indices
    assert frozen_children(m) == ["layer1", "head"]


def _restore_run(restore, steps=4, seed=0):
    """The source's method 3 on Char3Seq: fc1.weight cached once, SGD+momentum on everything, a restore per step."""
    torch.manual_seed(seed)
    m = Char3Seq()
    old_weights = m.fc1.weight.clone()  # the source's cache
    w0 = m.fc1.weight.detach().clone()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    drift, shared = [], []
    for x, y in _batches(steps, seed=seed):
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
        restore(m, old_weights)
        drift.append(float((m.fc1.weight.detach() - w0).abs().max()))
        shared.append(m.fc1.weight.untyped_storage().data_ptr() == old_weights.untyped_storage().data_ptr())
    return drift, shared


def test_source_method3_restore_aliases_the_cache_after_the_first_step():
    def source_restore(model, old_weights):
        model.fc1.weight.data = old_weights.data  # the source's restore line, as written

    drift, shared = _restore_run(source_restore)
    assert drift[0] == 0.0 and all(shared)  # the first restore works, and makes the weight use the cache's storage
    assert all(d > 0 for d in drift[1:]) and drift[-1] > drift[1]  # then every step sticks, and they add up


def test_kit_restore_method_keeps_the_weight_bitwise_where_the_source_line_does_not():
    def copy_restore(model, old_weights):
        with torch.no_grad():
            model.fc1.weight.copy_(old_weights)

    drift, shared = _restore_run(copy_restore)
    assert drift == [0.0] * len(drift) and not any(shared)
    torch.manual_seed(0)
    m = Char3Seq()
    w0 = m.fc1.weight.detach().clone()
    run = fz.setup_freeze_method(m, ["fc1"], "restore", OPTIMIZERS["sgd"])
    for x, y in _batches(4):
        run.step(F.cross_entropy(m(x), y))
    assert torch.equal(m.fc1.weight, w0)
    assert all(p.untyped_storage().data_ptr() != c.untyped_storage().data_ptr() for p, c in run.cache.items())


def test_lesson_02_shows_the_source_code_tested_here():
    import ast
    from pathlib import Path

    import nbformat

    path = Path(__file__).resolve().parents[1] / "notebooks" / "02_freeze_methods.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "def set_freeze_by_names(" in c.source]
    assert len(cells) == 1, "lesson 02 should show the source's helpers in exactly one code cell"
    defs = lambda src: [ast.dump(n) for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)]
    assert defs(cells[0].source) == defs(SOURCE_HELPERS)
    assert "model.fc1.weight.data = old_weights.data" in "\n".join(c.source for c in nb.cells if c.cell_type == "code")


# ---------------------------------------------------------------------------------------------- exercise checks
def test_check_names_compares_sets_and_says_what_is_missing_and_extra():
    from transferlab.checks import CheckResult
    from transferlab.freeze_methods import check_names

    assert check_names("q", {"b", "a"}, ["a", "b"]) and check_names("q", "a", ["a"])
    wrong = check_names("q", ["a", "c"], ["a", "b"], explain="because")
    assert isinstance(wrong, CheckResult) and not wrong
    assert "missing {'b'}" in wrong.message and "extra {'c'}" in wrong.message and wrong.message.endswith("because")
    assert not check_names("q", None, ["a"]) and "no answer yet" in check_names("q", None, ["a"]).message
    assert not check_names("q", 3, ["a"]) and "expected a set of names" in check_names("q", 3, ["a"]).message


def test_check_restore_tells_the_aliasing_restore_from_right_ones():
    from transferlab.freeze_methods import check_restore

    def source(layer, old_weights):
        layer.weight.data = old_weights.data

    def assign_clone(layer, old_weights):
        layer.weight.data = old_weights.data.clone()

    def copy_(layer, old_weights):
        with torch.no_grad():
            layer.weight.copy_(old_weights)

    def new_parameter(layer, old_weights):
        layer.weight = nn.Parameter(old_weights.detach().clone())

    def nothing(layer, old_weights):
        pass

    wrong = check_restore(source)
    assert not wrong and "after step 2" in wrong.message and "moved" in wrong.message
    assert check_restore(assign_clone) and check_restore(copy_)
    assert not check_restore(new_parameter) and "no longer the parameter" in check_restore(new_parameter).message
    assert not check_restore(nothing) and "after step 1" in check_restore(nothing).message
    assert "no answer yet" in check_restore(None).message and not check_restore(3)
    state = torch.get_rng_state()
    check_restore(copy_)
    assert torch.equal(torch.get_rng_state(), state)  # the check draws from its own stream


def test_check_freeze_idxs_and_check_unfreeze():
    from transferlab.freeze_methods import check_freeze_idxs, check_unfreeze

    m = KitNet(10, widths=(8, 16))
    n = len(fz.child_names(m))
    assert check_freeze_idxs(m, [-n, -n + 1], ["stem", "layer1"])
    assert not check_freeze_idxs(m, [0, 1], ["stem", "layer1"])  # right children, but not negative
    assert not check_freeze_idxs(m, [-n], ["stem", "layer1"])
    assert "refused" in check_freeze_idxs(m, [-n - 1], ["stem"]).message
    assert all(p.requires_grad for p in m.parameters())  # the check works on a copy
    assert "no answer yet" in check_freeze_idxs(m, None, ["stem"]).message

    def right(model, opt):
        fz.unfreeze_by_names(model, "layer1", optimizer=opt, lr=opt.defaults["lr"] / 10)

    def same_lr(model, opt):
        fz.unfreeze_by_names(model, "layer1", optimizer=opt)

    def flags_only(model, opt):
        for p in model.layer1.parameters():
            p.requires_grad = True

    def re_add_all(model, opt):
        fz.unfreeze_by_names(model, "layer1")
        opt.add_param_group({"params": list(model.parameters()), "lr": 1e-4})

    assert check_unfreeze(right, m, stages=2, name="layer1")
    assert "want 0.1 x" in check_unfreeze(same_lr, m, stages=2, name="layer1").message
    flags = check_unfreeze(flags_only, m, stages=2, name="layer1")
    assert not flags and ("BatchNorm" in flags.message or "optimizer" in flags.message)
    assert "ValueError" in check_unfreeze(re_add_all, m, stages=2, name="layer1").message
    assert "no answer yet" in check_unfreeze(None, m, stages=2, name="layer1").message
