"""What every explorer shares: controls -> one redraw -> image views, a readable repr, timing, a static fallback.

An explorer is *not* a widget itself; it owns one (``explorer.widget``, a ``VBox``) and displays as it. Views
are ``ipywidgets.Image`` (PNG bytes of a :mod:`toolkit.viz` figure) or ``ipywidgets.HTML``, so everything
shown is plain widget state: it survives "save widget state" and nbconvert, and headless tests can read it
(``explorer.figures[name]`` is the matplotlib Figure of each view, showing what the view shows).

Speed (median value change -> redraw, ``benchmarks/bench_widgets.py``): building a matplotlib figure (Axes,
ticks, layout) costs more than drawing it, so every image view keeps *one* figure per shape of picture
(:meth:`Explorer._figure`) and each change updates its artists in place; its layout is computed once (constrained
layout on the first draw) and then frozen. PNGs are encoded at zlib level 1. Revisited states are served from a
PNG cache; the figure in ``explorer.figures`` is brought up to date only when it is read.
"""

from __future__ import annotations

import html
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from toolkit.viz.figure import FastTextCanvas, to_png
from toolkit.viz.live import freeze_layout
from toolkit.widgets._model import one_thread

CSS_PREFIX = "searchlight"


class _Figures(MutableMapping):
    """``view name -> Figure``; an update deferred by a cache hit (:meth:`defer`) runs when the figure is read."""

    def __init__(self) -> None:
        self._figs: dict[str, Figure] = {}
        self._pending: dict[str, Callable[[], Figure]] = {}

    def defer(self, name: str, update: Callable[[], Figure]) -> None:
        self._pending[name] = update

    def __getitem__(self, name: str) -> Figure:
        update = self._pending.pop(name, None)
        if update is not None:
            self._figs[name] = update()
        return self._figs[name]

    def __setitem__(self, name: str, fig: Figure) -> None:
        self._pending.pop(name, None)
        self._figs[name] = fig

    def __delitem__(self, name: str) -> None:
        self._pending.pop(name, None)
        del self._figs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._figs | self._pending)

    def __len__(self) -> int:
        return len(self._figs | self._pending)


