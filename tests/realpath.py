"""A stand-in for the online path, made offline: an ImageFolder on disk and a timm model with local weights.

A lesson run with ``DATA = "folder:<root>"`` and ``MODELS = TIMM_NAME`` goes through the same code as one with
``DATA = "cifar10"`` and ``MODELS = "resnet18.a1_in1k"`` on a machine with a network: ``load_task`` reads and
resizes image files to the model's ``pretrained_cfg``, and ``create_model(name, pretrained=True)`` loads the
weights found at ``$TRANSFERLAB_HOME/weights/<name>.safetensors`` instead of asking the hub.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

TIMM_NAME = "test_resnet.r160_in1k"  # timm's own tiny test model (0.47 M parameters, 160 px input)


def make_image_folder(root: Path, *, classes: int = 10, per_class: int = 16, size: int = 40, seed: int = 0) -> Path:
    """PNG files in ``root/<class>/``, rendered from the world's target task (so the classes are learnable)."""
    from transferlab.world import target_task

    task = target_task(per_class, 0.5, seed=seed, n_test_per_class=1, size=size)
    root.mkdir(parents=True, exist_ok=True)
    counts = [0] * task.num_classes
    for x, y in zip(task.x_train, task.y_train.tolist(), strict=True):
        if y >= classes:
            continue
        folder = root / f"class_{y:02d}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(x.permute(1, 2, 0).numpy()).save(folder / f"img_{counts[y]:03d}.png")
        counts[y] += 1
    return root


def install_timm_weights(home: Path, name: str = TIMM_NAME, seed: int = 0) -> Path:
    """Save a (randomly initialised) timm model where the kit looks for local pretrained weights."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    path = home / "weights" / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def make_offline_home(home: Path, *, classes: int = 10, per_class: int = 16) -> dict:
    """A ``$TRANSFERLAB_HOME`` with the user's zoo linked in (read-only use), timm weights and an ImageFolder.

    Returns the parameters a lesson needs for the real path: ``dict(DATA=..., MODELS=...)``.
    """
    from transferlab import zoo

    home.mkdir(parents=True, exist_ok=True)
    if zoo.zoo_dir().exists() and not (home / "zoo").exists():
        os.symlink(zoo.zoo_dir(), home / "zoo")
    install_timm_weights(home)
    folder = make_image_folder(home / "images", classes=classes, per_class=per_class)
    params = dict(DATA=f"folder:{folder}", MODELS=TIMM_NAME)
    try:
        params["text"] = make_text_files(home)
    except ImportError:  # transformers absent (the nlp extra): lesson 06 cannot run at all
        params["text"] = None
    return params


# --- lesson 06 (text): a local CSV and a tiny Hugging Face model folder stand in for GLUE and bert-base-uncased ---
TEXT_LESSONS = ("06_nlp_transfer",)
_GOOD = ("great", "wonderful", "moving", "clever", "delightful", "superb", "charming", "brilliant")
_BAD = ("dull", "awful", "clumsy", "boring", "tedious", "weak", "messy", "bland")
_NOUNS = ("film", "plot", "cast", "story", "script", "ending", "score", "pacing")


def make_text_csv(path: Path, *, rows: int = 160, seed: int = 0) -> Path:
    """A small sentiment CSV (``text``, ``label``: ``negative``/``positive``), as a user's own data would be."""
    import csv
    import random

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for i in range(rows):
            good = i % 2 == 0
            adj = rng.choice(_GOOD if good else _BAD)
            w.writerow([f"the {rng.choice(_NOUNS)} was {rng.choice(('very', 'quite', 'so'))} {adj} and the "
                        f"{rng.choice(_NOUNS)} felt {rng.choice(_GOOD if good == (rng.random() < 0.8) else _BAD)}",
                        "positive" if good else "negative"])
    return path


def make_tiny_hf_model(folder: Path, texts, seed: int = 0) -> Path:
    """A randomly initialised tiny BERT and a WordPiece tokenizer, saved with ``save_pretrained`` (what a user
    downloads once on a connected machine)."""
    import transformers

    from transferlab.text_models import train_wordpiece

    tok = train_wordpiece(list(texts), 200)
    cfg = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = transformers.BertModel(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_text_files(home: Path) -> dict:
    """The lesson-06 real path offline: ``DATA=<csv>``, ``MODELS=<local model folder>``."""
    import csv

    path = make_text_csv(home / "text" / "reviews.csv")
    with open(path) as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    folder = make_tiny_hf_model(home / "text" / "tiny-bert", texts)
    return dict(DATA=str(path), MODELS=str(folder))


def params_for(notebook: str, params: dict) -> dict:
    """The real-path parameters for ``notebook``: the text ones for lesson 06, the image ones for the others."""
    if notebook in TEXT_LESSONS:
        return params["text"]
    return {k: v for k, v in params.items() if k != "text"}
