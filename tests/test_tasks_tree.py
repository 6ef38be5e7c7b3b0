"""TreeSearch: format, determinism, solver, labels recomputed from token prefixes only (no leakage)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from toolkit import tasks


def parse_prefix(words: list[str]) -> dict:
    """Everything a causal reader knows after reading ``words`` (independent of the generator's code)."""
    edges, goal, done = [], None, "|" in words
    bar = words.index("|") if done else len(words)
    edge_words = [w for w in words[:bar] if w != ","]
    for a, b in zip(edge_words[0::2], edge_words[1::2]):
        edges.append((int(a[1:]), int(b[1:])))
    if done and len(words) > bar + 1:
        goal = int(words[bar + 1][1:])
    return {"edges": edges, "complete": done, "goal": goal}


def recompute(words: list[str], name: str, n_nodes: int):
    """Value of label ``name`` at the last position of ``words``, or None if the prefix does not determine it."""
    info = parse_prefix(words)
    last = words[-1]
    if name == "parent":
        if info["complete"] or not last.startswith("T"):
            return None
        return info["edges"][-1][0]
    if not info["complete"]:
        return None
    parent = {b: a for a, b in info["edges"]}

    def depth(v):
        d = 0
        while v in parent:
            v, d = parent[v], d + 1
        return d

    if name == "depth":
        return [float(depth(v)) for v in range(n_nodes)]
    if name == "children" or name == "nonleaf_children":
        if last[0] not in "ST":
            return None
        v = int(last[1:])
        kids = {c for a, c in info["edges"] if a == v}
        if name == "nonleaf_children":
            kids = {c for c in kids if any(a == c for a, _ in info["edges"])}
        return [float(c in kids) for c in range(n_nodes)]
    if info["goal"] is None:
        return None
    chain = [info["goal"]]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
    if name == "goal":
        return chain[0]
    if name == "on_path":
        return [float(v in chain) for v in range(n_nodes)]
    if name.startswith("ancestor_"):
        k = int(name.split("_")[1])
        return chain[k] if k < len(chain) else None
    raise AssertionError(f"no recomputation for {name}")


def check_dataset(task: tasks.TreeSearch, data) -> None:
    strings = data.task.vocab.to_str(data.tokens, keep_pad=True)
    for i, row in enumerate(strings):
        words = row.split()
        ex = data[i]
        tree = ex.structure
        # the path: starts at the parentless node, follows edges, ends at a leaf goal, is what the loss covers
        sol = task.solve(ex)
        path = sol.path
        assert path == tree.path and sol.trace == path[::-1]
        assert tree.parent[path[0]] == -1 and path[-1] == tree.goal and not tree.children(tree.goal)
        assert all(tree.parent[b] == a for a, b in zip(path[:-1], path[1:]))
        p = len(path) - 1
        assert 1 <= p <= task.max_path and int(data.meta["difficulty"][i]) == p
        target = [words[j] for j in range(task.seq_len) if data.loss_mask[i, j]]
        assert target == [f"S{path[0]}"] + [f"T{v}" for v in path[1:]] + ["END"]
        assert int(data.prompt_len[i]) == words.index(":") + 1
        assert not data.loss_mask[i, : data.prompt_len[i]].any()
        # the edge list holds every edge exactly once, sources as S tokens and targets as T tokens
        assert sorted(parse_prefix(words)["edges"]) == sorted((p_, v) for v, p_ in enumerate(tree.parent)
                                                               if p_ >= 0)
        assert sorted(tree.edges) == sorted(parse_prefix(words)["edges"])
        # every label at every masked position is determined by the tokens up to that position
        for name, label in data.labels.items():
            for j in torch.nonzero(label.mask[i]).flatten().tolist():
                expect = recompute(words[: j + 1], name, task.n_nodes)
                assert expect is not None, f"{name} at position {j} of {row!r} is not computable yet"
                got = label.values[i, j].tolist()
                assert got == expect, f"{name} at {j} of {row!r}: {got} != {expect}"


@settings(derandomize=True, max_examples=20, deadline=None)
@given(n_nodes=st.integers(2, 12), data=st.data(), long_branch=st.booleans(), sep=st.booleans(),
       seed=st.integers(0, 2**31))
def test_property_paths_and_labels(n_nodes, data, long_branch, sep, seed):
    max_path = data.draw(st.integers(1, n_nodes - 1))
    task = tasks.TreeSearch(n_nodes, max_path, long_branch=long_branch, sep=sep)
    check_dataset(task, task.generate(12, seed=seed))


def test_default_task_many_examples():
    task = tasks.TreeSearch()
    data = task.generate(300, seed=3)
    check_dataset(task, data)
    assert task.name == "tree-8" and task.seq_len == data.tokens.shape[1] == 23
    assert set(data.meta["difficulty"].tolist()) == {1, 2, 3, 4}
    for name in ["parent", "goal", "ancestor_1", "ancestor_4", "depth", "on_path", "children"]:
        label = data.label(name)
        assert label.mask.any(), name
        assert label.baseline_features.shape[:2] == data.tokens.shape
    # labels are balanced over node names: no label structure survives the random permutation
    counts = torch.bincount(data.label("goal").rows(), minlength=8)
    assert counts.min() > 0.5 * counts.float().mean()


def test_deterministic_and_split_streams_disjoint():
    task = tasks.TreeSearch()
    a, b = task.generate(50, seed=7), task.generate(50, seed=7)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.label("depth").values, b.label("depth").values)
    assert not torch.equal(a.tokens, task.generate(50, seed=8).tokens)
    train = set(task.generate(400, seed=0).strings())
    test = set(task.generate(400, seed=0, split="test").strings())
    assert not train & test


