"""Redrawing in place: the figures explorers keep must show exactly what a fresh figure would, stay up to date
after cached revisits, and keep their layout; the text cache must draw what matplotlib draws."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from toolkit import models, tasks, viz, widgets


@pytest.fixture(scope="module")
def tree():
    task = tasks.TreeSearch(n_nodes=6, max_path=3)
    data = task.generate(16, seed=0, split="test")
    model = models.build(task, d_model=32, n_layers=2, d_mlp=64)
    return task, data, model


def _pixels(fig) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(viz.to_png(fig, dpi=60))).convert("RGB"), dtype=float)


def _node_faces(ax) -> dict[int, tuple]:
    return {v: tuple(f) for c in ax.collections if c.get_gid() == "nodes" for v, f in zip(c.nodes, c.get_facecolor())}


# ---------------------------------------------------------------- live figures draw what a fresh one draws
def test_task_panels_redrawn_in_place_match_a_fresh_figure(tree):
    task, data, _ = tree
    rng = np.random.default_rng(0)
    a, b = rng.random(6), rng.random(6) * 3
    kept = viz.TaskPanels(task, 2)
    fresh = viz.TaskPanels(task, 2)
    for panels in (kept, fresh):
        panels.fig.set_layout_engine(None)  # the same fixed positions for both
    kept.update([data[0], data[1]], [a, None], ["one", "two"])
    kept.update([data[2], data[3]], [b, b / 2], ["three", "four"])
    fresh.update([data[2], data[3]], [b, b / 2], ["three", "four"])
    np.testing.assert_array_equal(_pixels(kept.fig), _pixels(fresh.fig))  # nothing left over from the first update
    assert kept.mappables[0].get_clim() == pytest.approx((b.min() / 2, b.max()))  # one scale over both overlays
    faces = _node_faces(kept.axes[0])
    lo, hi = b.min() / 2, b.max()
    for v in range(6):
        np.testing.assert_allclose(faces[v], colormaps["viridis"]((b[v] - lo) / (hi - lo)), atol=1e-6)


def test_task_panels_own_scales_and_bad_input(tree):
    task, data, _ = tree
    panels = viz.TaskPanels(task, 2, shared=False, label=["steps", "probability"])
    panels.update([data[0], data[0]], [np.arange(6.0), np.linspace(0, 1, 6)])
    assert [m.get_clim() for m in panels.mappables] == [(0.0, 5.0), (0.0, 1.0)]
    assert [bar.ax.get_ylabel() for bar in panels.colorbars] == ["steps", "probability"]
    panels.update([data[0], data[0]], [np.arange(6.0), None])
    assert not panels.colorbars[1].ax.get_visible() and panels.colorbars[0].ax.get_visible()
    with pytest.raises(ValueError, match="one each"):
        panels.update([data[0]], None)
    with pytest.raises(TypeError, match="render"):
        viz.TaskPanels(object())


class _PlainTask:
    """A task whose render has only the contract's arguments (and adds its own colour bar)."""

    def __init__(self, task):
        self.task = task

    def render(self, example, overlay=None, ax=None):
        return self.task.render(example, overlay=overlay, ax=ax)


def test_task_panels_accept_a_render_without_the_scale_keywords(tree):
    task, data, _ = tree
    plain = _PlainTask(task)
    assert not viz.live.render_kwargs(plain) and viz.live.render_kwargs(task)
    panels = viz.TaskPanels(plain, 2)
    for _ in range(2):
        panels.update([data[0], data[1]], [np.linspace(0, 1, 6), np.ones(6)])
        assert len(panels.fig.axes) == 3  # two panels and the shared colour bar: the task's own bars removed
    assert _node_faces(panels.axes[0])  # drawn


def test_feature_dashboard_redrawn_in_place_matches_a_fresh_one(tree):
    task, data, _ = tree
    where = viz.where_from_mask(torch.ones(len(data), data.tokens.shape[1], dtype=torch.bool))
    g = torch.Generator().manual_seed(0)
    v1, v2 = torch.rand(len(where), generator=g), torch.relu(torch.randn(len(where), generator=g))
    dens = np.linspace(0.01, 0.9, 20)
    kept = viz.FeatureDashboard(where, data, densities=dens, k=3)
    fresh = viz.FeatureDashboard(where, data, densities=dens, k=3)
    for board in (kept, fresh):
        board.fig.set_layout_engine(None)
    kept.update(v1, name="a", matches=[("x", 0.9), ("y", 0.5), ("z", 0.1)])
    kept.update(v2, name="b", matches=[("p", 0.4)])
    fresh.update(v2, name="b", matches=[("p", 0.4)])
    np.testing.assert_array_equal(_pixels(kept.fig), _pixels(fresh.fig))
    assert kept.ax_hist.get_title().startswith("b: activations > 0")
    assert [t.get_text() for t in kept.ax_lab.texts] == ["p  (0.40)"]
    tops = viz.top_examples(v2, where, 3)
    assert [ax.get_title().split(":")[0] for ax in kept.ax_tops] == [f"example {ex}" for ex, _, _ in tops]
    # the function draws the same picture as the class
    fig = viz.feature_dashboard(v2, where, data, densities=dens, name="b", k=3, matches=[("p", 0.4)])
    assert [ax.get_title() for ax in fig.axes] == [ax.get_title() for ax in kept.fig.axes]
    with pytest.raises(ValueError, match=r"\[n_rows, 2\]"):
        viz.feature_dashboard(v2[:5], where, data)


