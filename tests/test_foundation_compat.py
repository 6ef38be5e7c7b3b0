"""Private internals of torch and matplotlib that toolkit/_compat.py relies on still exist and work as assumed.

When one of these fails after an upgrade, the message names the library, its version and the internal: adapt
toolkit/_compat.py (or drop the optimisation that needs it), nothing else in the toolkit touches them.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from toolkit import _compat


def _where(lib: str, internal: str) -> str:
    version = {"torch": torch.__version__, "matplotlib": matplotlib.__version__}[lib]
    return f"{lib} {version} changed {internal}: update toolkit/_compat.py"


def test_every_internal_is_listed_once():
    assert len(set(_compat.INTERNALS)) == len(_compat.INTERNALS)
    assert {lib for lib, _ in _compat.INTERNALS} == {"torch", "matplotlib"}


def test_torch_hook_dicts():
    where = _where("torch", "the forward-hook dicts (_global_forward_hooks, Module._forward_hooks)")
    layer = torch.nn.Linear(2, 2)
    try:
        assert not _compat.global_hooks_set(), where
        handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
        try:
            assert _compat.global_hooks_set(), where
        finally:
            handle.remove()
        assert not _compat.global_hooks_set(), where
        assert list(_compat.module_hooks(layer)) == [], where

        def fn(m, i, o):
            return None

        def pre(m, i):
            return None

        layer.register_forward_hook(fn)
        layer.register_forward_pre_hook(pre)
        assert list(_compat.module_hooks(layer)) == [fn, pre], where
    except AttributeError as err:
        pytest.fail(f"{where} ({err})")


def test_matplotlib_font_lookup():
    where = _where("matplotlib", "fontManager._find_fonts_by_props")
    try:
        font = _compat.font_file(FontProperties(size=9))
    except AttributeError as err:
        pytest.fail(f"{where} ({err})")
    assert font.get_sfnt_table("head")["unitsPerEm"] > 0, where


def test_matplotlib_agg_text_internals():
    where = _where("matplotlib", "RendererAgg._prepare_font / _renderer.draw_text_image / Text's "
                                 "_get_font_height_metrics")
    renderer = RendererAgg(60, 30, 72)
    gc = renderer.new_gc()
    try:
        image, descent, xo, yo = _compat.agg_text_bitmap(renderer, FontProperties(size=12), "Ag", True,
                                                         get_hinting_flag())
        assert image.ndim == 2 and image.max() > 0 and descent >= 0, where
        _compat.agg_draw_image(renderer, image, 5, 20, 0.0, gc)
    except AttributeError as err:
        pytest.fail(f"{where} ({err})")
    assert np.asarray(renderer.buffer_rgba())[..., 3].max() > 0, f"{where}: nothing was drawn"
    import inspect

    import matplotlib.text

    assert "_get_font_height_metrics" in inspect.getsource(matplotlib.text), where  # the hook the cache uses


def test_matplotlib_canvas_renderer_key():
    where = _where("matplotlib", "FigureCanvasAgg._lastKey (the per-size renderer cache)")
    canvas = FigureCanvasAgg(Figure(figsize=(1, 1), dpi=50))
    assert hasattr(canvas, "_lastKey"), where
    canvas.draw()
    key = _compat.canvas_renderer_key(canvas)
    assert key is not None and tuple(key)[:2] == canvas.get_width_height(physical=True), where
    renderer = canvas.get_renderer()
    _compat.set_canvas_renderer(canvas, renderer, key)
    assert canvas.get_renderer() is renderer, where
