"""``RayExplorer`` (lesson 03): how wide an optimum is, along random rays from SGD and SWA solutions.

Given the frame of ``transferlab.landscape.evaluate_rays``, the explorer plots the test error (or the train
loss) along each random ray from each solution and their mean, and measures each solution's width with
``transferlab.landscape.ray_width``: the distance at which the metric first rises a chosen amount above its
value at the solution. The controls choose the solutions, rays, range, metric, rise and trained model.
"""

from __future__ import annotations

import html

import ipywidgets as W
import pandas as pd
from matplotlib.figure import Figure

from ..landscape import ray_width
from ._panel import Panel, check_frame, figure_png, new_figure

__all__ = ["RayExplorer"]


class RayExplorer(Panel):
    """Lesson 03: test error / train loss along random rays from each solution (SGD, SWA), and the width.

    ``rays`` is the frame of ``transferlab.landscape.evaluate_rays`` (one row per point; at least the columns
    ``solution, ray, distance, test_error, train_loss``; rows of a line, ``ray = -1``, are left out: a line
    between two solutions is a different plot). Choose the solutions, the rays (thin lines; the thick line
    is their mean), the largest distance, the metric, and how far above the solution's own value counts as
    "left the optimum"; the width per solution (``landscape.ray_width`` with that ``rise``, averaged over
    the rays that reach it within the range) and the ratio to the first solution update with them. With a
    ``seed`` column (rays from several trained models), a selector shows one model or all of them.

    In a notebook::

        RayExplorer(rays)                 # rays = pd.concat([evaluate_rays(sgd, ...), evaluate_rays(swa, ...)])

    Examples
    --------
    >>> df = pd.DataFrame(dict(solution=["SGD"] * 3, ray=0, distance=[0.0, 1, 2], test_error=[0.1, 0.15, 0.35],
    ...                        train_loss=[0.1, 0.5, 2.0]))
    >>> float(RayExplorer(df, rise=0.1).table()["width"][0])
    1.25
    """

    title = "Optima width along random rays"
    COLUMNS = ("solution", "ray", "distance", "test_error", "train_loss")
    METRICS = ("test_error", "train_loss", "test_loss", "train_error", "train_ce")

    def __init__(self, rays: pd.DataFrame, *, rise: float = 0.1):
        rays = check_frame(rays, self.COLUMNS, "RayExplorer")
        self.rays = rays[rays["ray"] >= 0]
        if self.rays.empty:
            raise ValueError("RayExplorer: no rays (ray >= 0) in the frame; rows with ray = -1 are lines")
        sols = list(dict.fromkeys(self.rays["solution"]))
        ray_ids = sorted(set(self.rays["ray"]))
        hi = float(self.rays["distance"].max())
        self.solutions = W.SelectMultiple(options=sols, value=tuple(sols), description="solutions",
                                          rows=min(4, len(sols)))
        self.ray_select = W.SelectMultiple(options=ray_ids, value=tuple(ray_ids), description="rays",
                                           rows=min(6, len(ray_ids)))
        self.max_distance = W.FloatSlider(value=hi, min=0.0, max=hi, step=hi / 50 if hi > 0 else 0.01,
                                          description="max distance", readout_format=".2f")
        self.metric = W.ToggleButtons(options=[m for m in self.METRICS if m in self.rays.columns], value="test_error")
        self.rise = W.FloatText(value=rise, description="rise", step=0.01,
                                tooltip="width = distance where the metric first exceeds its value at the solution "
                                        "plus this")
        seeds = sorted(set(self.rays["seed"])) if "seed" in self.rays.columns else []
        self.seed = W.Dropdown(options=[("all seeds", "all")] + [(f"seed {s}", s) for s in seeds],
                               value=seeds[0] if seeds else "all", description="model", disabled=not seeds)
        self.text = W.HTML()
        self.image = W.Image(format="png")
        for w in (self.solutions, self.ray_select, self.max_distance, self.metric, self.rise, self.seed):
            w.observe(lambda _c: self.update(), names="value")
        side = W.VBox([self.max_distance, self.metric, self.rise] + ([self.seed] if seeds else []))
        self.widget = W.VBox([W.HBox([self.solutions, self.ray_select, side]), self.text, self.image])
        self.update()

    def _selected(self) -> pd.DataFrame:
        r = self.rays
        keep = (r["solution"].isin(self.solutions.value) & r["ray"].isin(self.ray_select.value)
                & (r["distance"] <= self.max_distance.value + 1e-12))
        r = r[keep]
        if "seed" in r.columns:  # rays of several trained models: ray i of seed a and of seed b are different rays
            if self.seed.value != "all":
                r = r[r["seed"] == self.seed.value]
            r = r.assign(ray=r.groupby(["seed", "ray"]).ngroup())
        return r

    def widths(self) -> pd.DataFrame:
        """``landscape.ray_width`` of the selected rays within the range (one row per solution and ray)."""
        sel = self._selected()
        if sel.empty:
            return pd.DataFrame(columns=["solution", "ray", "base", "threshold", "width", "reached"])
        return ray_width(sel, metric=self.metric.value, rise=self.rise.value)

    def table(self) -> pd.DataFrame:
        """Per selected solution: mean and std of the width over the rays that reach it, and the ratio."""
        w = self.widths()
        rows = []
        for sol in [s for s in self.solutions.options if s in self.solutions.value]:
            g = w[w["solution"] == sol]
            if g.empty:
                continue
            ok = g["width"].dropna()
            rows.append(dict(solution=sol, width=ok.mean() if len(ok) else float("nan"),
                             std=ok.std(ddof=1) if len(ok) > 1 else float("nan"), rays=len(g),
                             unreached=int(g["width"].isna().sum())))
        out = pd.DataFrame(rows, columns=["solution", "width", "std", "rays", "unreached"])
        out["ratio"] = out["width"] / out["width"].iloc[0] if len(out) else []
        return out

    def figure(self) -> Figure:
        fig, (ax,) = new_figure(1, 6.0, 3.4)
        metric = self.metric.value
        sel = self._selected()
        for i, sol in enumerate(self.solutions.options):
            grp = sel[sel["solution"] == sol]
            if grp.empty:
                continue
            for _, r in grp.groupby("ray"):
                r = r.sort_values("distance")
                ax.plot(r["distance"], r[metric], color=f"C{i}", lw=0.6, alpha=0.35)
            mean = grp.groupby("distance")[metric].mean()
            ax.plot(mean.index, mean.values, color=f"C{i}", lw=2.2, label=f"{sol} (mean of {grp['ray'].nunique()})")
        ax.set(xlabel="distance from the solution", ylabel=metric.replace("_", " "), title=self.title)
        if ax.lines:
            ax.legend(fontsize=8)
        return fig

    def update(self) -> None:
        """Redraw for the current control values (the controls call this)."""
        t = self.table()
        png = figure_png(self.figure())
        if t.empty:
            self.text.value = "<p>Nothing selected.</p>"
        else:
            parts = []
            for _, r in t.iterrows():
                miss = f", {r['unreached']} of {r['rays']} rays never rise that far" if r["unreached"] else ""
                parts.append(f"{html.escape(str(r['solution']))} {r['width']:.3f}{miss}")
            ratio = ""
            if len(t) > 1:
                ratio = (f"; ratio {html.escape(str(t['solution'].iloc[-1]))}/"
                         f"{html.escape(str(t['solution'].iloc[0]))} = <b>{t['ratio'].iloc[-1]:.2f}</b>")
            self.text.value = (f"<p>Width (distance at which {self.metric.value} first exceeds its value at the "
                               f"solution + {self.rise.value:g}, mean over rays, within distance "
                               f"{self.max_distance.value:.2f}): {'; '.join(parts)}{ratio}.</p>")
        self.image.value = png
