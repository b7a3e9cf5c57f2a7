"""The kit's own pretrained models: built on this machine from the source task, cached, verified, loaded.

The zoo stands in for "the ImageNet models on the hub" when there is no network. Its members differ in
architecture, width, depth, pretraining budget and what they were pretrained to recognise, so that they
transfer differently, which is what model selection (lesson 04) has to find out.

Files live in ``$TRANSFERLAB_HOME/zoo`` (default ``~/.cache/transferlab/zoo``): per model a
``<name>.safetensors`` and a ``<name>.json`` record (its recipe, what pretraining reached, the weights' SHA-256),
and ``manifest.json``, an index of the records for people and older versions of the kit. Loading checks the
hash; a corrupted or truncated file is moved aside (never deleted, never used) and rebuilt.

**Sharing one zoo.** Loading a built, verified model only reads files: an instructor can build the zoo once
into a folder that students can read but not write (``TRANSFERLAB_HOME=/srv/transferlab``). Building needs a
writable home, and says so when it has none.

**What a zoo entry is.** :class:`ZooEntry` is the recipe interface: a fingerprint, an untrained model with its
pretraining head, and a ``pretrain`` step. :class:`ZooSpec` is the image recipe (a KitNet pretrained on the
world's source task); a text recipe is another subclass, so the zoo's build/verify/load machinery serves both.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import __version__
from ._paths import atomic_write, file_lock, home, keep_aside, sha256
from ._validate import as_key, as_list
from .device import resolve_device, seeded
from .kitnet import ARCHITECTURES, KitNet
from .ssl import SSL_ENTRIES
from .tasks import TensorLoader
from .text_zoo import TEXT_ZOO
from .train import evaluate, fit
from .world import WORLD_VERSION, source_task
from .zoo_entry import ZooEntry

__all__ = ["ZooEntry", "ZooSpec", "ZOO", "home", "zoo_dir", "build", "build_all", "load", "status", "manifest",
           "sha256", "is_built", "names"]


@dataclass(frozen=True)
class ZooSpec(ZooEntry):
    """How one image zoo model (a KitNet) is pretrained on the world's source task."""

    arch: str
    label: str = "combo"  # what the source labels name: "combo" (20 classes), "shape" (6), "texture" (5)
    n_per_class: int = 1000  # source images per (shape, texture) class
    epochs: int = 3  # 0 = not pretrained at all (a random-init baseline)
    lr: float = 4e-3
    label_noise: float = 0.0  # fraction of source labels replaced at random
    seed: int = 0
    description: str = ""
    kind = "image"

    @property
    def num_source_classes(self) -> int:
        return {"combo": 20, "shape": 6, "texture": 5}[self.label]

    def make_model(self) -> KitNet:
        with seeded(self.seed):
            model = KitNet(self.num_source_classes, **ARCHITECTURES[self.arch])
        model.pretrained_cfg.update(architecture=self.arch)
        return model

    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True) + f"|world{WORLD_VERSION}"
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def pretrain(self, *, progress: bool, device) -> tuple[KitNet, dict]:
        model = self.make_model()
        task = source_task(self.n_per_class, seed=self.seed, label=self.label, n_test_per_class=25)
        if self.epochs > 0:
            y = task.y_train
            if self.label_noise > 0:
                gen = torch.Generator().manual_seed(self.seed + 1)
                flip = torch.rand(len(y), generator=gen) < self.label_noise
                y = torch.where(flip, torch.randint(self.num_source_classes, y.shape, generator=gen), y)
            train = TensorLoader(task.x_train, y, 128, shuffle=True, seed=self.seed)
            fit(model, train, epochs=self.epochs, lr=self.lr, weight_decay=5e-4, device=device, progress=progress,
                seed=self.seed, desc=f"pretrain {self.arch}")
        acc = evaluate(model, task.loader("test", 500), device=device)["acc"]
        return model.cpu(), {"source_test_acc": round(acc, 4)}

    def summary(self) -> dict:
        return dict(arch=self.arch, label=self.label, images=self.n_per_class * self.num_source_classes,
                    epochs=self.epochs, label_noise=self.label_noise)

    def loaded_info(self) -> dict:
        return dict(source=f"transfer world, {self.label} labels")



