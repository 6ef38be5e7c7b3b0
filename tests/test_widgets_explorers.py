"""Explorers, headless: set controls from code and check what the views show against the model / probes."""

from __future__ import annotations

import re

import ipywidgets as W
import numpy as np
import pytest
import torch
from _tolerance import assert_close_to_scale

from toolkit import activations, models, probes, tasks, widgets
from toolkit.tasks import Maze


@pytest.fixture(scope="module")
def tree():
    task = tasks.TreeSearch(n_nodes=6, max_path=3)
    data = task.generate(48, seed=0, split="test")
    model = models.build(task, d_model=32, n_layers=2, d_mlp=64)
    acts = activations.cache(model, data, hooks=["blocks.0.hook_resid_pre", "resid_post"], positions="all",
                             progress=False)
    sweep = probes.sweep(acts, labels=["parent", "ancestor_1", "depth"], n_boot=0, control=True, baseline=False,
                         progress=False, min_rows=10)
    return task, data, model, acts, sweep


@pytest.fixture(scope="module")
def maze():
    task = tasks.MazeSearch(size=3)
    data = task.generate(4, seed=0, split="test")
    model = models.build(task, d_model=32, n_layers=2, d_mlp=64)
    return task, data, model


def _pattern(model, data, layer, example, head):
    _, cache = model.run_with_cache(data.tokens[example:example + 1],
                                    names_filter=lambda n: n == f"blocks.{layer}.attn.hook_pattern")
    return cache[f"blocks.{layer}.attn.hook_pattern"][0, head]


# ---------------------------------------------------------------- AttentionExplorer
def test_attention_explorer_shows_the_selected_head(tree):
    task, data, model, _, _ = tree
    ex = widgets.AttentionExplorer(model, data, max_examples=8)
    assert repr(ex) == "AttentionExplorer(example=0/7, layer=0, head=0, query=12 ':')"
    first_png, first_html = ex.views["task"].value, ex.views["heatmap"].value
    ex.controls["layer"].value = 1
    ex.controls["head"].value = 1
    ex.controls["example"].value = 3
    seq = len(ex._tokens())
    want = _pattern(model, data, 1, 3, 1)[:seq, :seq]
    # the explorer caches through activations.cache (fast pass): float32 rounding only, see test_activations_cache
    assert_close_to_scale(ex.pattern(), want, 1e-5, "float32 rounding only", "attention pattern")
    row = ex.attention_from_query()
    assert row.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert ex.views["task"].value != first_png and ex.views["heatmap"].value != first_html
    assert "L1H1 pattern" in ex.views["heatmap"].value
    cells = re.findall(r"data-value='([^']+)'", ex.views["heatmap"].value)
    assert len(cells) == seq * seq
    assert float(cells[ex.state()["query"] * seq]) == pytest.approx(row[0].item(), abs=1e-4)
    best = int(row.argmax())
    assert f"<li>{best}: " in ex.views["top"].value
    assert len(ex.timings_ms) == 4  # the first draw + three changes
    assert ex.circuits().props["attention"].shape == (2, seq, seq)


def test_attention_explorer_query_options_follow_the_example(tree):
    _, data, model, _, _ = tree
    ex = widgets.AttentionExplorer(model, data, max_examples=8, query=2)
    assert ex.state()["query"] == 2
    ex.controls["query"].value = 5
    ex.controls["example"].value = 1
    labels = [label for label, _ in ex.controls["query"].options]
    assert len(labels) == len(ex._tokens()) and labels[5].startswith("5: ") and ex.state()["query"] == 5
    assert f"attention from 5: {ex._tokens()[5]}" in ex.figures["task"].axes[0].get_title()
    with pytest.raises(ValueError, match="out of range"):
        widgets.AttentionExplorer(model, data, max_examples=8, example=8)
    with pytest.raises(ValueError, match="on plain tokens needs vocab="):  # plain tokens work with vocab=
        widgets.AttentionExplorer(model, data.tokens)


def test_explorer_display_bundle_has_widget_and_static_snapshot(tree):
    _, data, model, _, _ = tree
    ex = widgets.AttentionExplorer(model, data, max_examples=4)
    bundle = ex._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    assert bundle["text/plain"] == repr(ex)
    assert bundle["text/html"].count("data:image/png;base64,") == 1 and "searchlight-snapshot" in bundle["text/html"]
    assert "searchlight-attentionexplorer" in ex.widget._dom_classes
    assert ex.time_update(lambda: setattr(ex.controls["head"], "value", 1)) > 0
    with pytest.raises(RuntimeError, match="different"):
        ex.time_update(lambda: setattr(ex.controls["head"], "value", 1))


