"""What every widget shares: the ``Panel`` base class and the figure helpers.

``Panel`` gives a widget its two faces: ``.widget``, the live ipywidgets view, and ``static_html()``, a
self-contained HTML snapshot (figure and table) that ``nbconvert`` and viewers without widgets show instead;
``.figure()`` and ``.table()`` give the same content as a matplotlib Figure and a DataFrame. The helpers render
a figure to PNG (``figure_png``) and inline it in HTML (``img_tag``), make the side-by-side figures the widgets
draw (``new_figure``), and check the DataFrames the lesson widgets are given (``check_frame``). A private
module: the widget modules of this package use it; nothing outside ``transferlab.widgets`` should.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable

import ipywidgets as W
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["Panel", "figure_png", "img_tag", "new_figure", "check_frame"]


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (90 dpi), as the widgets' ``Image`` and the static snapshot show it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # the figures use constrained layout: no bbox_inches="tight" pass
    return buf.getvalue()


def img_tag(png: bytes) -> str:
    """An ``<img>`` tag that carries ``png`` inline (a data URL), so the snapshot needs no other file."""
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def check_frame(df, required: Iterable[str], what: str) -> pd.DataFrame:
    """A copy of ``df`` after checking it is a non-empty DataFrame with the ``required`` columns.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame a widget was given.
    required : iterable of str
        Columns it must have (others are kept).
    what : str
        The widget's name, for the error messages.

    Raises
    ------
    TypeError
        ``df`` is not a DataFrame.
    ValueError
        A required column is missing, or ``df`` has no rows.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} expects a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected columns {list(required)}, "
                         f"got {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: the DataFrame is empty; expected at least one row")
    return df.copy()


class Panel:
    """Base: ``.widget`` for the live view, ``static_html()`` for viewers without widgets."""

    widget: W.Widget
    title = ""

    def static_html(self) -> str:
        """A self-contained HTML snapshot (figure and table) of the current view."""
        parts = [f"<h4>{html.escape(self.title)}</h4>"] if self.title else []
        image = getattr(self, "image", None)  # the live figure, already rendered
        png = image.value if image is not None and image.value else None
        if png is None:
            fig = self.figure()
            png = figure_png(fig) if fig is not None else None
        if png is not None:
            parts.append(img_tag(png))
        table = self.table()
        if table is not None:
            parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
        return "\n".join(parts)

    def figure(self) -> Figure | None:
        """The current view as a matplotlib Figure (``None`` when the widget has no figure)."""
        return None

    def table(self) -> pd.DataFrame | None:
        """The current view's numbers as a DataFrame (``None`` when there are none yet)."""
        return None

    def _bundle(self) -> dict:
        data = dict(self.widget._repr_mimebundle_())
        data["text/html"] = self.static_html()
        data["text/plain"] = f"<{type(self).__name__}: {self.title}>"
        return data

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self._bundle()

    def _ipython_display_(self):
        from IPython.display import display

        handles = self.__dict__.setdefault("_handles", [])
        handles.append(display(self._bundle(), raw=True, display_id=True))

    def refresh_static(self) -> None:
        """Re-send the static snapshot to every place this widget is displayed (nbconvert keeps the last)."""
        for handle in self.__dict__.get("_handles", []):
            if handle is not None:
                handle.update(self._bundle(), raw=True)


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.2) -> tuple[Figure, list[Axes]]:
    """A constrained-layout Figure with ``ncols`` axes side by side, each ``width`` x ``height`` inches.

    Returns the figure and its axes as a list (one element when ``ncols == 1``), so callers unpack alike.
    """
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, (list(axes) if ncols > 1 else [axes])