ZOO: dict[str, ZooEntry] = {
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
# the text recipes (kind "text", lesson 06): importing them loads no NLP library until a text model is built
ZOO.update(TEXT_ZOO)
# the self-supervised recipes (lesson 04): the SimCLR model and its per-epoch checkpoints
ZOO.update(SSL_ENTRIES)


def zoo_dir() -> Path:
    """``$TRANSFERLAB_HOME/zoo``."""
    return home() / "zoo"


def _weights(name: str) -> Path:
    return zoo_dir() / f"{name}.safetensors"


def _record_path(name: str) -> Path:
    return zoo_dir() / f"{name}.json"


_REQUIRED = ("fingerprint", "sha256")


def _well_formed(entry) -> bool:
    return isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in _REQUIRED)


def _read_json(path: Path, what: str):
    """The parsed file, or None (with a warning naming the file) when it is missing or not valid JSON."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        warnings.warn(f"{path} is not valid JSON; {what}", stacklevel=4)
        return None


def _legacy_manifest() -> dict:
    data = _read_json(zoo_dir() / "manifest.json", "ignoring it (each model's own record is used instead)")
    if data is None:
        return {}
    if not isinstance(data, dict):
        warnings.warn(f"{zoo_dir() / 'manifest.json'} holds a {type(data).__name__}, not an object of model "
                      f"records; ignoring it (each model's own record is used instead)", stacklevel=3)
        return {}
    return {k: v for k, v in data.items() if _well_formed(v)}


def manifest() -> dict:
    """Every built model's record, ``{name: record}`` (empty when nothing is built).

    Read from the per-model records (``<name>.json``), falling back to ``manifest.json`` for models built by
    older versions of the kit. Malformed records are ignored with a warning, never trusted.
    """
    out = _legacy_manifest()
    folder = zoo_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            if path.name == "manifest.json" or path.name.startswith("."):
                continue
            entry = _read_json(path, "ignoring this record (the model will be rebuilt or re-verified)")
            if entry is None:
                continue
            if _well_formed(entry) and entry.get("name") == path.stem:
                out[path.stem] = entry
            else:
                warnings.warn(f"{path} is not a zoo record; ignoring it", stacklevel=2)
    return out


def _check_name(name: str) -> ZooEntry:
    return as_key("zoo model", name, ZOO)


def _verify(name: str, spec: ZooEntry, entry: dict | None) -> str:
    """``"ok"``, ``"missing"``, ``"outdated"`` or ``"corrupt"`` for the cached file of ``name``."""
    path = _weights(name)
    if not path.exists() or entry is None:
        return "missing"
    if entry.get("fingerprint") != spec.fingerprint():
        return "outdated"
    return "ok" if sha256(path) == entry.get("sha256") else "corrupt"


def is_built(name: str) -> bool:
    """True when ``name``'s weights are cached, of the current recipe and pass their SHA-256 check.

    Examples
    --------
    >>> is_built("kitnet_m-src") in (True, False)
    True
    """
    spec = _check_name(name)
    return _verify(name, spec, manifest().get(name)) == "ok"


def _move_corrupt(name: str) -> None:
    path = _weights(name)
    try:
        aside = keep_aside(path, "corrupt")
    except OSError as err:
        raise OSError(f"zoo model {name!r} at {path} failed its SHA-256 check (corrupted or truncated) and the "
                      f"zoo folder is not writable ({err.strerror}); ask whoever built the zoo to rebuild it "
                      f"(`python data_scripts/build_zoo.py --only {name}`)") from err
    warnings.warn(f"zoo model {name!r} failed its SHA-256 check (corrupted or truncated); moved it to {aside} "
                  f"and it will be rebuilt", stacklevel=4)


def build(name: str, *, force: bool = False, progress: bool = True, device=None) -> Path:
    """Pretrain zoo model ``name`` and store it (skipped when a valid copy is cached, unless ``force``)."""
    spec = _check_name(name)
    resolve_device(device)  # a bad device is an error before any work, even when nothing needs building
    with file_lock(zoo_dir() / f".{name}.lock"):
        status = _verify(name, spec, manifest().get(name))
        if status == "ok" and not force:
            return _weights(name)
        if status == "corrupt":
            _move_corrupt(name)
        return _build_locked(name, spec, progress, device)


def _build_locked(name: str, spec: ZooEntry, progress: bool, device) -> Path:
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    model, metrics = spec.pretrain(progress=progress, device=device)
    path = _weights(name)
    if path.exists():
        entry = manifest().get(name)
        if entry is None or sha256(path) != entry.get("sha256"):  # not a file this kit wrote: keep it
            aside = keep_aside(path, "replaced")
            warnings.warn(f"{path} was not written by the kit's zoo (no matching record); kept it as {aside}",
                          stacklevel=3)
    # clone: tied weights (a language model's input and output embeddings) share memory, which safetensors refuses
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"name": name, "kind": spec.kind}))
    entry = dict(asdict(spec) if hasattr(spec, "__dataclass_fields__") else {}, name=name, kind=spec.kind,
                 fingerprint=spec.fingerprint(), **metrics, sha256=sha256(path), bytes=path.stat().st_size,
                 build_seconds=round(time.perf_counter() - t0, 1), torch=torch.__version__,
                 transferlab=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write(_record_path(name), json.dumps(entry, indent=2))
    _write_index()
    return path


def _write_index() -> None:
    """Rewrite ``manifest.json`` from the per-model records (a file there that is not an index is kept aside)."""
    index = zoo_dir() / "manifest.json"
    with file_lock(zoo_dir() / ".manifest.lock"):
        if index.exists():
            try:
                ok = isinstance(json.loads(index.read_text()), dict)
            except (json.JSONDecodeError, UnicodeDecodeError):
                ok = False
            if not ok:
                aside = keep_aside(index, "invalid")
                warnings.warn(f"{index} was not a zoo index; kept it as {aside} and wrote a new one", stacklevel=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            records = manifest()
        atomic_write(index, json.dumps(records, indent=2))


def build_all(names=None, *, force: bool = False, progress: bool = True, device=None) -> list[Path]:
    """Build every zoo model (or ``names``: a list, or one name) that is missing or invalid."""
    names = list(ZOO) if names is None else as_list("names", names)
    for n in names:
        _check_name(n)
    resolve_device(device)
    paths = []
    bar = tqdm(names, desc="zoo", disable=not progress)
    for n in bar:
        bar.set_postfix_str(n)
        paths.append(build(n, force=force, progress=progress, device=device))
    return paths


def load(name: str, *, device=None, build_missing: bool = True, progress: bool = True) -> nn.Module:
    """Load a zoo model with its pretraining head (use ``replace_head`` for a new task).

    A built, verified model is only read (no lock, no write), so a read-only zoo works. A missing, outdated or
    corrupted file is (re)built when ``build_missing`` is True; otherwise ``FileNotFoundError`` names the
    command that builds it. Weights load through safetensors (no pickle).
    """
    from safetensors.torch import load_file

    spec = _check_name(name)
    device = resolve_device(device)
    status = _verify(name, spec, manifest().get(name))
    if status != "ok":
        with file_lock(zoo_dir() / f".{name}.lock", required=build_missing):
            status = _verify(name, spec, manifest().get(name))  # another process may have built it meanwhile
            if status == "corrupt":
                _move_corrupt(name)
            if status != "ok":
                if not build_missing:
                    raise FileNotFoundError(f"zoo model {name!r} is not built in {zoo_dir()}; build it with "
                                            f"`python data_scripts/build_zoo.py --only {name}` (or `make zoo`)")
                _build_locked(name, spec, progress, None)
    state = load_file(_weights(name))
    model = spec.make_model()
    model.load_state_dict(state, strict=True)
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict):
        cfg.update(zoo_name=name, pretrained=True, **spec.loaded_info())
    return model.to(device)


def status() -> list[dict]:
    """One row per zoo model: built or not, recipe, source accuracy (for a table in a notebook).

    ``built`` means cached with the current recipe; :func:`is_built` also checks the file's hash.
    """
    man = manifest()
    rows = []
    for name, spec in ZOO.items():
        entry = man.get(name, {})
        built = _weights(name).exists() and entry.get("fingerprint") == spec.fingerprint()
        rows.append(dict(name=name, kind=spec.kind, **spec.summary(), built=built,
                         source_test_acc=entry.get("source_test_acc"), description=spec.description))
    return rows



def names(kind: str | None = None) -> list[str]:
    """The zoo's model names, all of them or those of one ``kind`` ("image", "text").

    Examples
    --------
    >>> "kitnet_m-src" in names("image") and "kitnet_m-src" not in names("text")
    True
    """
    if kind is not None and kind not in {s.kind for s in ZOO.values()}:
        raise ValueError(f"unknown zoo kind {kind!r}; expected one of {sorted({s.kind for s in ZOO.values()})}")
    return [n for n, s in ZOO.items() if kind is None or s.kind == kind]
