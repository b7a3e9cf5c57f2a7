"""``QuadrantExplorer`` (lesson 01): which layers to freeze, by data size and by task similarity.

Given the results of a grid of fine-tuning runs (``transferlab.experiments.run_grid``), the explorer's sliders
pick a number of examples per class, a similarity between the source and target tasks, and how many stages
are frozen (k); it shows every strategy's accuracy there (mean ± std over seeds) and, for strategies run at
several k, the accuracy over k. With a ``recompute`` function it can train the missing runs from the notebook.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import ipywidgets as W
import pandas as pd
from matplotlib.figure import Figure

from ..experiments import at_similarity
from ._panel import Panel, check_frame, figure_png, new_figure

__all__ = ["QuadrantExplorer"]


class QuadrantExplorer(Panel):
    """Lesson 01: pick data size, similarity and k; see every strategy's accuracy there (mean ± std over seeds).

    ``results`` has one row per run with at least the columns ``n_per_class, similarity, strategy, k, seed,
    acc`` (as ``transferlab.experiments.run_grid`` returns: ``acc`` is validation accuracy, the number choices are
    made on; ``k`` = stages frozen). Strategies run at several
    k (``k_strategies``; by default those with more than one k in ``results``) are shown at the chosen k on
    the left and over all k on the right; the others at their only k. With ``recompute(n_per_class,
    similarity, strategy, k, seed) -> dict row`` (``transferlab.experiments.make_recompute``) the "Run this
    setting" button trains the selected strategy at the selected point for the seeds it lacks (``k=None``
    for a strategy that does not take k) and adds the rows to ``.results``.

    In a notebook::

        QuadrantExplorer(results, recompute=make_recompute(config, cache))

    Examples
    --------
    >>> df = pd.DataFrame(dict(n_per_class=[20, 20], similarity=[1.0, 1.0], strategy=["probe", "scratch"],
    ...                        k=[4, 0], seed=[0, 0], acc=[0.9, 0.4]))
    >>> QuadrantExplorer(df).best()["strategy"]
    'probe'
    """

    title = "Which layers to freeze: data size x similarity"
    COLUMNS = ("n_per_class", "similarity", "strategy", "k", "seed", "acc")

    def __init__(self, results: pd.DataFrame, recompute: Callable | None = None, *, seeds: Iterable[int] | None = None,
                 k_strategies: Iterable[str] | None = None):
        self.results = check_frame(results, self.COLUMNS, "QuadrantExplorer")
        self.recompute = recompute
        self.seeds = sorted(set(self.results["seed"])) if seeds is None else list(seeds)
        strategies = list(dict.fromkeys(self.results["strategy"]))
        if k_strategies is None:
            nk = self.results.groupby("strategy")["k"].nunique()
            k_strategies = [s for s in strategies if nk.get(s, 0) > 1]
        self.k_strategies = list(k_strategies)
        ns = sorted(set(self.results["n_per_class"]))
        sims = sorted(set(self.results["similarity"]))
        ks = sorted({int(k) for k in self.results.loc[self.results["strategy"].isin(self.k_strategies), "k"].dropna()})
        self.n_slider = W.SelectionSlider(options=ns, value=ns[0], description="n per class")
        self.sim_slider = W.SelectionSlider(options=sims, value=sims[-1], description="similarity")
        self.k_slider = W.SelectionSlider(options=ks or [0], value=(ks or [0])[0], description="k frozen",
                                          disabled=not ks)
        self.strategy = W.Dropdown(options=strategies, value=strategies[0], description="strategy")
        self.run_button = W.Button(description="Run this setting", icon="play", disabled=recompute is None,
                                   tooltip="train the selected strategy here for the seeds it lacks")
        self.text = W.HTML()
        self.image = W.Image(format="png")
        for w in (self.n_slider, self.sim_slider, self.k_slider):
            w.observe(lambda _c: self.update(), names="value")
        self.run_button.on_click(lambda _b: self.run_selected())
        sliders = W.VBox([self.n_slider, self.sim_slider, self.k_slider])
        top = W.HBox([sliders, W.VBox([self.strategy, self.run_button])]) if recompute is not None else sliders
        self.widget = W.VBox([top, self.text, self.image])
        self.update()

    def _here(self) -> pd.DataFrame:
        r = self.results
        return r[(r["n_per_class"] == self.n_slider.value) & at_similarity(r["similarity"], self.sim_slider.value)]

    def _label(self, strategy, k) -> str:
        return f"{strategy} (k={int(k)})" if strategy in self.k_strategies and not pd.isna(k) else str(strategy)

    def table(self) -> pd.DataFrame:
        """Mean ± std accuracy per strategy at the selected point (k-strategies at the selected k), best first."""
        here = self._here()
        here = here[~here["strategy"].isin(self.k_strategies) | (here["k"] == self.k_slider.value)]
        out = here.groupby(["strategy", "k"], dropna=False)["acc"].agg(mean="mean", std="std", seeds="count")
        out = out.reset_index()
        out["std"] = out["std"].fillna(0.0)
        return out.sort_values("mean", ascending=False, ignore_index=True)

    def best(self) -> dict:
        """The best strategy at the selected point (highest mean accuracy); ``{}`` when nothing was run there."""
        t = self.table()
        return {} if t.empty else t.iloc[0].to_dict()

    def figure(self) -> Figure:
        t = self.table()
        fig, (ax, ax_k) = new_figure(2, 4.6, 3.0)
        labels = [self._label(s, k) for s, k in zip(t["strategy"], t["k"], strict=True)]
        ax.barh(labels[::-1], t["mean"][::-1], xerr=t["std"][::-1], color="C0", alpha=0.8, capsize=3)
        ax.set(xlabel="validation accuracy", title=f"n={self.n_slider.value}/class, similarity={self.sim_slider.value}",
               xlim=(0, 1))
        here = self._here()
        for i, s in enumerate(self.k_strategies):
            grp = here[here["strategy"] == s]
            if grp.empty:
                continue
            st = grp.groupby("k")["acc"].agg(["mean", "std"]).fillna(0.0)
            ax_k.errorbar(st.index, st["mean"], yerr=st["std"], marker="o", capsize=3, color=f"C{i}", label=s)
        if ax_k.lines:
            ax_k.axvline(self.k_slider.value, color="0.5", ls=":")
            ax_k.legend(fontsize=7)
        ax_k.set(xlabel="k (stages frozen)", ylabel="validation accuracy", title="accuracy vs k here")
        return fig

    def update(self) -> None:
        """Redraw for the current slider values (the sliders call this)."""
        t = self.table()
        png = figure_png(self.figure())  # first, so that the text and the figure change together
        if t.empty:
            self.text.value = (f"<p>No results at n={self.n_slider.value}, similarity={self.sim_slider.value} "
                               f"yet.</p>")
        else:
            b = t.iloc[0]
            self.text.value = (f"<p>At <b>n={self.n_slider.value}</b> per class and <b>similarity="
                               f"{self.sim_slider.value}</b>, the best is <b>"
                               f"{html.escape(self._label(b['strategy'], b['k']))}</b>: {b['mean']:.3f} ± "
                               f"{b['std']:.3f} ({int(b['seeds'])} seeds).</p>")
        self.image.value = png

    def run_selected(self) -> pd.DataFrame:
        """Run ``recompute`` for the selected setting and the seeds it lacks; returns the new rows."""
        if self.recompute is None:
            raise ValueError("no recompute function was given: QuadrantExplorer(results, recompute=...)")
        n, sim, strategy = self.n_slider.value, self.sim_slider.value, self.strategy.value
        uses_k = strategy in self.k_strategies
        r = self.results
        have = r[(r["n_per_class"] == n) & at_similarity(r["similarity"], sim) & (r["strategy"] == strategy)]
        if uses_k:
            have = have[have["k"] == self.k_slider.value]
        todo = [s for s in self.seeds if s not in set(have["seed"])]
        new = []
        self.run_button.disabled = True
        try:
            for seed in todo:
                self.text.value = f"<p>running {html.escape(strategy)} at n={n}, similarity={sim}, seed {seed}…</p>"
                row = dict(self.recompute(n, sim, strategy, self.k_slider.value if uses_k else None, seed))
                missing = [c for c in self.COLUMNS if c not in row]
                if missing:
                    raise ValueError(f"recompute returned a row without {missing}; expected keys {self.COLUMNS}")
                new.append(row)
        finally:
            self.run_button.disabled = False
        if new:
            self.results = pd.concat([self.results, pd.DataFrame(new)], ignore_index=True)
        self.update()
        return pd.DataFrame(new)
