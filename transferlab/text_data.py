"""The online path for text: GLUE tasks and your own files as a :class:`~transferlab.text_tasks.TextTask`, and
Hugging Face models by name or from a local folder.

- ``load_text_task("sst2" | "rte" | "mrpc", ...)``: GLUE through the ``datasets`` library (SST-2: sentiment of
  one sentence; RTE: does sentence 1 entail sentence 2; MRPC: are two sentences paraphrases). GLUE hides its test
  labels, so the kit's test split is GLUE's validation split, and its validation split is drawn from GLUE's
  training data (never overlapping the training examples).
- ``load_text_task("/path/data.csv")`` (or ``.jsonl``, or ``"csv:/path"``): a ``text`` (or ``sentence``) column,
  or ``sentence1``/``sentence2`` for pairs, and a ``label`` column (integers or names). A ``split`` column with
  ``train``/``val``/``test`` is used when present; otherwise the rows are split 60/20/20, seeded.
- ``load_text_model("bert-base-uncased")``, ``"distilbert-base-uncased"``, ``"gpt2"``, or a local folder saved by
  ``save_pretrained``: the base model with its tokenizer as ``model.tokenizer``. ``"hf"`` means
  :data:`DEFAULT_HF_MODEL`.

Offline, a hub name fails within seconds with a message that says what to do (the kit's world and zoo need no
network); a local folder or file never touches the network.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from ._validate import as_int, as_seed
from .text_tasks import TextTask

__all__ = ["GLUE_TASKS", "DEFAULT_HF_MODEL", "load_text_task", "load_text_model", "is_text_file"]

GLUE_TASKS = {  # name: (columns, label names)
    "sst2": (("sentence",), ("negative", "positive")),
    "rte": (("sentence1", "sentence2"), ("entailment", "not_entailment")),
    "mrpc": (("sentence1", "sentence2"), ("not_equivalent", "equivalent")),
}
DEFAULT_HF_MODEL = "distilbert-base-uncased"
_TIMEOUT = 5.0


def is_text_file(data: str) -> bool:
    """Whether ``DATA`` names a local CSV/JSONL file (``csv:``/``jsonl:`` prefix, or the file's suffix).

    Examples
    --------
    >>> is_text_file("csv:/tmp/x"), is_text_file("reviews.jsonl"), is_text_file("sst2")
    (True, True, False)
    """
    return isinstance(data, str) and (data.startswith(("csv:", "jsonl:")) or data.endswith((".csv", ".jsonl")))


def _offline_error(what: str) -> OSError:
    return OSError(f"cannot reach the Hugging Face hub for {what} (offline, or HF_HUB_OFFLINE is set). Lesson 06 "
                   f"runs offline with DATA='world' and MODELS='zoo'; for your own data use a local file "
                   f"(DATA='/path/data.csv' with text/label columns) and a model folder saved with save_pretrained "
                   f"(MODELS='/path/to/model').")


def _require_hub(what: str) -> None:
    from ._download import reachable
    from ._hub import hub_endpoint, hub_offline

    if hub_offline() or reachable(hub_endpoint(), _TIMEOUT) is not None:
        raise _offline_error(what)


def load_text_task(data: str, *, n_per_class: int | None = 20, seed: int = 0, n_val: int = 200,
                   n_test: int | None = 500) -> TextTask:
    """A sentence or sentence-pair task from GLUE (``"sst2"``, ``"rte"``, ``"mrpc"``) or a local CSV/JSONL file.

    ``n_per_class`` training examples per label (None: all), ``n_val`` validation and ``n_test`` test examples
    (None: all), drawn with ``seed``.
    """
    if not isinstance(data, str) or not data:
        raise ValueError(f"DATA must be 'world', a GLUE task {sorted(GLUE_TASKS)} or a CSV/JSONL path, got {data!r}")
    seed = as_seed(seed)
    if is_text_file(data):
        rows, name = _read_file(data.split(":", 1)[1] if data.startswith(("csv:", "jsonl:")) else data), Path(data).name
    elif data.lower().removeprefix("glue:") in GLUE_TASKS:
        rows, name = _read_glue(data.lower().removeprefix("glue:")), data
    else:
        from ._validate import did_you_mean

        raise ValueError(f"unknown text data {data!r}: expected a GLUE task {sorted(GLUE_TASKS)} or a path ending in "
                         f".csv/.jsonl.{did_you_mean(data, GLUE_TASKS)}")
    return _task_from_rows(rows, name, n_per_class, seed, n_val, n_test)


def _read_file(path: str) -> list[dict]:
    import pandas as pd

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"no such data file: {p}")
    frame = pd.read_json(p, lines=True) if p.suffix == ".jsonl" else pd.read_csv(p)
    if "label" not in frame.columns:
        raise ValueError(f"{p}: no 'label' column (columns: {list(frame.columns)})")
    if "sentence1" in frame.columns and "sentence2" in frame.columns:
        cols = ["sentence1", "sentence2"]
    else:
        text = [c for c in ("text", "sentence") if c in frame.columns]
        if not text:
            raise ValueError(f"{p}: expected a 'text' or 'sentence' column, or 'sentence1' and 'sentence2' "
                             f"(columns: {list(frame.columns)})")
        cols = text[:1]
    labels = frame["label"].tolist()
    names = sorted({str(v) for v in labels}) if not all(isinstance(v, int) for v in labels) else None
    rows = []
    for i, rec in enumerate(frame.to_dict("records")):
        label = names.index(str(rec["label"])) if names else int(rec["label"])
        texts = tuple(str(rec[c]) for c in cols)
        rows.append(dict(text=texts[0] if len(texts) == 1 else texts, label=label,
                         split=str(rec.get("split", "")) or None, i=i))
    for r in rows:
        if r["split"] not in (None, "train", "val", "test", "nan"):
            raise ValueError(f"{p}: split must be train/val/test, got {r['split']!r}")
        if r["split"] == "nan":
            r["split"] = None
    n_classes = max(r["label"] for r in rows) + 1
    for r in rows:
        r["classes"] = tuple(names) if names else tuple(str(c) for c in range(n_classes))
    return rows


def _read_glue(task: str) -> list[dict]:
    try:
        import datasets
    except ImportError as err:
        raise ImportError("GLUE tasks need the datasets library: pip install 'transferlab[nlp-hub]' "
                          "(or: pip install datasets)") from err
    _require_hub(f"the GLUE task {task!r}")
    cols, classes = GLUE_TASKS[task]
    ds = datasets.load_dataset("nyu-mll/glue", task)
    rows = []
    for split, ours in (("train", None), ("validation", "test")):
        for i, rec in enumerate(ds[split]):
            texts = tuple(rec[c] for c in cols)
            rows.append(dict(text=texts[0] if len(texts) == 1 else texts, label=int(rec["label"]), split=ours,
                             i=i, classes=classes))
    return rows


def _task_from_rows(rows, name, n_per_class, seed, n_val, n_test) -> TextTask:
    rng = random.Random(seed)
    fixed = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    free = [r for r in rows if r["split"] is None]
    rng.shuffle(free)
    if not fixed["test"]:
        k = max(1, len(free) // 5)
        fixed["test"], free = free[:k], free[k:]
    if not fixed["val"]:
        k = max(1, min(n_val, len(free) // 4))
        fixed["val"], free = free[:k], free[k:]
    pool = fixed["train"] + free
    rng.shuffle(pool)
    train = pool
    if n_per_class is not None:
        n_per_class = as_int("n_per_class", n_per_class, min=1)
        by_label: dict[int, list] = {}
        for r in pool:
            by_label.setdefault(r["label"], []).append(r)
        train = [r for lab in sorted(by_label) for r in by_label[lab][:n_per_class]]
    if n_test is not None:
        fixed["test"] = fixed["test"][: as_int("n_test", n_test, min=1)]
    fixed["val"] = fixed["val"][: as_int("n_val", n_val, min=1)]
    splits = dict(train=train, val=fixed["val"], test=fixed["test"])
    for s, rs in splits.items():
        if not rs:
            raise ValueError(f"{name}: the {s} split is empty (too few rows?)")
    kind = "pair" if isinstance(rows[0]["text"], tuple) else "sentence"
    classes = rows[0]["classes"]
    return TextTask(name, kind, {s: [r["text"] for r in rs] for s, rs in splits.items()},
                    {s: [r["label"] for r in rs] for s, rs in splits.items()}, tuple(classes),
                    dict(source=name, n_per_class=n_per_class, seed=seed))


def load_text_model(name: str):
    """A Hugging Face base model (``AutoModel``) with ``model.tokenizer``, from a hub name or a local folder.

    A local folder never touches the network; a hub name is loaded from the local cache when it is there, else
    the hub must answer within a few seconds (``OSError`` with what to do otherwise).
    """
    from .text_models import require_nlp

    transformers = require_nlp()
    if not isinstance(name, str) or not name:
        raise ValueError(f"MODELS must be 'zoo', 'hf' or a Hugging Face model name / local folder, got {name!r}")
    name = DEFAULT_HF_MODEL if name == "hf" else name
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise FileNotFoundError(f"{local} is not a saved Hugging Face model (no config.json)")
        kwargs = dict(local_files_only=True)
        source = str(local)
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
        if not cached:
            _require_hub(f"the model {name!r}")
        kwargs = dict(local_files_only=cached and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"))
        source = name
    tok = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    if tok.pad_token is None:  # GPT-2 has none: pad with its end-of-text token
        tok.pad_token = tok.eos_token
    model = transformers.AutoModel.from_pretrained(source, **kwargs)
    model.tokenizer = tok
    model.pretrained_cfg = dict(architecture=model.config.model_type, source=source, pretrained=True,
                                hub_name=None if local.exists() else name)
    return model


def save_rows(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Write rows as JSONL atomically (a helper for tests and for preparing your own data)."""
    from ._paths import atomic_write

    return atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