# ---------------------------------------------------------------- SearchStateExplorer
def test_search_state_explorer_decodes_with_the_given_probes(tree):
    _, data, model, _, sweep = tree
    ex = widgets.SearchStateExplorer(model, data, sweep.probes, label="ancestor_1", max_examples=8)
    hooks = [h for _, h in ex.controls["layer"].options]
    assert hooks == ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    # one naming of depths: depth d = after d blocks, the hook on hover
    assert [name for name, _ in ex.controls["layer"].options] == ["depth 0", "depth 1", "depth 2"]
    assert list(ex.controls["layer"].tooltips) == hooks
    ex.controls["layer"].value = hooks[1]
    s = ex.state()
    _, cache = model.run_with_cache(data.tokens[:8], names_filter=lambda n: n == hooks[1])
    probe = sweep.probe("ancestor_1", hooks[1])
    want = probe.predict_proba(cache[hooks[1]][s["example"], s["position"]][None].numpy())[0]
    # probabilities from the fast-pass residual vs the bridge's: input rounding (~1e-6 of scale) times probe weights
    assert_close_to_scale(ex.decoded(), want, 1e-4, "float32 rounding of the probe's input", "decoded probabilities")
    truth = ex.truth()
    assert truth.sum() == 1 and truth[int(data.labels["ancestor_1"].values[s["example"], s["position"]])] == 1
    table = ex.views["layers"].value
    assert table.count("<tr") == 1 + 3 + 1
    assert "background:#fde0dd'><td><span title='blocks.0.hook_resid_post'>depth 1</span>" in table
    assert "depth 1" in ex.views["description"].value and "blocks.0.hook_resid_post" in ex.views["description"].value
    before = ex.views["state"].value
    ex.controls["label"].value = "depth"  # regression: positions and state change
    assert ex.views["state"].value != before and "<b>depth</b>" in ex.views["description"].value
    assert ex.decoded().shape == (6,)
    ex.play.playing = True  # a step of the play button moves the depth
    ex.play.value = 0
    assert ex.state()["layer"] == "blocks.0.hook_resid_pre"
    ex.play.value = 2
    assert ex.state()["layer"] == "blocks.1.hook_resid_post"
    ex.play.playing = False  # the stop button: pause, then rewind the play button to its minimum ...
    ex.play.value = ex.play.min
    assert ex.state()["layer"] == "blocks.1.hook_resid_post"  # ... the depth stays where it was
    assert ex.play.value == 2  # and play continues from there


def test_search_state_explorer_play_sits_beside_the_depth_control(tree):
    _, data, model, _, sweep = tree
    ex = widgets.SearchStateExplorer(model, data, sweep.probes, max_examples=8)
    rows = [c for c in ex.widget.children if isinstance(c, W.HBox)]
    row_of_play = next(r for r in rows if ex.play in r.children)
    assert ex.controls["layer"] in row_of_play.children
    assert ex.controls["example"] not in row_of_play.children

def test_search_state_explorer_errors(tree):
    _, data, model, _, sweep = tree
    with pytest.raises(KeyError, match="its labels"):
        widgets.SearchStateExplorer(model, data, {"nope": {0: sweep.probe("parent", "blocks.0.hook_resid_post")}})
    with pytest.raises(TypeError, match="dict"):
        widgets.SearchStateExplorer(model, data, [1, 2])


