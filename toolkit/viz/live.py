"""Figures drawn once and then updated in place, for views that redraw on every click (the explorers).

Building a matplotlib figure (its Axes, ticks and layout) costs more than drawing it, so a view that shows the
same kind of picture again and again keeps one figure and swaps its artists. Each class owns ``fig`` (a
:class:`~toolkit.viz.figure.VizFigure`, laid out by constrained layout on its first draw) and an ``update(...)``
that redraws the data and returns ``fig``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import cm, colors
from matplotlib.figure import Figure

from toolkit.tasks.render import value_range
from toolkit.viz.attention import _as_numpy
from toolkit.viz.figure import new_figure


def clear_axes(ax: Any) -> None:
    """Remove every data artist (lines, collections, patches, texts, images) from ``ax``; keep the Axes itself,
    its ticks and its position (much cheaper than ``ax.clear()``, which rebuilds the axes)."""
    for group in (ax.collections, ax.lines, ax.patches, ax.texts, ax.images, ax.artists, ax.tables):
        for artist in list(group):
            artist.remove()


def fix_title_position(*axes: Any) -> None:
    """Keep the titles of ``axes`` at the top of each Axes: matplotlib otherwise searches every draw for tick
    labels above the Axes to dodge (~5 ms per Axes on a loaded machine, measured; none of ours has any)."""
    for ax in axes:
        ax.set_title(ax.get_title(), y=1.0)


def freeze_layout(fig: Figure) -> None:
    """After a first draw: keep every Axes where the layout engine put it and every axis label where matplotlib
    placed it (switching off the engine and the per-draw search of tick-label extents for label positions).

    Labels of colour bars stay automatic (their tick labels change width with the range)."""
    fig.set_layout_engine(None)  # not "none": a placeholder engine still costs a dry-run draw
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            text = axis.label.get_text()
            if not getattr(axis, "_autolabelpos", False) or (hasattr(ax, "_colorbar") and text):
                continue  # placed by hand already, or a colour bar's label
            if text:  # where the first draw put it, in Axes coordinates
                x, y = ax.transAxes.inverted().transform(axis.label.get_transform().transform(
                    axis.label.get_position()))
                axis.set_label_coords(x, y)
            else:
                axis.set_label_coords(0.5, 0.5)  # nothing to place


def render_kwargs(task: Any) -> bool:
    """Whether ``task.render`` takes the shared-scale keywords (``vmin``, ``vmax``, ``colorbar``, ``cmap``)."""
    try:
        params = inspect.signature(task.render).parameters.values()
    except (TypeError, ValueError):
        return False
    names = {p.name for p in params}
    return {"vmin", "vmax", "colorbar", "cmap"} <= names or any(p.kind is p.VAR_KEYWORD for p in params)


def draw_task(task: Any, example: Any, overlay: Any, ax: Any, *, vmin: float, vmax: float, cmap: str = "viridis",
              shared: bool | None = None) -> None:
    """Clear ``ax`` and draw ``example`` into it with ``overlay`` on the colour scale ``vmin .. vmax`` and no colour
    bar of its own (``shared``: whether ``task.render`` takes those keywords; default: look it up). A task whose
    ``render`` lacks them draws on its own scale; the colour bar it adds is removed."""
    clear_axes(ax)
    if shared if shared is not None else render_kwargs(task):
        task.render(example, overlay=overlay, ax=ax, vmin=vmin, vmax=vmax, colorbar=False, cmap=cmap)
        return
    n_axes = len(ax.figure.axes)  # a task without the shared-scale keywords: drop the colour bar it adds
    task.render(example, overlay=overlay, ax=ax)
    for extra in ax.figure.axes[n_axes:]:
        extra.remove()


class TaskPanels:
    """``n`` task pictures side by side, redrawn in place: on one colour scale with one colour bar, or (``shared=
    False``) each on its own scale with its own colour bar (for panels showing different quantities).

    Args:
        task: draws the examples (``task.render(example, overlay=, ax=, vmin=, vmax=, colorbar=False, cmap=)``).
        n: panels.
        width, height: figure size in inches (default ``3.9 * n + 0.7`` by ``3.4``).
        cmap, label: the colour map and the colour bar's label (``label`` may be a list, one per panel, when not
            ``shared``).
    """

    def __init__(self, task: Any, n: int = 1, *, width: float | None = None, height: float = 3.4,
                 cmap: str = "viridis", label: str | Sequence[str] = "value", shared: bool = True):
        if not hasattr(task, "render"):
            raise TypeError(f"{type(task).__name__} cannot be drawn: it has no render(example, overlay, ax) method")
        self.task, self.n, self.cmap, self.shared = task, int(n), cmap, bool(shared)
        self._shared = render_kwargs(task)
        self.fig = new_figure(width or 3.9 * n + 0.7, height)
        n_bars = 1 if shared else n
        labels = [label] * n_bars if isinstance(label, str) else list(label)
        if len(labels) != n_bars:
            raise ValueError(f"{len(labels)} colour-bar labels for {n_bars} colour bars")
        if shared:
            grid = self.fig.add_gridspec(1, n + 1, width_ratios=[1.0] * n + [0.05])
            self.axes = [self.fig.add_subplot(grid[0, i]) for i in range(n)]
            caxes = [self.fig.add_subplot(grid[0, n])]
        else:
            grid = self.fig.add_gridspec(1, 2 * n, width_ratios=[1.0, 0.05] * n)
            self.axes = [self.fig.add_subplot(grid[0, 2 * i]) for i in range(n)]
            caxes = [self.fig.add_subplot(grid[0, 2 * i + 1]) for i in range(n)]
        fix_title_position(*self.axes)
        self.mappables = [cm.ScalarMappable(norm=colors.Normalize(0.0, 1.0), cmap=cmap) for _ in caxes]
        self.colorbars = [self.fig.colorbar(m, cax=c, label=lab) for m, c, lab in zip(self.mappables, caxes, labels)]

    def update(self, examples: Sequence[Any], overlays: Sequence[Any] | None = None,
               titles: Sequence[str | None] | None = None, *, prefix_titles: bool = False,
               vmin: float | None = None, vmax: float | None = None) -> Figure:
        """Draw ``examples[i]`` with ``overlays[i]`` (``[n_elements]`` or None) in panel ``i``; the colour scale
        spans all overlays (each overlay when not ``shared``); ``vmin`` / ``vmax`` override it. ``titles[i]``
        replaces the task's panel title, or goes above it with ``prefix_titles``."""
        if len(examples) != self.n:
            raise ValueError(f"{len(examples)} examples for {self.n} panels; give one each")
        overlays = list(overlays) if overlays is not None else [None] * self.n
        titles = list(titles) if titles is not None else [None] * self.n
        if len(overlays) != self.n or len(titles) != self.n:
            raise ValueError(f"{self.n} panels but {len(overlays)} overlays and {len(titles)} titles; give one each")
        vals = [None if o is None else _as_numpy(o).reshape(-1) if not isinstance(o, dict) else
                np.array(list(o.values()), dtype=float) for o in overlays]
        given = [v for v in vals if v is not None]
        shared = value_range(np.concatenate(given) if given else [], vmin, vmax)
        ranges = [shared if self.shared else value_range(v if v is not None else [], vmin, vmax) for v in vals]
        for ax, ex, ov, ti, (lo, hi) in zip(self.axes, examples, overlays, titles, ranges):
            draw_task(self.task, ex, ov, ax, vmin=lo, vmax=hi, cmap=self.cmap, shared=self._shared)
            if ti:
                ax.set_title(f"{ti}\n{ax.get_title()}" if prefix_titles else ti, fontsize=9)
        shown = [bool(given)] if self.shared else [v is not None for v in vals]
        for mappable, bar, (lo, hi), show in zip(self.mappables, self.colorbars, ranges, shown):
            if tuple(mappable.get_clim()) != (lo, hi):  # re-ticking a colour bar costs more than a panel
                mappable.set_clim(lo, hi)
            bar.ax.set_visible(show)
        return self.fig


