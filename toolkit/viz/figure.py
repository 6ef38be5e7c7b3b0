"""Figures without pyplot: a ``Figure`` that displays itself, plus PNG / HTML encoders.

Every plotting function in :mod:`toolkit.viz` returns a :class:`VizFigure`. It *is* a
``matplotlib.figure.Figure`` (use ``savefig``, ``axes`` ...), built without pyplot so no global figure
state is created or leaked, and it adds ``_repr_png_`` so it displays in a notebook even when pyplot was
never imported (a bare ``Figure`` then only prints ``<Figure size ...>``).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DEFAULT_DPI = 90


class VizFigure(Figure):
    """A ``matplotlib.figure.Figure`` that renders itself as PNG in notebooks."""

    def _repr_png_(self) -> bytes:
        return to_png(self)


def new_figure(width: float = 5.0, height: float = 3.5, layout: str | None = "constrained") -> VizFigure:
    """A fresh figure with an Agg canvas attached (so it can be drawn and saved headless)."""
    fig = VizFigure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, width: float = 5.0, height: float = 3.5,
             ax: Any = None, **kw: Any) -> tuple[Figure, Any]:
    """``(fig, axes)``; with ``ax`` given (only for a single panel) draws into that Axes instead."""
    if ax is not None:
        if nrows * ncols != 1:
            raise ValueError("ax= can only be given for a single-panel plot; leave ax=None")
        return ax.figure, ax
    fig = new_figure(width, height)
    return fig, fig.subplots(nrows, ncols, squeeze=True, **kw)


def to_png(fig: Figure, dpi: float | None = None) -> bytes:
    """PNG bytes of ``fig`` (default :data:`DEFAULT_DPI`)."""
    if fig.canvas is None or not hasattr(fig.canvas, "print_png"):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or DEFAULT_DPI)
    return buf.getvalue()


def to_html(fig: Figure, dpi: float | None = None, alt: str = "figure") -> str:
    """An ``<img>`` tag with the PNG inlined (base64): static, self-contained HTML."""
    data = base64.b64encode(to_png(fig, dpi)).decode("ascii")
    return f'<img alt="{alt}" src="data:image/png;base64,{data}"/>'
