"""FinetuneExplorer (lesson 06): shows the lesson's runs, recomputes on demand, and lesson 06's generated cells."""

import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from transferlab.widgets import FinetuneExplorer
from transferlab.widgets.text_explorer import setting_label

ROOT = Path(__file__).resolve().parents[1]


def _runs():
    return pd.DataFrame(dict(reinit=[0, 0, 1, 1], freeze=[0, 0, 0, 0], lora_rank=[0, 0, 0, 0], seed=[0, 1, 0, 1],
                             acc=[0.9, 0.8, 0.6, 0.7], trainable=[100, 100, 100, 100]))


def test_explorer_shows_the_runs_and_computes_only_what_is_missing():
    calls = []

    def recompute(r, f, k, s):
        calls.append((r, f, k, s))
        return dict(acc=0.5 + 0.1 * s, trainable=10)

    ex = FinetuneExplorer(_runs(), layers=2, recompute=recompute)
    t = ex.table().set_index("setting")
    assert t.loc["full fine-tune", "acc_mean"] == pytest.approx(0.85) and t.loc["reinit 1", "seeds"] == 2
    assert "full fine-tune" in ex.text.value and ex.image.value
    ex.reinit.value = 1
    assert ex.run_selected().empty and not calls  # both seeds already measured
    ex.reinit.value, ex.rank.value = 0, 4
    assert "not measured yet" in ex.text.value
    new = ex.run_selected()
    assert calls == [(0, 0, 4, 0), (0, 0, 4, 1)] and new["acc"].tolist() == [0.5, 0.6]
    assert "LoRA r4" in ex.table()["setting"].tolist() and "LoRA r4" in ex.static_html()


def test_explorer_without_recompute_and_bad_input():
    ex = FinetuneExplorer(_runs(), layers=2)
    assert ex.button.disabled
    with pytest.raises(RuntimeError, match="no recompute"):
        ex.run_selected()
    with pytest.raises(ValueError, match="layers must be"):
        FinetuneExplorer(_runs(), layers=0)
    with pytest.raises(ValueError, match="missing column"):
        FinetuneExplorer(_runs().drop(columns="acc"), layers=2)
    assert setting_label(1, 2, 8) == "reinit 1 + freeze 2 + LoRA r8" and setting_label(0, 0, 0) == "full fine-tune"


def test_lesson06_is_what_its_generator_writes():
    sys.path.insert(0, str(ROOT / "data_scripts"))
    import make_lesson06

    committed = nbformat.read(ROOT / "notebooks" / "06_nlp_transfer.ipynb", as_version=4)
    generated = make_lesson06.build()
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in generated.cells]
    first_lines = [c.source.splitlines()[0] for c in committed.cells if c.cell_type == "code"]
    exercises = [line for line in first_lines if line.startswith("# exercise ")]
    assert len(exercises) >= 3  # each exercise's answer and check in one cell, keyed by its first line
