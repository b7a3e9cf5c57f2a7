"""The kit's own pretrained models: built on this machine from the source task, cached, verified, loaded.

The zoo stands in for "the ImageNet models on the hub" when there is no network. Its members differ in
architecture, width, depth, pretraining budget and what they were pretrained to recognise, so that they
transfer differently, which is what model selection (lesson 04) has to find out.

Files live in ``$TRANSFERLAB_HOME/zoo`` (default ``~/.cache/transferlab/zoo``): one ``<name>.safetensors`` per
model and a ``manifest.json`` with its recipe, its source-task accuracy and the file's SHA-256. Loading checks
the hash; a corrupted or truncated file is moved aside (never deleted, never used) and rebuilt.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import __version__
from .kitnet import ARCHITECTURES, KitNet

__all__ = ["ZooSpec", "ZOO", "home", "zoo_dir", "build", "build_all", "load", "status", "manifest", "sha256"]


@dataclass(frozen=True)
class ZooSpec:
    """How one zoo model is pretrained on the source task."""

    arch: str
    label: str = "combo"  # what the source labels name: "combo" (20 classes), "shape" (6), "texture" (5)
    n_per_class: int = 1000  # source images per (shape, texture) class
    epochs: int = 3  # 0 = not pretrained at all (a random-init baseline)
    lr: float = 4e-3
    label_noise: float = 0.0  # fraction of source labels replaced at random
    seed: int = 0
    description: str = ""

    @property
    def num_source_classes(self) -> int:
        return {"combo": 20, "shape": 6, "texture": 5}[self.label]

    def make_model(self) -> KitNet:
        """The architecture with a source-task head, randomly initialised (seeded by the spec)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = KitNet(self.num_source_classes, **ARCHITECTURES[self.arch])
        model.pretrained_cfg.update(architecture=self.arch)
        return model

    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True) + f"|world{_WORLD_VERSION}"
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


_WORLD_VERSION = 1  # bump when the world's rendering changes, so cached models are rebuilt

ZOO: dict[str, ZooSpec] = {
    "kitnet_s-src": ZooSpec("kitnet_s", description="small plain CNN, full source task"),
    "kitnet_m-src": ZooSpec("kitnet_m", n_per_class=1500, description="the lessons' default: medium plain CNN"),
    "kitnet_l-src": ZooSpec("kitnet_l", epochs=2, description="wide plain CNN, full source task"),
    "kitnet_deep-src": ZooSpec("kitnet_deep", description="four stages (deeper, lower resolution at the end)"),
    "kitres_m-src": ZooSpec("kitres_m", description="residual CNN (one BasicBlock per stage)"),
    "kitnet_m-brief": ZooSpec("kitnet_m", n_per_class=100, epochs=1, description="medium CNN, tiny budget"),
    "kitnet_m-shapes": ZooSpec("kitnet_m", label="shape", description="pretrained to name the shape only"),
    "kitnet_m-textures": ZooSpec("kitnet_m", label="texture", description="pretrained to name the texture only"),
    "kitnet_m-noisy": ZooSpec("kitnet_m", label_noise=0.7, epochs=2, description="70% of source labels random"),
    "kitnet_m-random": ZooSpec("kitnet_m", epochs=0, description="not pretrained: random weights (a baseline)"),
}


def home() -> Path:
    """The kit's cache: ``$TRANSFERLAB_HOME`` or ``~/.cache/transferlab``."""
    return Path(os.environ.get("TRANSFERLAB_HOME") or Path.home() / ".cache" / "transferlab").expanduser()


