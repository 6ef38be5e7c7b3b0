"""MazeSearch: perfect mazes, shortest paths, labels recomputed from token prefixes only (no leakage)."""

from __future__ import annotations

from collections import deque

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from toolkit import tasks


def cell(word: str, size: int) -> int:
    r, c = word.strip("()").split(",")
    return int(r) * size + int(c)


def bfs(nbrs: dict[int, set[int]], src: int) -> dict[int, int]:
    dist, todo = {src: 0}, deque([src])
    while todo:
        v = todo.popleft()
        for u in nbrs[v]:
            if u not in dist:
                dist[u] = dist[v] + 1
                todo.append(u)
    return dist


def read_prefix(words: list[str], size: int) -> dict:
    """What a causal reader knows after ``words``."""
    cells = [w for w in words if w.startswith("(")]
    stop = words.index("ORIGIN") if "ORIGIN" in words else len(words)
    edge_cells = [cell(w, size) for w in words[:stop] if w.startswith("(")]
    edges = list(zip(edge_cells[0::2], edge_cells[1::2]))
    nbrs = {v: set() for v in range(size * size)}
    for a, b in edges:
        nbrs[a].add(b)
        nbrs[b].add(a)
    known = lambda tag: cell(words[words.index(tag) + 1], size) if tag in words[:-1] else None  # noqa: E731
    return {"edges": edges, "complete": len(edges) == size * size - 1, "nbrs": nbrs,
            "origin": known("ORIGIN"), "target": known("TARGET"), "last": words[-1], "cells": cells}


def dead_end_filling(nbrs, keep: set[int], n_cells: int) -> list[int]:
    filled, it = {}, 0
    while True:
        it += 1
        dead = [v for v in range(n_cells) if v not in filled and v not in keep
                and len([u for u in nbrs[v] if u not in filled]) <= 1]
        if not dead:
            return [filled.get(v, 0) for v in range(n_cells)]
        for v in dead:
            filled[v] = it


def recompute(words: list[str], name: str, task: tasks.MazeSearch, class_names: list[str] | None):
    size, C = task.size, task.cells
    info = read_prefix(words, size)
    if not info["complete"]:
        return None
    nbrs = info["nbrs"]
    if name == "walls":
        pairs = [tuple(cell(x, size) for x in nm.split("-")) for nm in class_names]
        assert all(abs(a - b) in (1, size) for a, b in pairs) and len(pairs) == 2 * size * (size - 1)
        return [0.0 if b in nbrs[a] else 1.0 for a, b in pairs]
    if name in ("next_moves", "next_dir"):
        if "PATH" not in words[:-1] or not info["last"].startswith("("):
            return None
        v = cell(info["last"], size)
        r, c = divmod(v, size)
        steps = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
        moves = [float(0 <= rr < size and 0 <= cc < size and rr * size + cc in nbrs[v]) for rr, cc in steps]
        if name == "next_moves":
            return moves
        if info["target"] is None or v == info["target"]:
            return None
        dist = bfs(nbrs, info["target"])
        nxt = [u for u in nbrs[v] if dist[u] == dist[v] - 1]
        assert len(nxt) == 1
        return [rr * size + cc for rr, cc in steps].index(nxt[0])
    if info["target"] is None or info["origin"] is None:
        return None
    dist_t, dist_o = bfs(nbrs, info["target"]), bfs(nbrs, info["origin"])
    if name == "dist_to_target":
        return [float(dist_t[v]) for v in range(C)]
    on = {v for v in range(C) if dist_o[v] + dist_t[v] == dist_o[info["target"]]}
    if name == "on_path":
        return [float(v in on) for v in range(C)]
    if name == "dead_end_fill":
        return [float(x) for x in dead_end_filling(nbrs, {info["origin"], info["target"]}, C)]
    raise AssertionError(f"no recomputation for {name}")