def test_long_branch_defeats_deepest_leaf_shortcut():
    task = tasks.TreeSearch(n_nodes=10, max_path=4, long_branch=True)
    data = task.generate(200, seed=1)
    for tree in data.structures:
        p = len(tree.path) - 1
        if tree.n_nodes - 1 - p >= 1:
            rivals = [v for v in range(tree.n_nodes) if v != tree.goal and not tree.children(v)
                      and tree.depth(v) >= p]
            assert rivals, tree


def _shape(tree) -> str:
    def code(v):
        kids = sorted(code(c) for c in tree.children(v))
        return ("g" if v == tree.goal else "") + "(" + "".join(kids) + ")"
    return code(tree.root)


def test_heldout_shapes_never_in_train():
    task = tasks.TreeSearch(n_nodes=6, max_path=3, holdout=0.3)
    train = {_shape(t) for t in task.generate(300, seed=0).structures}
    held = {_shape(t) for t in task.generate(300, seed=0, split="heldout").structures}
    test = {_shape(t) for t in task.generate(300, seed=0, split="test").structures}
    assert train and held and not train & held and not test & held
    with pytest.raises(ValueError, match="holdout"):
        tasks.TreeSearch().generate(5, split="heldout")


def test_spec_round_trip_and_vocab():
    task = tasks.TreeSearch(n_nodes=9, max_path=5, long_branch=True, sep=True)
    spec = json.loads(json.dumps(task.spec()))
    again = tasks.from_spec(spec)
    assert again.spec() == task.spec() and again.vocab == task.vocab
    data = task.generate(20, seed=2)
    assert torch.equal(again.generate(20, seed=2).tokens, data.tokens)
    for row, text in zip(data.tokens, data.strings()):
        ids = task.vocab.from_str(text)
        assert torch.equal(ids, row[: len(ids)]) and (row[len(ids):] == task.vocab.pad_id).all()
    assert "," in data.strings()[0]


def test_slicing_keeps_structures_aligned():
    data = tasks.TreeSearch().generate(30, seed=4)
    sub = data[torch.tensor([5, 2, 9])]
    assert len(sub) == 3 and sub[1].structure == data[2].structure
    assert torch.equal(sub.tokens[2], data.tokens[9]) and sub.label("goal").values.shape[0] == 3
    assert data[3:6][0].structure == data[3].structure


def test_positions():
    task = tasks.TreeSearch()
    data = task.generate(10, seed=0)
    q = task.positions(data, "query")
    assert (q.sum(1) == 1).all() and all(w == ":" for w in np.array(task.vocab.tokens)[data.tokens[q]])
    assert torch.equal(task.positions(data, "decision").sum(1), data.meta["difficulty"] + 1)
    with pytest.raises(ValueError, match="valid names"):
        task.positions(data, "nope")


@pytest.mark.parametrize("kwargs, word", [
    ({"n_nodes": 1}, "n_nodes"), ({"max_path": 8}, "max_path"), ({"max_path": 0}, "max_path"),
    ({"holdout": 1.0}, "holdout"), ({"n_nodes": 4.0}, "n_nodes"),
])
def test_bad_parameters(kwargs, word):
    with pytest.raises(ValueError, match=word):
        tasks.TreeSearch(**kwargs)


def test_bad_generate_arguments():
    task = tasks.TreeSearch()
    with pytest.raises(ValueError, match="split"):
        task.generate(3, split="valid")
    with pytest.raises(ValueError, match="seed"):
        task.generate(3, seed=-1)
    with pytest.raises(ValueError, match="type"):
        tasks.from_spec({"type": "chess"})


def test_render_with_overlay():
    task = tasks.TreeSearch()
    ex = task.generate(2, seed=0)[0]
    assert isinstance(task.render(ex), Figure)
    fig = task.render(ex, overlay={ex.structure.goal: 1.0, ex.structure.root: 0.0})
    assert len(fig.axes) == 2  # the tree and a colour bar
    assert isinstance(task.render(ex, overlay=torch.rand(8)), Figure)
    with pytest.raises(ValueError, match="one per node"):
        task.render(ex, overlay=torch.rand(5))