def zoo_dir() -> Path:
    return home() / "zoo"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest() -> dict:
    """The manifest as a dict (empty when nothing is built yet)."""
    path = zoo_dir() / "manifest.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        warnings.warn(f"{path} is not valid JSON; treating the zoo as empty (models will be rebuilt)", stacklevel=2)
        return {}


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _lock(what: str):
    """An exclusive lock on one zoo model (or on the manifest), so two processes never build the same model
    at once, while loading a built model never waits for another model's build."""
    zoo_dir().mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock; atomic renames still keep files whole
        yield
        return
    with open(zoo_dir() / f".{what}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_name(name: str) -> ZooSpec:
    if name not in ZOO:
        close = difflib.get_close_matches(str(name), ZOO, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"no zoo model named {name!r}.{hint} Zoo models: {sorted(ZOO)}")
    return ZOO[name]


def _pretrain(spec: ZooSpec, progress: bool, device) -> tuple[KitNet, float]:
    from .train import evaluate, fit
    from .world import source_task

    model = spec.make_model()
    task = source_task(spec.n_per_class, seed=spec.seed, label=spec.label, n_test_per_class=25)
    if spec.epochs == 0:
        return model, evaluate(model, task.loader("test", 500), device=device)["acc"]
    y = task.y_train
    if spec.label_noise > 0:
        gen = torch.Generator().manual_seed(spec.seed + 1)
        flip = torch.rand(len(y), generator=gen) < spec.label_noise
        y = torch.where(flip, torch.randint(spec.num_source_classes, y.shape, generator=gen), y)
    from .tasks import TensorLoader

    train = TensorLoader(task.x_train, y, 128, shuffle=True, seed=spec.seed)
    with torch.random.fork_rng(devices=[]):
        fit(model, train, epochs=spec.epochs, lr=spec.lr, weight_decay=5e-4, device=device, progress=progress,
            seed=spec.seed, desc=f"pretrain {spec.arch}")
    acc = evaluate(model, task.loader("test", 500), device=device)["acc"]
    return model.cpu(), acc


def build(name: str, *, force: bool = False, progress: bool = True, device=None) -> Path:
    """Pretrain zoo model ``name`` and store it (skipped when a valid copy is cached, unless ``force``)."""
    spec = _check_name(name)
    with _lock(name):
        if not force and _valid(name, spec):
            return zoo_dir() / f"{name}.safetensors"
        return _build_locked(name, spec, progress, device)


def _build_locked(name, spec, progress, device) -> Path:
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    model, acc = _pretrain(spec, progress, device)
    path = zoo_dir() / f"{name}.safetensors"
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"name": name, "arch": spec.arch}))
    entry = dict(asdict(spec), name=name, fingerprint=spec.fingerprint(), source_test_acc=round(acc, 4),
                 sha256=sha256(path), bytes=path.stat().st_size, build_seconds=round(time.perf_counter() - t0, 1),
                 torch=torch.__version__, transferlab=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with _lock("manifest"):  # read-modify-write: other processes may be adding their own entries
        man = manifest()
        man[name] = entry
        _atomic_write(zoo_dir() / "manifest.json", lambda tmp: Path(tmp).write_text(json.dumps(man, indent=2)))
    return path


def _valid(name: str, spec: ZooSpec) -> bool:
    """True when the cached file exists, matches the current recipe and its hash; moves a bad file aside."""
    path = zoo_dir() / f"{name}.safetensors"
    entry = manifest().get(name)
    if not path.exists() or entry is None or entry.get("fingerprint") != spec.fingerprint():
        return False
    if sha256(path) != entry.get("sha256"):
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        warnings.warn(f"zoo model {name!r} failed its SHA-256 check (corrupted or truncated); moved it to "
                      f"{aside} and it will be rebuilt", stacklevel=3)
        return False
    return True


def build_all(names=None, *, force: bool = False, progress: bool = True, device=None) -> list[Path]:
    """Build every zoo model (or ``names``) that is missing or invalid, with one progress bar over models."""
    names = list(ZOO) if names is None else [n for n in names if _check_name(n)]
    paths = []
    bar = tqdm(names, desc="zoo", disable=not progress)
    for n in bar:
        bar.set_postfix_str(n)
        paths.append(build(n, force=force, progress=progress, device=device))
    return paths


def load(name: str, *, device=None, build_missing: bool = True, progress: bool = True) -> KitNet:
    """Load a zoo model with its source-task head (use ``replace_head`` for a new task).

    A missing, outdated or corrupted file is (re)built when ``build_missing`` is True; otherwise
    ``FileNotFoundError`` names the command that builds it. Weights load through safetensors (no pickle).
    """
    from safetensors.torch import load_file

    from .device import resolve_device

    spec = _check_name(name)
    with _lock(name):
        if not _valid(name, spec):
            if not build_missing:
                raise FileNotFoundError(f"zoo model {name!r} is not built in {zoo_dir()}; build it with "
                                        f"`python data_scripts/build_zoo.py --only {name}` (or `make zoo`)")
            _build_locked(name, spec, progress, None)
        state = load_file(zoo_dir() / f"{name}.safetensors")
    model = spec.make_model()
    model.load_state_dict(state, strict=True)
    model.pretrained_cfg.update(zoo_name=name, source=f"transfer world, {spec.label} labels", pretrained=True)
    return model.to(resolve_device(device))


def status() -> list[dict]:
    """One row per zoo model: built or not, recipe, source accuracy, size (for a table in a notebook)."""
    man = manifest()
    rows = []
    for name, spec in ZOO.items():
        entry = man.get(name, {})
        built = (zoo_dir() / f"{name}.safetensors").exists() and entry.get("fingerprint") == spec.fingerprint()
        rows.append(dict(name=name, arch=spec.arch, label=spec.label, images=spec.n_per_class * 20,
                         epochs=spec.epochs, label_noise=spec.label_noise, built=built,
                         source_test_acc=entry.get("source_test_acc"), description=spec.description))
    return rows