class Explorer:
    """Base class. Subclasses fill ``self.controls`` / ``self.views`` in ``__init__`` and implement ``_draw``."""

    dpi = 96  # CSS pixels per inch: shown at natural size, a figure's 9 pt text reads as 9 pt in the notebook
    max_width = 10.4  # inches: 998 px, inside the ~1000 px output area of a default notebook
    cache_size = 64

    def __init__(self) -> None:
        self.controls: dict[str, W.Widget] = {}
        self.views: dict[str, W.Widget] = {}
        self.figures: MutableMapping[str, Figure] = _Figures()
        self.timings_ms: list[float] = []
        self.errors: list[str] = []
        self._canvases: dict[tuple[str, Any], Any] = {}
        self._cache: OrderedDict[tuple[str, Any], tuple[bytes, str]] = OrderedDict()
        self.cache_hits = 0
        self.draw_counts: Counter[str] = Counter()  # view name -> PNGs drawn (cache hits not counted)
        self._busy = False
        self.changed: str | None = None
        self.widget: W.Box = W.VBox()

    # ---------------------------------------------------------------- building
    def _control(self, name: str, widget: W.Widget, redraw: bool = True,
                 before: Callable[[dict[str, Any]], None] | None = None) -> W.Widget:
        """Register a control. ``before(change)`` runs first on every change (e.g. to refill another control's
        options quietly), then the views redraw (unless ``redraw=False``)."""
        widget.add_class(f"{CSS_PREFIX}-control-{name}")
        self.controls[name] = widget
        if before is not None:
            widget.observe(before, names="value")
        if redraw:
            widget.observe(self._on_change, names="value")
        return widget

    def _image(self, name: str, width: str | None = None) -> W.Image:
        img = W.Image(format="png", layout=W.Layout(width=width, align_self="flex-start", flex="0 0 auto"))
        img.add_class(f"{CSS_PREFIX}-view-{name}")
        self.views[name] = img
        return img

    def _html(self, name: str) -> W.HTML:
        box = W.HTML()
        box.add_class(f"{CSS_PREFIX}-view-{name}")
        self.views[name] = box
        return box

    def _finish(self, *rows: W.Widget) -> None:
        """Assemble the root box (CSS classes ``searchlight-explorer`` and ``searchlight-<kind>``), draw once."""
        self.status = W.HTML()
        self.status.add_class(f"{CSS_PREFIX}-status")
        self.widget = W.VBox([*rows, self.status])
        self.widget.add_class(f"{CSS_PREFIX}-explorer")
        self.widget.add_class(f"{CSS_PREFIX}-{self.kind}")
        self.refresh()

    @property
    def kind(self) -> str:
        return type(self).__name__.lower()

    # ---------------------------------------------------------------- updating
    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._busy:
            name = next((k for k, w in self.controls.items() if w is change["owner"]), None)
            self.refresh(changed=name)

    def refresh(self, changed: str | None = None) -> None:
        """Redraw the views from the current control values (called on each control change).

        ``changed`` names the control that changed (None: redraw everything); ``_draw`` may skip views that
        do not depend on it.
        """
        start = time.perf_counter()
        self._busy = True
        self.changed = changed
        try:
            with self.widget.hold_sync(), one_thread():
                self._draw()
            self.status.value = ""
        except Exception as err:  # shown in the widget instead of being lost in the kernel log
            self.errors.append(f"{type(err).__name__}: {err}")
            self.status.value = f"<pre style='color:#b00'>{html.escape(self.errors[-1])}</pre>"
            raise
        finally:
            self._busy = False
            self.timings_ms.append((time.perf_counter() - start) * 1000)

    def _draw(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_quiet(self, name: str, **traits: Any) -> None:
        """Change a control (e.g. its options) without triggering a redraw."""
        busy, self._busy = self._busy, True
        try:
            for k, v in traits.items():
                setattr(self.controls[name], k, v)
        finally:
            self._busy = busy

    def _figure(self, name: str, shape: Any, build: Callable[[], Any]) -> Any:
        """The figure (or live-figure object, e.g. a :class:`toolkit.viz.TaskPanels`) that view ``name`` keeps for
        pictures of this ``shape`` (anything hashable that fixes the axes: number of panels, classes, ...),
        built by ``build()`` the first time. Update its artists and pass it to :meth:`_show`."""
        key = (name, shape)
        live = self._canvases.get(key)
        if live is None:
            live = self._canvases[key] = build()
            fig = getattr(live, "fig", live)
            fig.set_dpi(self.dpi)  # drawn at the dpi it is shown at: no switch of dpi per PNG
            FastTextCanvas(fig)  # redrawn on every click: rasterise each string once
        return live

    def _show(self, name: str, fig: Figure | Callable[[], Figure], key: Any = None) -> None:
        """Put a figure into view ``name`` (PNG). ``fig`` is a Figure or a callable that returns one (typically
        after updating a kept figure in place, see :meth:`_figure`).

        With a ``key`` (everything the picture depends on) and ``fig`` a callable, the PNG is cached: showing
        the same key again (stepping back through layers, revisiting a latent) skips drawing, and the callable
        runs only if ``figures[name]`` is read. At most ``cache_size`` PNGs are kept per explorer (0: no cache).
        """
        if key is not None and self.cache_size > 0:
            hit = self._cache.get((name, key))
            if hit is not None:
                self._cache.move_to_end((name, key))
                png, width = hit
                if callable(fig):
                    self.figures.defer(name, fig)  # type: ignore[attr-defined]
                else:
                    self.figures[name] = fig
                self.views[name].value = png
                self.views[name].layout.width = width
                self.cache_hits += 1
                return
        if callable(fig):
            fig = fig()
        png = to_png(fig, dpi=self.dpi, compress_level=1)
        self.draw_counts[name] += 1
        if fig.get_layout_engine() is not None:  # laid out by that first draw: keep those positions from now on
            freeze_layout(fig)
        self.figures[name] = fig
        view = self.views[name]
        view.value = png
        view.layout.width = f"{round(fig.get_figwidth() * self.dpi)}px"  # natural size: never stretched
        if key is not None and self.cache_size > 0:
            self._cache[(name, key)] = (png, view.layout.width)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    # ---------------------------------------------------------------- display and text
    def state(self) -> dict[str, Any]:
        """The current control values."""
        return {k: w.value for k, w in self.controls.items() if hasattr(w, "value")}

    def _describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.state().items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def snapshot_html(self) -> str:
        """Static HTML of the current views (what nbconvert shows when no widget state was saved)."""
        import base64

        parts = [f"<div class='{CSS_PREFIX}-snapshot'><p><b>{html.escape(repr(self))}</b></p>"]
        for name, view in self.views.items():
            if isinstance(view, W.Image) and view.value:
                data = base64.b64encode(view.value).decode("ascii")
                parts.append(f"<img alt='{name}' src='data:image/png;base64,{data}'/>")
            elif isinstance(view, W.HTML):
                parts.append(view.value)
        parts.append("</div>")
        return "\n".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.snapshot_html()
        return bundle

    def time_update(self, change: Callable[[], None]) -> float:
        """Milliseconds from a value change to the finished redraw (``change`` sets one control)."""
        n = len(self.timings_ms)
        start = time.perf_counter()
        change()
        elapsed = (time.perf_counter() - start) * 1000
        if len(self.timings_ms) == n:
            raise RuntimeError("the change did not trigger a redraw; set a control to a *different* value")
        return elapsed