class Panel:
    """One Axes (and optionally a colour bar on a fixed colour map) that a plotting function redraws in place.

    ``Panel(3.6, 3.2, colorbar="Blues").update(viz.confusion_matrix, y_true, y_pred, clim=(0, 1))`` clears the
    Axes and calls ``viz.confusion_matrix(y_true, y_pred, ax=panel.ax)``: any :mod:`toolkit.viz` function that
    takes ``ax=`` works. ``clim`` sets the colour bar's range (the plot must use the same one).
    """

    def __init__(self, width: float, height: float, *, colorbar: str | None = None, label: str | None = None,
                 fraction: float = 0.05):
        self.fig = new_figure(width, height)
        self.ax = self.fig.add_subplot()
        fix_title_position(self.ax)
        self.mappable = self.colorbar = None
        if colorbar is not None:
            self.mappable = cm.ScalarMappable(norm=colors.Normalize(0.0, 1.0), cmap=colorbar)
            self.colorbar = self.fig.colorbar(self.mappable, ax=self.ax, fraction=fraction, pad=fraction / 2,
                                              label=label)

    def update(self, plot: Any, *args: Any, clim: tuple[float, float] | None = None, **kw: Any) -> Figure:
        clear_axes(self.ax)
        plot(*args, ax=self.ax, **kw)
        if self.mappable is not None and clim is not None and tuple(self.mappable.get_clim()) != tuple(clim):
            self.mappable.set_clim(*clim)
        return self.fig
