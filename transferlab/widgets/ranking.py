"""``RankingView`` (lesson 04): do transferability scores rank models as fine-tuning does?

Given one score per (task, model, method) and each model's accuracy after fine-tuning, the view computes the
weighted Kendall tau between scores and accuracies for every task and method (1: the score ranks the models
exactly as fine-tuning does) and plots the scores against the accuracies for the task and method selected.
"""

from __future__ import annotations

import html

import ipywidgets as W
import pandas as pd
from matplotlib.figure import Figure

from ._panel import Panel, check_frame, figure_png, new_figure

__all__ = ["RankingView"]


class RankingView(Panel):
    """Lesson 04: each method's transferability scores against fine-tuned accuracy, per task, with weighted tau.

    ``scores`` has one row per (task, model, method): columns ``task, model, method, score, finetune_acc``.
    Weighted Kendall tau is ``scipy.stats.weightedtau(score, finetune_acc)`` per task and method (its default
    hyperbolic weighting, which stresses agreement at the top of the ranking).

    In a notebook::

        RankingView(scores)

    Examples
    --------
    >>> df = pd.DataFrame(dict(task="t", model=list("abc"), method="logme", score=[1.0, 2, 3],
    ...                        finetune_acc=[0.5, 0.6, 0.7]))
    >>> float(RankingView(df).taus().loc["t", "logme"])
    1.0
    """

    title = "Transferability scores vs fine-tuned accuracy"
    COLUMNS = ("task", "model", "method", "score", "finetune_acc")

    def __init__(self, scores: pd.DataFrame):
        self.scores = check_frame(scores, self.COLUMNS, "RankingView")
        tasks = list(dict.fromkeys(self.scores["task"]))
        methods = list(dict.fromkeys(self.scores["method"]))
        self.task = W.Dropdown(options=tasks, value=tasks[0], description="task")
        self.method = W.ToggleButtons(options=methods, value=methods[0])
        self.text = W.HTML()
        self.image = W.Image(format="png")
        self.task.observe(lambda _c: self.update(), names="value")
        self.method.observe(lambda _c: self.update(), names="value")
        self.widget = W.VBox([W.HBox([self.task, self.method]), self.text, self.image])
        self.update()

    def taus(self) -> pd.DataFrame:
        """Weighted Kendall tau, tasks x methods."""
        from scipy.stats import weightedtau

        out = {}
        for (task, method), g in self.scores.groupby(["task", "method"], sort=False):
            out.setdefault(method, {})[task] = (float(weightedtau(g["score"], g["finetune_acc"]).statistic)
                                                if len(g) > 1 else float("nan"))
        return pd.DataFrame(out)

    def table(self) -> pd.DataFrame:
        t = self.taus()
        return t.reset_index(names="task")

    def figure(self) -> Figure:
        fig, (ax,) = new_figure(1, 5.4, 3.6)
        s = self.scores
        g = s[(s["task"] == self.task.value) & (s["method"] == self.method.value)]
        ax.scatter(g["score"], g["finetune_acc"], color="C0")
        for _, r in g.iterrows():
            ax.annotate(str(r["model"]), (r["score"], r["finetune_acc"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set(xlabel=f"{self.method.value} score", ylabel="fine-tuned accuracy",
               title=f"{self.task.value}: {self.method.value}")
        return fig

    def update(self) -> None:
        """Redraw for the current task and method (the controls call this)."""
        png = figure_png(self.figure())
        tau = self.taus().loc[self.task.value]
        parts = ", ".join(f"{html.escape(str(m))} {v:+.3f}" for m, v in tau.items())
        self.text.value = (f"<p>Weighted Kendall tau on <b>{html.escape(str(self.task.value))}</b> (1 = the score "
                           f"ranks the models exactly as fine-tuning does): {parts}.</p>")
        self.image.value = png