# ---------------------------------------------------------------- explorers keep, update and cache figures
def test_explorer_keeps_one_figure_per_view_and_freezes_its_layout(tree):
    task, data, model = tree
    ex = widgets.AttentionExplorer(model, data, max_examples=4)
    fig = ex.figures["task"]
    assert fig.get_layout_engine() is None  # laid out by the first draw, then frozen
    positions = [tuple(ax.get_position().bounds) for ax in fig.axes]
    ex.controls["head"].value = 1
    ex.controls["example"].value = 2
    assert ex.figures["task"] is fig and [tuple(ax.get_position().bounds) for ax in fig.axes] == positions
    overlay = viz.positions_to_overlay(task, data[2].tokens, torch.nn.functional.pad(
        ex.attention_from_query(), (0, data.tokens.shape[1] - len(ex._tokens())), value=float("nan")))
    faces = _node_faces(fig.axes[0])
    lo, hi = np.nanmin(overlay), np.nanmax(overlay)
    for v in range(6):
        want = colormaps["viridis"]((overlay[v] - lo) / (hi - lo)) if np.isfinite(overlay[v]) else None
        if want is not None:
            np.testing.assert_allclose(faces[v], want, atol=1e-6)
    assert ex.draw_counts["task"] == 3


def test_cached_revisit_shows_the_old_png_and_brings_the_figure_up_to_date(tree):
    _, data, model = tree
    ex = widgets.AttentionExplorer(model, data, max_examples=4)
    first_png = ex.views["task"].value
    ex.controls["head"].value = 1
    assert "L0H1" in ex.figures["task"].axes[0].get_title()
    drawn = ex.draw_counts["task"]
    ex.controls["head"].value = 0  # back: served from the PNG cache
    assert ex.draw_counts["task"] == drawn and ex.cache_hits == 1
    assert ex.views["task"].value == first_png
    assert "L0H0" in ex.figures["task"].axes[0].get_title()  # the kept figure follows when read
    assert set(ex.figures) == {"task"} and len(ex.figures) == 1


# ---------------------------------------------------------------- PNG encoding and the text cache
def test_to_png_paths_agree():
    fig = viz.new_figure(2, 1.5, layout=None)
    fig.add_subplot().plot([0, 1], [1, 0])
    slow = np.asarray(Image.open(io.BytesIO(viz.to_png(fig, dpi=50))))
    fig.set_dpi(50)
    fast = np.asarray(Image.open(io.BytesIO(viz.to_png(fig, dpi=50, compress_level=1))))
    np.testing.assert_array_equal(slow, fast)


def test_fast_text_canvas_draws_the_same_text():
    def figure(canvas):
        fig = viz.new_figure(3, 1.6, layout=None)
        canvas(fig)
        ax = fig.add_axes((0.25, 0.3, 0.7, 0.5))
        ax.set_title("root 3 → goal 5 (path 3 → 1 → 5)", fontsize=9)
        ax.text(0.5, 0.5, "S12", ha="center", va="center", color="white", backgroundcolor="black")
        ax.set_ylabel("value")  # rotated
        ax.set_xlabel(r"$\alpha$ (mathtext)")
        return fig

    figs = [figure(FigureCanvasAgg), figure(viz.FastTextCanvas)]
    extents = [[tuple(np.round(t.get_window_extent(f.canvas.get_renderer()).bounds, 6)) for t in
                (f.axes[0].title, *f.axes[0].texts, f.axes[0].yaxis.label)] for f in figs]
    assert extents[0] == extents[1]  # cached font metrics: the same text layout
    plain, cached = _pixels(figure(FigureCanvasAgg)).mean(-1), _pixels(figure(viz.FastTextCanvas)).mean(-1)
    again = _pixels(figure(viz.FastTextCanvas)).mean(-1)  # now served from the cache
    np.testing.assert_array_equal(cached, again)
    ink = (plain < 128).sum()
    assert ink > 500 and abs((cached < 128).sum() - ink) < 0.05 * ink  # as much text, none lost or doubled
    off = np.full(plain.shape, np.inf)  # glyphs may sit up to a pixel away (whole-pixel placement)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            off = np.minimum(off, np.abs(plain - np.roll(cached, (dy, dx), (0, 1))))
    assert (off > 64).mean() < 0.01
