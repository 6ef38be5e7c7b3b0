"""toolkit.viz: figures carry the data they were given (checked on the artists), HTML heatmaps, errors."""

from __future__ import annotations

import re

import matplotlib.figure
import numpy as np
import pytest
import torch

from toolkit import viz


def _images(fig):
    return [im for ax in fig.axes for im in ax.get_images()]


# ---------------------------------------------------------------- figures
def test_figures_are_plain_figures_that_display_without_pyplot():
    from matplotlib._pylab_helpers import Gcf

    before = len(Gcf.figs)
    fig = viz.new_figure(2, 1)
    fig.add_subplot().plot([0, 1], [1, 0])
    viz.attention_heatmap(torch.eye(3))
    assert len(Gcf.figs) == before  # no pyplot-managed figure was created
    assert isinstance(fig, matplotlib.figure.Figure)
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    html = viz.to_html(fig, alt="line")
    assert html.startswith('<img alt="line" src="data:image/png;base64,')


# ---------------------------------------------------------------- attention
def test_attention_heatmap_shows_the_pattern_masked_above_the_diagonal():
    g = torch.Generator().manual_seed(0)
    pattern = torch.softmax(torch.randn(2, 5, 5, generator=g), -1)
    fig = viz.attention_heatmap(pattern, list("abcde"), query=3, title="t")
    ims = _images(fig)
    assert len(ims) == 2
    for h, im in enumerate(ims):
        data = im.get_array()
        assert np.ma.is_masked(data)
        assert data.mask[0, 1] and not data.mask[1, 0]
        np.testing.assert_allclose(data.data[np.tril_indices(5)], pattern[h].numpy()[np.tril_indices(5)], rtol=1e-6)
    panel = fig.axes[0]
    assert [t.get_text() for t in panel.get_xticklabels()] == list("abcde")
    boxes = [p for p in panel.patches if p.get_edgecolor()[0] > 0.8]  # the red query outline
    assert len(boxes) == 1 and boxes[0].get_y() == pytest.approx(2.5)


def test_attention_heatmap_rejects_bad_input():
    with pytest.raises(ValueError, match="one token string per position"):
        viz.attention_heatmap(torch.ones(3, 3) / 3, ["a", "b"])
    with pytest.raises(ValueError, match=r"\[seq, seq\]"):
        viz.attention_heatmap(torch.ones(3, 4))
    with pytest.raises(ValueError, match="outside"):
        viz.attention_heatmap(torch.ones(3, 3) / 3, query=7)


def test_token_strip_has_one_box_per_token():
    fig = viz.token_strip(["S1", "T2", "|"], [0.1, float("nan"), 0.9], highlight=2)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["S1", "T2", "|"]
    (boxes,) = [c for c in ax.collections if c.get_gid() == "tokens"]
    faces = [tuple(f) for f in boxes.get_facecolor()]
    assert len(faces) == 3 and faces[1] == (1, 1, 1, 1)  # one box per token; NaN: white
    assert faces[0] != faces[2]
    from matplotlib import colormaps

    np.testing.assert_allclose(faces[2], colormaps["viridis"](1.0))  # the largest value: top of the scale
    assert [p.get_edgecolor()[0] > 0.8 for p in ax.patches] == [True]  # the red highlight box
    with pytest.raises(ValueError, match="one value per token"):
        viz.token_strip(["a", "b"], [1.0])


def test_html_heatmap_cells_carry_their_values():
    m = np.array([[0.0, 0.5], [np.nan, 1.0]])
    html = viz.heatmap_html(m, ["r0", "r1"], ["c0", "c1"], vmin=0, vmax=1, highlight_row=1, title="T")
    values = re.findall(r"data-value='([^']+)'", html)
    assert values == ["0.0000", "0.5000", "nan", "1.0000"]
    assert html.count("<td") == 4 and "outline:2px solid #d62728" in html and "<caption" in html
    assert "#eeeeee" in html  # the NaN cell
    with pytest.raises(ValueError, match="labels"):
        viz.heatmap_html(m, ["only one"], ["c0", "c1"])


def test_attention_html_masks_the_future():
    p = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    html = viz.attention_html(p, ["a", "b"], query=1)
    assert re.findall(r"data-value='([^']+)'", html) == ["1.0000", "nan", "0.3000", "0.7000"]
    assert "query 1:b, key 0:a: 0.300" in html


# ---------------------------------------------------------------- probes
ROWS = [{"label": lab, "layer": layer, "score": s, "control": c, "score_std": 0.01, "baseline": 0.2}
        for lab, base in (("parent", 0.5), ("goal", 0.7)) for layer, (s, c) in
        enumerate([(base, 0.4), (base + 0.2, 0.45), (base + 0.3, 0.5)])]


def test_pivot_and_heatmap_with_control_and_selectivity():
    rk, ck, mat = viz.pivot(ROWS)
    assert rk == ["parent", "goal"] and ck == [0, 1, 2]
    np.testing.assert_allclose(mat[0], [0.5, 0.7, 0.8])
    fig = viz.probe_heatmap(ROWS, control="control", selected=("goal", 1))
    ims = _images(fig)
    assert len(ims) == 3
    np.testing.assert_allclose(ims[2].get_array(), mat - viz.pivot(ROWS, value="control")[2])
    assert "selectivity" in fig.axes[2].get_title() or any("selectivity" in a.get_title() for a in fig.axes)
    ann = [t.get_text() for t in fig.axes[0].texts]
    assert "0.50" in ann and "1.00" in ann