# ---------------------------------------------------------------- ProbeExplorer
def test_probe_explorer_cells_and_predictions(tree):
    _, data, _, acts, sweep = tree
    ex = widgets.ProbeExplorer(sweep, acts, label="parent")
    table = sweep.table()
    score = float(table[(table.label == "depth") & (table.hook == "blocks.1.hook_resid_post")].score.iloc[0])
    assert ex.buttons[("depth", "blocks.1.hook_resid_post")].description == f"{score:.2f}"
    ex.select("ancestor_1", "blocks.0.hook_resid_post")
    assert ex.state()["label"] == "ancestor_1"
    assert "<b>ancestor_1</b>" in ex.views["cell"].value and "<b>depth 1</b>" in ex.views["cell"].value
    assert ex.buttons[("ancestor_1", "blocks.0.hook_resid_post")].layout.border.startswith("3px")
    idx, y, pred = ex.predictions()
    probe = sweep.probe("ancestor_1", "blocks.0.hook_resid_post")
    np.testing.assert_array_equal(pred.numpy(), probe.predict(acts["blocks.0.hook_resid_post"][idx].numpy()))
    acc = (y == pred).float().mean().item()
    assert f"accuracy {acc:.1%}" in ex.figures["confusion"].axes[0].get_title() or "all rows" in \
        ex.figures["confusion"].axes[0].get_title()
    conf = ex.figures["confusion"].axes[0].get_images()[0].get_array()
    assert conf.shape == (6, 6)
    ex.controls["value"].value = "selectivity"
    sel = float(table[(table.label == "depth") & (table.hook == "blocks.1.hook_resid_post")].selectivity.iloc[0])
    assert ex.buttons[("depth", "blocks.1.hook_resid_post")].description == f"{sel:.2f}"
    ex.controls["value"].value = "vs random-init"  # no twin in this sweep: blank cells, not "selectivity"
    assert ex.buttons[("depth", "blocks.1.hook_resid_post")].description == "–"
    cell = ex.views["cell"].value
    assert "selectivity (score − control task)" in cell and "vs baseline" in cell and "vs random-init" in cell
    assert [o[0].split(" (")[0] for o in ex.controls["hook"].options] == ["depth 0", "depth 1", "depth 2"]
    header = [c.value for c in ex.views["grid"].children[1:4]]
    assert header == [f"<span title='{h}'>depth {d}</span>" for d, h in enumerate(
        ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"])]
    ex.select("depth", "blocks.1.hook_resid_post")  # regression: a scatter instead of a confusion matrix
    assert ex.figures["confusion"].axes[0].collections
    with pytest.raises(KeyError, match="no cell"):
        ex.select("depth", "nowhere")
    bare = widgets.ProbeExplorer(sweep)
    assert "pass acts=" in bare.views["cell"].value


# ---------------------------------------------------------------- FeatureBrowser
class _Relu:
    """A stand-in feature extractor: the first 8 residual dimensions, rectified."""

    hook_name = "blocks.1.hook_resid_post"

    def transform(self, X):
        return torch.as_tensor(X)[:, :8].clamp(min=0)


def test_feature_browser_orders_and_redraws(tree):
    _, data, _, acts, _ = tree
    fb = widgets.FeatureBrowser(_Relu(), acts, labels=["parent", "depth"])
    dens = fb.density
    by_density = fb.order("density")
    assert all(dens[a] >= dens[b] for a, b in zip(by_density, by_density[1:]))
    by_match = fb.order("label match")
    assert all(fb.best_score[a] >= fb.best_score[b] for a, b in zip(by_match, by_match[1:]))
    assert all(fb.best_score[i] < fb.match_threshold for i in fb.order("matches nothing"))
    fb.controls["sort"].value = "label match"
    assert fb.state()["latent"] == by_match[0]
    assert fb.figures["dashboard"].axes[0].get_title().startswith(f"latent {by_match[0]}:")  # drawn after refill
    drawn, png = fb.draw_counts["dashboard"], fb.views["dashboard"].value
    fb.controls["example"].value = 5  # only the example views redraw
    assert fb.draw_counts["dashboard"] == drawn and fb.views["dashboard"].value == png
    assert "example 5" in fb.views["where"].value
    fb.controls["latent"].value = by_density[-1]
    assert fb.draw_counts["dashboard"] == drawn + 1 and fb.views["dashboard"].value != png
    assert f"latent {by_density[-1]}" in fb.figures["dashboard"].axes[0].get_title()
    with pytest.raises(ValueError, match="hook"):
        widgets.FeatureBrowser(_Relu(), acts, hook="blocks.9.hook_resid_post")


def test_feature_browser_keeps_the_selected_latent_in_view_and_explains_its_pictures(tree):
    _, data, _, acts, _ = tree
    class Relu24(_Relu):
        def transform(self, X):
            return torch.as_tensor(X)[:, :24].clamp(min=0)

    fb = widgets.FeatureBrowser(Relu24(), acts, labels=["parent", "depth"])
    assert "root" in fb.views["legend"].value and "goal" in fb.views["legend"].value
    rows = acts.example_index == fb.state()["example"]
    peak = fb.latents[rows].max(0).values
    quiet = int(torch.argmin(peak))  # the least active latent on this example: not among its top 12
    assert (peak > peak[quiet]).sum() >= 12
    fb.controls["latent"].value = quiet
    html = fb.views["where"].value
    assert f"#{quiet} (selected)" in html and html.count("outline:2px solid") == 1
    assert html.count("<tr") == 1 + 12  # 12 latents drawn: the 11 most active and the selected one, outlined


# ---------------------------------------------------------------- MazeEditor
def test_maze_editor_edits_and_resolves(maze):
    task, data, model = maze
    ed = widgets.MazeEditor(model, data, example=1)
    start = data[1].structure
    edges, origin, target = task.parse(ed.prompt())
    assert sorted(map(sorted, edges)) == sorted(map(sorted, start.edges))
    assert (origin, target) == (start.origin, start.target)
    words, cells = ed.solve()
    assert 1 <= len(words) <= task.cells + 1 and ed.model_words == words
    n_before = len(ed.maze.edges)
    wall = next((v, a, b) for v in range(task.cells) for a, b in start.edges if {a, b} == {v, v + 1})
    r, c = divmod(wall[0], task.size)
    ed.click(r, c, "wall →")  # open passage -> wall
    assert len(ed.maze.edges) == n_before - 1
    assert "trained on exactly 8" in ed.views["info"].value
    ed.click(r, c, "wall →")  # and back
    assert len(ed.maze.edges) == n_before and "out of distribution" not in ed.views["info"].value
    ed.click(0, 0, "target")
    assert ed.maze.target == 0 and ed.cells[0][0].description in ("x", "o")
    ed.reset()
    assert ed.maze == ed.start
    with pytest.raises(ValueError, match="outside"):
        ed.click(5, 0)
    assert repr(ed).startswith("MazeEditor(3x3, 8 passages")


def test_maze_verdicts_and_unreachable_targets(maze):
    task, data, model = maze
    ed = widgets.MazeEditor(model, data)
    path = ed.maze.path
    assert ed.verdict(path) == "correct"
    assert ed.verdict(path[1:]) == "does not start at the origin"
    assert ed.verdict(path[:-1]) == "does not reach the target" or len(path) == 1
    cut = Maze(3, (), 0, 8)
    assert cut.path == [0]


def test_maze_editor_needs_a_maze_task(tree):
    _, data, model, _, _ = tree
    with pytest.raises(TypeError, match="MazeSearch"):
        widgets.MazeEditor(model, data)


def test_every_explorer_is_a_widget_tree():
    for cls in (widgets.AttentionExplorer, widgets.SearchStateExplorer, widgets.ProbeExplorer,
                widgets.FeatureBrowser, widgets.MazeEditor):
        assert issubclass(cls, widgets.Explorer)
    assert isinstance(widgets.Explorer().widget, W.VBox)


# ---------------------------------------------------------------- viz on real toolkit results
def test_viz_reads_sweep_results_and_eval_results(tree):
    from toolkit import viz

    task, data, model, _, sweep = tree
    fig = viz.probe_heatmap(sweep, control="control")
    table = sweep.table()
    score = table[(table.label == "depth") & (table.layer == 2)].score.iloc[0]
    rk, ck, mat = viz.pivot(sweep)
    assert mat[rk.index("depth"), ck.index(2)] == pytest.approx(score)
    assert len(fig.axes[0].get_images()) == 1 and len([a for a in fig.axes if a.get_images()]) == 3
    curves = viz.probe_curves(sweep, err="score_std", control="control")
    assert len(curves.axes[0].get_legend().get_texts()) == 3
    result = models.evaluate(model, data)
    bars = viz.accuracy_by_difficulty(result, labels=["random init"])
    heights = [p.get_height() for p in bars.axes[0].patches]
    assert heights == [pytest.approx(result.by_difficulty[k]["exact"]) for k in sorted(result.by_difficulty)]


# ---------------------------------------------------------------- readable at the default notebook width
def test_explorer_figures_are_readable_at_their_shown_size(tree, maze):
    """Explorers show their PNGs at natural size (figure inches x dpi, in CSS pixels of 1/96 inch): text of at least
    9 pt as shown, and no figure wider than a default notebook's ~1000 px output area."""
    from matplotlib.text import Text

    _, data, model, acts, sweep = tree
    m_task, m_data, m_model = maze
    explorers = [widgets.ProbeExplorer(sweep, acts), widgets.SearchStateExplorer(model, data, sweep.probes),
                 widgets.FeatureBrowser(_Relu(), acts, labels=["parent", "depth"]),
                 widgets.AttentionExplorer(model, data, max_examples=8), widgets.MazeEditor(m_model, m_data)]
    for ex in explorers:
        for name, fig in ex.figures.items():
            assert fig.get_figwidth() * ex.dpi <= 1000, f"{ex.kind}.{name} is wider than the notebook"
            small = {(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
                     if t.get_visible() and t.get_text() and t.get_fontsize() * ex.dpi / 96 < 9}
            assert not small, f"{ex.kind}.{name}: text below 9 pt: {sorted(small)[:5]}"
