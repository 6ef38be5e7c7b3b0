"""The candidate contract (``task.candidates(data)``) of the tree, maze and lookup tasks, and TreeLookup itself."""

from __future__ import annotations

import math

import pytest
import torch

from toolkit import tasks
from toolkit.tasks.base import Candidates, lookup_features


def _check_common(task, data, c):
    n, seq = data.tokens.shape
    assert c.decision.shape == (n, seq) and c.ids.shape[:2] == (n, seq) and c.score.shape == c.ids.shape
    assert c.baseline_features.shape[:2] == (n, seq)
    assert bool((c.ids[~c.decision] == -1).all()) and bool((c.chosen[~c.decision] == -1).all())
    nxt = torch.cat([data.tokens[:, 1:], data.tokens[:, -1:]], 1)
    ex, pos = torch.nonzero(c.decision, as_tuple=True)
    picked = c.ids[ex, pos, c.chosen[ex, pos]]
    assert torch.equal(picked, nxt[ex, pos]), "the chosen candidate is the next token"
    valid = c.ids >= 0
    assert bool(c.score[valid].isfinite().all()) and bool(c.score[~valid].isnan().all())
    # the chosen move is strictly the best candidate at every decision point
    best = torch.nan_to_num(c.score, nan=math.inf).min(2).values[ex, pos]
    assert torch.equal(c.score[ex, pos, c.chosen[ex, pos]], best)
    assert int((valid.sum(2)[c.decision] >= 2).sum()) > 0, "some decision points branch"


def test_tree_candidates_are_the_children_of_the_current_node():
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(60, seed=3)
    c = task.candidates(data)
    _check_common(task, data, c)
    assert torch.equal(c.decision, task.positions(data, "path"))
    for i in range(20):
        tree = data[i].structure
        path = task.solve(data[i]).path
        for k, node in enumerate(path[:-1]):
            pos = task.query + 1 + k
            ids = sorted(int(t) - task.t0 for t in c.ids[i, pos] if t >= 0)
            kids = sorted(v for v in range(task.n_nodes) if tree.parent[v] == node)
            assert ids == kids
            for slot, t in enumerate(c.ids[i, pos].tolist()):
                if t >= 0:
                    d = len(path) - 1 - k  # current node's distance to the goal
                    assert c.score[i, pos, slot] == (d - 1 if t - task.t0 == path[k + 1] else d + 1)


def test_maze_candidates_are_open_neighbours_except_where_the_path_came_from():
    task = tasks.MazeSearch(size=4)
    data = task.generate(60, seed=3)
    c = task.candidates(data)
    _check_common(task, data, c)
    for i in range(20):
        maze = data[i].structure
        dist = maze.distances(maze.target)
        path = maze.path
        for k, cell in enumerate(path[:-1]):
            pos = task.query + 1 + k
            assert bool(c.decision[i, pos])
            want = sorted(set(maze.neighbours(cell)) - ({path[k - 1]} if k > 0 else set()))
            got = sorted(int(t) - task.c0 for t in c.ids[i, pos] if t >= 0)
            assert got == want
            for slot, t in enumerate(c.ids[i, pos].tolist()):
                if t >= 0:
                    assert c.score[i, pos, slot] == dist[t - task.c0]


def test_tree_lookup_paths_are_a_fixed_function_of_the_goal():
    task = tasks.TreeLookup(n_nodes=8, max_path=4, table_seed=0)
    data = task.generate(300, seed=1)
    assert task.vocab == tasks.TreeSearch(8, 4).vocab and task.seq_len == tasks.TreeSearch(8, 4).seq_len
    goals = set()
    for i in range(len(data)):
        path = task.solve(data[i]).path  # backward chaining over the prompt's edges
        assert path == task.table[path[-1]]
        goals.add(path[-1])
    assert goals == set(range(8)), "every goal label occurs"
    assert sorted(set(task.path_len.tolist())) == [1, 2, 3, 4]
    assert tasks.from_spec(task.spec()).table == task.table
    assert tasks.TreeLookup(table_seed=1).table != task.table
    assert torch.equal(task.generate(40, seed=2).tokens, task.generate(40, seed=2).tokens)
    _check_common(task, data, task.candidates(data))


def test_tree_lookup_refuses_heldout_and_tiny_trees():
    with pytest.raises(ValueError, match="held-out"):
        tasks.TreeLookup().generate(10, split="heldout")
    with pytest.raises(ValueError, match="n_nodes"):
        tasks.TreeLookup(n_nodes=2, max_path=1)


def test_graph_and_base_tasks_have_no_candidates():
    task = tasks.GraphSearch()
    with pytest.raises(NotImplementedError, match="no next-move candidates"):
        task.candidates(task.generate(4))


def test_candidates_validate_shapes_and_chosen():
    n, seq, K = 2, 5, 2
    dec = torch.zeros(n, seq, dtype=torch.bool)
    dec[0, 1] = True
    ids = torch.full((n, seq, K), -1)
    ids[0, 1] = torch.tensor([3, 4])
    score = torch.full((n, seq, K), float("nan"))
    chosen = torch.full((n, seq), -1)
    feats = torch.zeros(n, seq, 3)
    with pytest.raises(ValueError, match="chosen move"):
        Candidates(dec, ids, score, chosen, feats)
    chosen[0, 1] = 0
    assert Candidates(dec, ids, score, chosen, feats).k == 2
    with pytest.raises(ValueError, match="do not line up"):
        Candidates(dec, ids[:, :4], score, chosen, feats)


def test_lookup_features_one_hot_token_and_goal_position_pair():
    tokens = torch.tensor([[1, 2, 0], [0, 0, 1]])
    f = lookup_features(tokens, torch.tensor([1, 0]), n_goals=2, vocab_size=3)
    assert f.shape == (2, 3, 3 + 2 * 3)
    assert torch.equal(f.sum(2), torch.full((2, 3), 2.0))
    assert f[0, 2, 3 + 1 * 3 + 2] == 1 and f[1, 0, 3 + 0] == 1
