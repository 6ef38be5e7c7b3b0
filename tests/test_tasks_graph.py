"""GraphSearch: DAGs, balanced queries, answers by BFS, labels recomputed from token prefixes (no leakage)."""

from __future__ import annotations

from collections import Counter, deque

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from toolkit import tasks


def hops_from(edges: list[tuple[int, int]], src: int) -> dict[int, int]:
    out: dict[int, list[int]] = {}
    for a, b in edges:
        out.setdefault(a, []).append(b)
    dist, todo = {src: 0}, deque([src])
    while todo:
        v = todo.popleft()
        for u in out.get(v, []):
            if u not in dist:
                dist[u] = dist[v] + 1
                todo.append(u)
    return dist


def read_prefix(words: list[str]) -> dict:
    stop = words.index("Q") if "Q" in words else len(words)
    ids = [int(w[1:]) for w in words[:stop]]
    return {"edges": list(zip(ids[0::2], ids[1::2])), "complete": "Q" in words, "q": words[stop:]}


def recompute(words: list[str], name: str, task: tasks.GraphSearch):
    V = task.n_vertices
    info = read_prefix(words)
    edges = info["edges"]
    if name.startswith("reach_"):
        h = int(name.split("_")[1])
        if not info["complete"]:  # edge list: only at an edge's target token, from the edge's source
            if len(words) % 2:
                return None
            focus = edges[-1][0]
        else:
            tail = info["q"][len(info["q"]) // 4 * 4:]  # the current, unfinished query
            if len(tail) not in (2, 3):
                return None
            focus = int(tail[1][1:])
        dist = hops_from(edges, focus)
        return [float(v != focus and v in dist and dist[v] <= h) for v in range(V)]
    tail = info["q"][len(info["q"]) // 4 * 4:]
    if not info["complete"] or len(tail) != 3:
        return None
    s, t = int(tail[1][1:]), int(tail[2][1:])
    dist = hops_from(edges, s)
    if name == "reachable":
        return int(t in dist)
    if name == "hops":
        return dist.get(t, 0)
    to_t = [hops_from(edges, v).get(t, V) for v in range(V)]
    if name == "dist_to_target":
        return [float(x) for x in to_t]
    if name == "reaches_target":
        return [float(x < V) for x in to_t]
    raise AssertionError(f"no recomputation for {name}")


def check_dataset(task: tasks.GraphSearch, data) -> None:
    nq = task.n_queries
    for i, row in enumerate(data.task.vocab.to_str(data.tokens, keep_pad=True)):
        words = row.split()
        full = read_prefix(words)
        edges = full["edges"]
        assert len(edges) == len(set(edges)) == task.n_edges and all(a != b for a, b in edges)
        for a, b in edges:  # acyclic: no edge closes a cycle
            assert a not in hops_from(edges, b)
        queries = [(int(full["q"][k + 1][1:]), int(full["q"][k + 2][1:]), full["q"][k + 3])
                   for k in range(0, 4 * nq, 4)]
        assert len({(s, t) for s, t, _ in queries}) == nq and all(s != t for s, t, _ in queries)
        answers = [("YES" if t in hops_from(edges, s) else "NO") for s, t, _ in queries]
        assert answers == [a for _, _, a in queries]
        assert answers.count("YES") in (nq // 2, (nq + 1) // 2)
        loss_words = [w for w, m in zip(words, data.loss_mask[i].tolist()) if m]
        assert loss_words == answers and int(data.prompt_len[i]) == words.index("Q") + 3
        yes_hops = [hops_from(edges, s)[t] for s, t, a in queries if a == "YES"]
        assert int(data.meta["difficulty"][i]) == max(yes_hops, default=0)
        sol = task.solve(data[i])
        assert sol.path == [a == "YES" for a in answers]
        assert [q[2] for q in data[i].structure.queries] == sol.path
        for name, label in data.labels.items():
            for j in torch.nonzero(label.mask[i]).flatten().tolist():
                expect = recompute(words[: j + 1], name, task)
                assert expect is not None, f"{name} at position {j} of {row!r} is not computable yet"
                got = label.values[i, j].tolist()
                assert got == expect, f"{name} at {j} of {row!r}: {got} != {expect}"


@settings(derandomize=True, max_examples=15, deadline=None)
@given(V=st.integers(3, 12), data=st.data(), seed=st.integers(0, 2**31))
def test_property_graphs(V, data, seed):
    b = data.draw(st.integers(1, V - 1))
    m = data.draw(st.integers(0, min(5, V * (V - 1) // 2 - (V - b))))
    nq = data.draw(st.integers(1, 2 * (V - b)))
    hops = data.draw(st.integers(1, V - 1))
    task = tasks.GraphSearch(V, b, m, nq, hops, reach_hops=(1, 2))
    check_dataset(task, task.generate(6, seed=seed))


def test_default_graph_balance():
    task = tasks.GraphSearch()
    data = task.generate(400, seed=0)
    check_dataset(task, data[:40])
    assert task.name == "graph-10" and data.tokens.shape == (400, task.seq_len)
    hop_counts = Counter(data.label("hops").rows().tolist())
    assert hop_counts[0] == 400 * 3  # half NO
    assert all(hop_counts[h] > 0.1 * 1200 for h in (1, 2, 3, 4)), hop_counts
    # the YES/NO order is random: no fixed pattern, each slot close to balanced
    answers = data.label("reachable").values[data.label("reachable").mask].view(400, 6).float()
    assert len({tuple(r.tolist()) for r in answers}) > 15
    assert ((answers.mean(0) - 0.5).abs() < 0.1).all()
    # NO queries are not given away by a sink source or a source-only target (mostly)
    hard = 0
    for g in data.structures[:100]:
        outs, ins = {a for a, _ in g.edges}, {b for _, b in g.edges}
        hard += sum(s in outs and t in ins for s, t, r in g.queries if not r)
    assert hard > 0.8 * 300


def test_spec_positions_and_errors():
    task = tasks.GraphSearch(8, 2, 2, 4, 3, reach_hops=[1, 3])
    again = tasks.from_spec(task.spec())
    assert torch.equal(again.generate(5, seed=3).tokens, task.generate(5, seed=3).tokens)
    data = task.generate(5, seed=0)
    ans = task.positions(data, "answer")
    assert torch.equal(ans, data.loss_mask) and (ans.sum(1) == 4).all()
    assert sorted(k for k in data.labels if k.startswith("reach_")) == ["reach_1", "reach_3"]
    for kwargs, word in [({"n_vertices": 2}, "n_vertices"), ({"n_branches": 10}, "n_branches"),
                         ({"n_queries": 15}, "n_queries"), ({"n_distractors": 100}, "n_distractors"),
                         ({"max_hops": 10}, "max_hops"), ({"reach_hops": (0,)}, "reach_hops")]:
        with pytest.raises(ValueError, match=word):
            tasks.GraphSearch(**kwargs)
    with pytest.raises(ValueError, match="heldout"):
        task.generate(2, split="heldout")


def test_render_graph():
    task = tasks.GraphSearch()
    data = task.generate(2, seed=0)
    assert isinstance(task.render(data[0]), Figure)
    fig = task.render(data[0], overlay={0: 1.0, 3: 2.0})
    assert len(fig.axes) == 2
