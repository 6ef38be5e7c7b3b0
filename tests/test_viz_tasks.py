"""toolkit.viz task drawing: positions -> elements for all three tasks, overlays reach the renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit import tasks, viz


@pytest.fixture(scope="module")
def tree_data():
    return tasks.TreeSearch(n_nodes=6, max_path=3).generate(8, seed=0)


def test_element_table_for_each_task():
    tree = tasks.TreeSearch(n_nodes=6, max_path=3)
    table = viz.element_table(tree)
    vocab = tree.vocab
    assert table[vocab["S3"]] == 3 and table[vocab["T3"]] == 3 and table[vocab["PAD"]] == -1
    assert table[vocab[":"]] == -1 and viz.n_elements(tree) == 6
    maze = tasks.MazeSearch(size=3)
    table = viz.element_table(maze)
    assert viz.n_elements(maze) == 9
    assert table[maze.vocab["(1,2)"]] == 1 * 3 + 2 and table[maze.vocab["ORIGIN"]] == -1
    graph = tasks.GraphSearch(n_vertices=8, n_branches=2, n_distractors=1, n_queries=2, max_hops=3)
    table = viz.element_table(graph)
    assert table[graph.vocab["v7"]] == 7 and table[graph.vocab["YES"]] == -1 and viz.n_elements(graph) == 8


def test_positions_to_overlay_pools_values_onto_the_named_elements(tree_data):
    task, ex = tree_data.task, tree_data[0]
    elem = viz.position_elements(task, ex.tokens)
    values = torch.arange(len(ex.tokens), dtype=torch.float32)
    total = viz.positions_to_overlay(task, ex.tokens, values, reduce="sum")
    assert total.shape == (6,)
    for node in range(6):
        want = values[elem == node].sum().item()
        assert total[node] == pytest.approx(want) if (elem == node).any() else np.isnan(total[node])
    assert np.nansum(total) == pytest.approx(values[elem >= 0].sum().item())
    top = viz.positions_to_overlay(task, ex.tokens, values, reduce="max")
    node = int(elem[elem >= 0][-1])
    assert top[node] == pytest.approx(values[elem == node].max().item())
    with pytest.raises(ValueError, match="one per position"):
        viz.positions_to_overlay(task, ex.tokens, values[:3])
    with pytest.raises(ValueError, match="reduce"):
        viz.positions_to_overlay(task, ex.tokens, values, reduce="median")


def test_render_passes_the_overlay_to_the_task_renderer(tree_data):
    task, ex = tree_data.task, tree_data[1]
    overlay = np.linspace(0.0, 1.0, 6)
    fig = viz.render(task, ex, overlay, title="probe")
    assert len(fig.axes) == 2  # the tree and its colour bar
    nodes = [c for c in fig.axes[0].collections if c.get_gid() == "nodes"]
    faces = {v: tuple(f) for c in nodes for v, f in zip(c.nodes, c.get_facecolor())}
    assert len(set(faces.values())) == 6  # six distinct colours: one per node value
    from matplotlib import colormaps

    assert all(np.allclose(faces[v], colormaps["viridis"](overlay[v])) for v in range(6))
    assert fig.axes[0].get_title().startswith("probe\nroot")
    plain = viz.render(task, ex)
    assert len(plain.axes) == 1


def test_render_positions_and_grid(tree_data):
    task = tree_data.task
    ex = tree_data[2]
    fig = viz.render_positions(task, ex, torch.rand(len(ex.tokens), generator=torch.Generator().manual_seed(0)))
    assert len(fig.axes) == 2
    grid = viz.render_grid(task, [tree_data[0], tree_data[1], tree_data[2]], [None, np.ones(6), None],
                           ["a", "b", "c"], ncols=2)
    titled = [a.get_title() for a in grid.axes if a.get_title()]
    assert titled == ["a", "b", "c"]
    with pytest.raises(ValueError, match="one each"):
        viz.render_grid(task, [tree_data[0]], [None, None])


def test_render_maze_and_graph():
    maze = tasks.MazeSearch(size=3).generate(2, seed=1)
    fig = viz.render_positions(maze.task, maze[0], torch.ones(maze.tokens.shape[1]))
    assert len(fig.axes) == 2
    graph = tasks.GraphSearch(n_vertices=8, n_branches=2, n_distractors=1, n_queries=2, max_hops=3).generate(2)
    fig = viz.render(graph.task, graph[0], {0: 1.0, 3: 0.5})
    assert len(fig.axes) == 2
