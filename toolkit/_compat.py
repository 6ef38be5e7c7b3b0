"""Every use of another library's private internals, in one place (issue #18).

Each function names the internal it touches. ``tests/test_foundation_compat.py`` checks that every one of them
still exists and behaves as assumed, and fails naming the library and its version when an upgrade changes them;
:data:`INTERNALS` lists them for that test.

* torch: the global forward-hook dicts and a module's own hook dicts (the fast activation pass must know
  whether anything is hooked, which torch has no public API for);
* matplotlib: ``fontManager._find_fonts_by_props``, ``RendererAgg._prepare_font`` / ``_renderer.draw_text_image``
  and ``FigureCanvasAgg._lastKey``, which the explorers' text-caching renderer (``toolkit.viz.figure``) uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

# (library, dotted path of the internal) - what tests/test_foundation_compat.py checks
INTERNALS = (
    ("torch", "torch.nn.modules.module._global_forward_hooks"),
    ("torch", "torch.nn.modules.module._global_forward_pre_hooks"),
    ("torch", "torch.nn.Module()._forward_hooks"),
    ("torch", "torch.nn.Module()._forward_pre_hooks"),
    ("matplotlib", "matplotlib.font_manager.fontManager._find_fonts_by_props"),
    ("matplotlib", "matplotlib.backends.backend_agg.RendererAgg._prepare_font"),
    ("matplotlib", "matplotlib.backends.backend_agg.RendererAgg(...)._renderer.draw_text_image"),
    ("matplotlib", "matplotlib.backends.backend_agg.FigureCanvasAgg._lastKey"),
    ("matplotlib", "matplotlib.text: Text asks renderer._get_font_height_metrics(prop) when it exists"),
)


def global_hooks_set() -> bool:
    """Whether any forward (pre-)hook is registered on every module (``register_module_forward_hook``)."""
    glob = torch.nn.modules.module
    return bool(glob._global_forward_hooks or glob._global_forward_pre_hooks)


def module_hooks(module: torch.nn.Module) -> Iterator[Callable[..., Any]]:
    """The forward hooks and forward pre-hooks registered on ``module`` itself."""
    yield from module._forward_hooks.values()
    yield from module._forward_pre_hooks.values()


def font_file(prop: Any) -> Any:
    """The FT2Font matplotlib uses for a ``FontProperties`` (what ``Text`` layout reads its metrics from)."""
    from matplotlib.font_manager import fontManager, get_font

    return get_font(fontManager._find_fonts_by_props(prop))


def agg_text_bitmap(renderer: Any, prop: Any, s: str, antialiased: bool, flags: Any) -> tuple[Any, float, float,
                                                                                            float]:
    """Rasterise ``s`` as ``RendererAgg.draw_text`` does: ``(image, descent, x offset, y offset)`` in pixels."""
    import numpy as np

    font = renderer._prepare_font(prop)
    font.set_text(s, 0, flags=flags)
    font.draw_glyphs_to_bitmap(antialiased=antialiased)
    xo, yo = font.get_bitmap_offset()
    return np.array(font.get_image()), font.get_descent() / 64, xo / 64, yo / 64


def agg_draw_image(renderer: Any, image: Any, x: int, y: int, angle: float, gc: Any) -> None:
    """Composite a rasterised text ``image`` at whole pixel ``(x, y)`` (Agg's own text compositing)."""
    renderer._renderer.draw_text_image(image, x, y, angle, gc)


def canvas_renderer_key(canvas: Any) -> Any:
    """The (width, height, dpi) the canvas's cached renderer was made for (None before the first draw)."""
    return canvas._lastKey


def set_canvas_renderer(canvas: Any, renderer: Any, key: Any) -> None:
    canvas.renderer = renderer
    canvas._lastKey = key
