"""Figures without pyplot: a ``Figure`` that displays itself, plus PNG / HTML encoders.

Every plotting function in :mod:`toolkit.viz` returns a :class:`VizFigure`. It *is* a
``matplotlib.figure.Figure`` (use ``savefig``, ``axes`` ...), built without pyplot so no global figure
state is created or leaked, and it adds ``_repr_png_`` so it displays in a notebook even when pyplot was
never imported (a bare ``Figure`` then only prints ``<Figure size ...>``).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.figure import Figure

from toolkit._compat import agg_draw_image, agg_text_bitmap, canvas_renderer_key, font_file, set_canvas_renderer
from toolkit._figure import DEFAULT_DPI, NotebookFigure

_TEXT_CACHE_SIZE = 4096


class _TextCacheRenderer(RendererAgg):
    """Agg renderer that rasterises each distinct string once (per font, size, dpi) and then only composites it.

    matplotlib 3.11 lays out and renders every text glyph by glyph on every draw (~0.4 ms for a 30-character
    title on a loaded machine, measured); an explorer redraws the same tick labels, node ids and titles on every
    click. Cached strings are placed on whole pixels as in matplotlib <= 3.10 (no sub-pixel glyph positions).
    Falls back to matplotlib's own text drawing for mathtext, OpenType features, or if its internals change.
    """

    _cache: dict[tuple[Any, ...], tuple[np.ndarray, float, float, float]] = {}
    _heights: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
    _broken = False

    def _get_font_height_metrics(self, prop: Any) -> tuple[Any, Any, Any]:
        """``(ascent, descent, line gap)`` of a font at this dpi, as ``Text`` computes them from the font's tables
        on every layout (matplotlib asks the renderer first); cached: ~20% of an explorer figure's draw."""
        key = (hash(prop), prop.get_size_in_points(), self.dpi)
        hit = self._heights.get(key)
        if hit is None:
            font = font_file(prop)
            hit = (None, None, None)
            for table_name, gap, ascent, descent in (("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                                                     ("hhea", "lineGap", "ascent", "descent")):
                table = font.get_sfnt_table(table_name)
                if table is not None:
                    scale = prop.get_size_in_points() * self.dpi / 72 / font.get_sfnt_table("head")["unitsPerEm"]
                    hit = (table[ascent] * scale, -table[descent] * scale, table[gap] * scale)
                    break
            self._heights[key] = hit
        return hit

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float, ismath: Any = False,
                  mtext: Any = None) -> None:
        plain = mtext is None or (mtext.get_fontfeatures() is None and mtext.get_language() is None)
        if ismath or not plain or self._broken:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        key = (s, hash(prop), prop.get_size_in_points(), self.dpi, bool(gc.get_antialiased()))
        hit = self._cache.get(key)
        try:
            if hit is None:
                if len(self._cache) >= _TEXT_CACHE_SIZE:
                    self._cache.clear()
                hit = self._cache[key] = agg_text_bitmap(self, prop, s, gc.get_antialiased(), get_hinting_flag())
            image, descent, xo, yo = hit
            xd, yd = descent * math.sin(math.radians(angle)), descent * math.cos(math.radians(angle))
            agg_draw_image(self, image, round(x + xo + xd), round(y + yo + yd) + 1, angle, gc)
        except (AttributeError, TypeError, ValueError):  # matplotlib's internals changed: draw as it does
            type(self)._broken = True
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)


class FastTextCanvas(FigureCanvasAgg):
    """An Agg canvas whose renderer caches rasterised text (see :class:`_TextCacheRenderer`): for figures that
    are redrawn many times, e.g. the explorers' views (about half the draw time of a tick-labelled figure)."""

    def get_renderer(self) -> RendererAgg:
        w, h = self.get_width_height(physical=True)
        key = (w, h, self.figure.dpi)
        if canvas_renderer_key(self) != key:
            set_canvas_renderer(self, _TextCacheRenderer(w, h, self.figure.dpi), key)
        return self.renderer


class VizFigure(NotebookFigure):
    """A :class:`~toolkit._figure.NotebookFigure` whose PNG comes from the fast :func:`to_png`."""

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


def to_png(fig: Figure, dpi: float | None = None, compress_level: int = 6) -> bytes:
    """PNG bytes of ``fig`` (default :data:`DEFAULT_DPI`).

    ``compress_level`` (0-9, zlib): widgets use 1, which encoded the explorers' views ~25% faster for ~10% more
    bytes than the default 6 (measured). A figure whose own dpi already is ``dpi`` is drawn by its canvas
    directly, skipping ``savefig``'s switch of the figure's dpi and back.
    """
    if fig.canvas is None or not hasattr(fig.canvas, "print_png"):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    dpi = dpi or DEFAULT_DPI
    pil_kwargs = {"compress_level": int(compress_level)}
    if fig.dpi == dpi and isinstance(fig.canvas, FigureCanvasAgg):
        fig.canvas.print_png(buf, pil_kwargs=pil_kwargs)
    else:
        fig.savefig(buf, format="png", dpi=dpi, pil_kwargs=pil_kwargs)
    return buf.getvalue()


def to_html(fig: Figure, dpi: float | None = None, alt: str = "figure") -> str:
    """An ``<img>`` tag with the PNG inlined (base64): static, self-contained HTML."""
    data = base64.b64encode(to_png(fig, dpi)).decode("ascii")
    return f'<img alt="{alt}" src="data:image/png;base64,{data}"/>'