def check_dataset(task: tasks.MazeSearch, data) -> None:
    size, C = task.size, task.cells
    for i, row in enumerate(data.task.vocab.to_str(data.tokens, keep_pad=True)):
        words = row.split()
        ex = data[i]
        full = read_prefix(words[: int(data.prompt_len[i])], size)
        # a perfect maze: cells - 1 distinct grid-adjacent passages that connect everything
        assert full["complete"] and len({frozenset(e) for e in full["edges"]}) == C - 1
        assert all(abs(a - b) == size or (abs(a - b) == 1 and a // size == b // size) for a, b in full["edges"])
        assert len(bfs(full["nbrs"], 0)) == C
        assert {frozenset(e) for e in ex.structure.edges} == {frozenset(e) for e in full["edges"]}
        # the answer is a valid path from origin to target of BFS length
        answer = [w for w, m in zip(words, data.loss_mask[i].tolist()) if m]
        assert answer[-1] == "END"
        path = [cell(w, size) for w in answer[:-1]]
        assert path[0] == full["origin"] == ex.structure.origin and path[-1] == full["target"] != full["origin"]
        assert all(b in full["nbrs"][a] for a, b in zip(path[:-1], path[1:]))
        assert len(path) - 1 == bfs(full["nbrs"], full["origin"])[full["target"]] == int(data.meta["difficulty"][i])
        sol = task.solve(ex)
        assert sol.path == path == ex.structure.path
        assert sol.trace[0]["frontier"] == [path[0]] and path[-1] in sol.trace[-1]["frontier"]
        assert len(sol.trace) == len(path)
        for name, label in data.labels.items():
            for j in torch.nonzero(label.mask[i]).flatten().tolist():
                expect = recompute(words[: j + 1], name, task, label.class_names)
                assert expect is not None, f"{name} at position {j} of {row!r} is not computable yet"
                got = label.values[i, j].tolist()
                assert got == expect, f"{name} at {j} of {row!r}: {got} != {expect}"


@settings(derandomize=True, max_examples=12, deadline=None)
@given(size=st.integers(2, 5), sep=st.booleans(), seed=st.integers(0, 2**31))
def test_property_mazes_paths_labels(size, sep, seed):
    task = tasks.MazeSearch(size, sep=sep)
    check_dataset(task, task.generate(6, seed=seed))


def test_default_maze():
    task = tasks.MazeSearch()
    data = task.generate(60, seed=1)
    check_dataset(task, data)
    assert task.name == "maze-4x4" and data.tokens.shape == (60, task.seq_len)
    assert data.meta["difficulty"].max() >= 6 and data.meta["difficulty"].min() >= 1
    walls = data.label("walls").rows()
    assert torch.allclose(walls.sum(1), torch.tensor(24.0 - 15.0))  # 24 adjacent pairs, 15 passages
    assert data.label("dist_to_target").baseline_name == "target cell"


def test_mazes_are_diverse_and_unbiased():
    """Randomized DFS should reach many different spanning trees; edges come in both orientations."""
    task = tasks.MazeSearch(3)
    data = task.generate(300, seed=0)
    shapes = {frozenset(frozenset(e) for e in s.edges) for s in data.structures}
    assert len(shapes) > 50
    forward = sum(a < b for s in data.structures for a, b in s.edges)
    total = sum(len(s.edges) for s in data.structures)
    assert 0.4 < forward / total < 0.6


def test_spec_positions_and_errors():
    task = tasks.MazeSearch(3, sep=True)
    again = tasks.from_spec(task.spec())
    data = task.generate(8, seed=0)
    assert torch.equal(again.generate(8, seed=0).tokens, data.tokens) and ";" in data.strings()[0]
    assert (task.positions(data, "query").sum(1) == 1).all()
    assert torch.equal(task.positions(data, "path").sum(1), data.meta["difficulty"] + 1)
    with pytest.raises(ValueError, match="size"):
        tasks.MazeSearch(1)
    with pytest.raises(ValueError, match="size"):
        tasks.MazeSearch(9)
    with pytest.raises(ValueError, match="holdout"):
        task.generate(3, split="heldout")
    with pytest.raises(ValueError, match="holdout"):
        tasks.MazeSearch(holdout=-0.1)
    with pytest.raises(ValueError, match="valid names"):
        task.positions(data, "walls")


def test_heldout_mazes_never_in_train():
    task = tasks.MazeSearch(3, holdout=0.25)
    key = lambda d: {frozenset(frozenset(e) for e in s.edges) for s in d.structures}  # noqa: E731
    train, test = key(task.generate(400, seed=0)), key(task.generate(400, seed=0, split="test"))
    held = key(task.generate(200, seed=0, split="heldout"))
    assert held and not held & train and not held & test
    assert len(held) > 20  # many different mazes, not one


def test_render_maze():
    task = tasks.MazeSearch()
    data = task.generate(2, seed=0)
    fig = task.render(data[0], overlay=data.label("dist_to_target").values[0, -1])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="one per cell"):
        task.render(data[0], overlay=[1.0, 2.0])