def test_heatmap_names_each_difference_and_shows_hooks_as_depths():
    """"selectivity" only for score - control task; the random-init twin and the baseline are named as such."""
    hooks = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    rows = [dict(r, hook=hooks[r["layer"]], random_init=0.3) for r in ROWS]
    titles = {c: [a.get_title() for a in viz.probe_heatmap(rows, col="hook", control=c).axes if a.get_title()][-1]
              for c in ("control", "random_init", "baseline")}
    assert titles["control"].startswith("selectivity")
    assert titles["random_init"].startswith("vs random-init") and titles["baseline"].startswith("vs baseline")
    fig = viz.probe_heatmap(rows, col="hook")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["depth 0", "depth 1", "depth 2"]
    assert [viz.depth_name(h) for h in hooks] == ["depth 0", "depth 1", "depth 2"]
    assert viz.depth_name("blocks.2.hook_resid_pre") == "depth 2" and viz.depth_name("blocks.1.attn.hook_z") == \
        "blocks.1.attn.hook_z"
    assert viz.depth_html(hooks[2]) == "<span title='blocks.1.hook_resid_post'>depth 2</span>"


def test_probe_tables_from_dataframes_and_errors():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(ROWS)
    assert viz.records(df) == ROWS
    with pytest.raises(KeyError, match="columns are"):
        viz.probe_heatmap(df, value="accuracy")
    with pytest.raises(ValueError, match="empty"):
        viz.pivot([])


def test_probe_curves_draw_score_control_and_baseline_per_label():
    fig = viz.probe_curves(ROWS, err="score_std", control="control", baseline="baseline")
    ax = fig.axes[0]
    lines = ax.get_lines()
    ys = [list(line.get_ydata()) for line in lines]
    assert [0.5, 0.7, 0.8] in [list(np.round(y, 6)) for y in ys]
    assert [0.4, 0.45, 0.5] in [list(np.round(y, 6)) for y in ys]  # control, dashed
    assert sum(line.get_linestyle() == "--" for line in lines) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["parent", "goal"]


def test_confusion_matrix_and_scatter():
    fig = viz.confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], class_names=["a", "b", "c"])
    mat = _images(fig)[0].get_array()
    np.testing.assert_allclose(mat, [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 1]])
    assert "75.0%" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="one prediction"):
        viz.confusion_matrix([0, 1], [0])
    fig = viz.prediction_scatter([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])
    assert "R² 1.00" in fig.axes[0].get_title()


# ---------------------------------------------------------------- features
def test_label_match_finds_the_planted_label():
    rng = np.random.default_rng(0)
    cls = rng.integers(0, 4, 400)
    noise = rng.normal(size=400)
    feature = (cls == 2) + 0.1 * rng.normal(size=400)
    labels = {"cls": torch.tensor(cls), "noise": (torch.tensor(noise), torch.ones(400, dtype=torch.bool))}
    best = viz.label_match(feature, labels, top=2)
    assert best[0][0] == "cls=2" and best[0][1] > 0.9 and best[1][1] < 0.5
    names, mat = viz.label_match_matrix(np.stack([feature, noise], 1), labels)
    assert names[:4] == ["cls=0", "cls=1", "cls=2", "cls=3"] and mat.shape == (2, 5)
    assert mat[0, 2] == pytest.approx(best[0][1])
    assert mat[1, 4] == pytest.approx(1.0)  # the noise feature is the noise label
    with pytest.raises(ValueError, match="same activation cache"):
        viz.label_match(feature[:10], labels)


def test_top_examples_one_row_per_example_best_first():
    values = torch.tensor([0.1, 0.9, 0.8, 0.5, 0.7])
    where = torch.tensor([[0, 1], [0, 2], [1, 0], [2, 3], [1, 4]])
    assert viz.top_examples(values, where, k=3) == [(0, 2, pytest.approx(0.9)), (1, 0, pytest.approx(0.8)),
                                                    (2, 3, pytest.approx(0.5))]
    ov = viz.example_overlay(values, where, 1, seq=6)
    assert ov[0] == pytest.approx(0.8) and ov[4] == pytest.approx(0.7) and np.isnan(ov[1])
    assert torch.equal(viz.where_from_mask(torch.tensor([[True, False], [False, True]])),
                       torch.tensor([[0, 0], [1, 1]]))


# ---------------------------------------------------------------- training
def _history(scale: float):
    loss = list(np.linspace(2.0, 0.1, 50) * scale)
    evals = [{"step": s, "exact": min(1.0, s / 50 * scale), "by_difficulty": {}} for s in (10, 30, 50)]
    return {"loss": loss, "evals": evals}


def test_training_curves_compare_runs():
    fig = viz.training_curves(_history(1.0), _history(0.5), labels=["a", "b"], smooth=5)
    loss_ax, eval_ax = fig.axes[:2]
    assert len(loss_ax.get_lines()) == 2 and len(eval_ax.get_lines()) == 2
    np.testing.assert_allclose(eval_ax.get_lines()[1].get_ydata(), [0.1, 0.3, 0.5])
    with pytest.raises(KeyError, match="available"):
        viz.training_curves(_history(1.0), metric="token")
    with pytest.raises(TypeError, match="History"):
        viz.training_curves(3)


def test_accuracy_by_difficulty_bars():
    a = {1: {"n": 10, "exact": 1.0}, 2: {"n": 10, "exact": 0.5}}
    b = {1: {"n": 8, "exact": 0.75}, 3: {"n": 4, "exact": 0.25}}
    fig = viz.accuracy_by_difficulty(a, b, labels=["trained", "control"])
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights[:3] == [1.0, 0.5, pytest.approx(np.nan, nan_ok=True)]
    assert heights[3:] == [0.75, pytest.approx(np.nan, nan_ok=True), 0.25]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
