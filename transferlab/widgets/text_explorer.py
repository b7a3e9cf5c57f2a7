"""``FinetuneExplorer`` (lesson 06): re-initialise the top k layers, freeze the bottom k, or train a LoRA adapter.

Three sliders choose a fine-tuning variation of a pretrained text encoder; "Run" fine-tunes it for the explorer's
seeds (through the lesson's ``recompute`` function) and adds the runs to the table and the figure, next to the
ones the lesson already measured. Nothing is recomputed until asked: each run takes seconds.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import ipywidgets as W
import pandas as pd
from matplotlib.figure import Figure

from ._panel import Panel, check_frame, figure_png, new_figure

__all__ = ["FinetuneExplorer"]


def setting_label(reinit: int, freeze: int, lora_rank: int) -> str:
    """A short name for a variation, e.g. ``"reinit 1"``, ``"freeze 2 + LoRA r4"``, ``"full fine-tune"``."""
    parts = [f"reinit {reinit}"] if reinit else []
    parts += [f"freeze {freeze}"] if freeze else []
    parts += [f"LoRA r{lora_rank}"] if lora_rank else []
    return " + ".join(parts) or "full fine-tune"


class FinetuneExplorer(Panel):
    """Pick re-init k, freeze k and a LoRA rank; "Run" measures that variation over ``seeds``.

    ``results`` has one row per run with the columns ``reinit, freeze, lora_rank, seed, acc`` (and optionally
    ``trainable``). ``recompute(reinit, freeze, lora_rank, seed) -> dict`` returns one run's row (at least
    ``acc``; ``trainable`` if known).

    Examples
    --------
    >>> df = pd.DataFrame(dict(reinit=[0, 1], freeze=[0, 0], lora_rank=[0, 0], seed=[0, 0], acc=[0.9, 0.7]))
    >>> ex = FinetuneExplorer(df, layers=2, recompute=lambda r, f, k, s: dict(acc=0.5, trainable=10))
    >>> ex.freeze.value = 1; ex.run_selected()["acc"].tolist()
    [0.5]
    >>> ex.table()["setting"].tolist()
    ['full fine-tune', 'reinit 1', 'freeze 1']
    """

    title = "Fine-tuning variations: re-init top k, freeze bottom k, LoRA"
    COLUMNS = ("reinit", "freeze", "lora_rank", "seed", "acc")

    def __init__(self, results: pd.DataFrame, *, layers: int, recompute: Callable | None = None,
                 seeds: Iterable[int] | None = None, ranks=(0, 2, 4, 8, 16)):
        self.results = check_frame(results, self.COLUMNS, "FinetuneExplorer")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers must be an integer >= 1 (the encoder's Transformer blocks), got {layers!r}")
        self.recompute = recompute
        self.seeds = sorted(set(self.results["seed"])) if seeds is None else list(seeds)
        self.reinit = W.IntSlider(0, 0, layers, description="re-init top k")
        self.freeze = W.IntSlider(0, 0, layers + 1, description="freeze bottom k")
        self.rank = W.SelectionSlider(options=list(ranks), value=list(ranks)[0], description="LoRA rank")
        self.button = W.Button(description="Run", icon="play", disabled=recompute is None,
                               tooltip="fine-tune this variation for the explorer's seeds")
        self.button.on_click(lambda _b: self.run_selected())
        self.text = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.widget = W.VBox([W.HBox([self.reinit, self.freeze, self.rank, self.button]), self.text, self.image])
        for s in (self.reinit, self.freeze, self.rank):
            s.observe(lambda _c: self.update(), names="value")
        self.update()

    def _selected(self) -> tuple[int, int, int]:
        return int(self.reinit.value), int(self.freeze.value), int(self.rank.value)

    def run_selected(self) -> pd.DataFrame:
        """Fine-tune the selected variation for every seed it lacks; returns the new rows."""
        if self.recompute is None:
            raise RuntimeError("this explorer has no recompute function: it can only show the lesson's runs")
        r, f, k = self._selected()
        have = self.results[(self.results.reinit == r) & (self.results.freeze == f) & (self.results.lora_rank == k)]
        rows = [dict(reinit=r, freeze=f, lora_rank=k, seed=s, **self.recompute(r, f, k, s))
                for s in self.seeds if s not in set(have["seed"])]
        new = pd.DataFrame(rows, columns=list(self.COLUMNS) if not rows else None)
        if rows:
            self.results = pd.concat([self.results, new], ignore_index=True)
        self.update()
        self.refresh_static()
        return new

    def table(self) -> pd.DataFrame:
        df = self.results.copy()
        df["setting"] = [setting_label(r, f, k) for r, f, k in zip(df.reinit, df.freeze, df.lora_rank, strict=True)]
        agg = dict(acc_mean=("acc", "mean"), acc_std=("acc", "std"), seeds=("seed", "nunique"))
        if "trainable" in df.columns:
            agg["trainable"] = ("trainable", "max")
        return df.groupby("setting", sort=False).agg(**agg).reset_index()

    def figure(self) -> Figure:
        t = self.table()
        fig, (ax,) = new_figure(1, 7.0, 0.35 * len(t) + 1.2)
        mine = setting_label(*self._selected())
        colours = ["C1" if s == mine else "C0" for s in t.setting]
        ax.barh(t.setting, t.acc_mean, xerr=t.acc_std.fillna(0), color=colours)
        ax.invert_yaxis()
        ax.set(xlabel="test accuracy (mean ± std over seeds)", xlim=(0, 1))
        return fig

    def update(self) -> None:
        mine = setting_label(*self._selected())
        t = self.table().set_index("setting")
        if mine in t.index:
            row = t.loc[mine]
            std = 0.0 if pd.isna(row.acc_std) else row.acc_std
            self.text.value = (f"<p><b>{html.escape(mine)}</b>: {row.acc_mean:.1%} ± {std:.1%} over "
                               f"{int(row.seeds)} seed(s)</p>")
        else:
            self.text.value = f"<p><b>{html.escape(mine)}</b>: not measured yet — press Run</p>"
        self.image.value = figure_png(self.figure())
