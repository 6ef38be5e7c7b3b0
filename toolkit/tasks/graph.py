"""Reachability queries in small DAGs (after Saparov et al. 2024).

A DAG on ``n_vertices`` vertices is the union of ``n_branches`` chains (each vertex on exactly one) plus
``n_distractors`` extra forward edges; vertex labels are a fresh random permutation per example. A sequence::

    v3 v7 v0 v5 v7 v1 ... Q v3 v1 YES Q v5 v2 NO Q v0 v4 NO ... PAD
    <- edges a->b, shuffled -> <- n_queries queries; the answers are the loss positions ->

Half the queries are reachable (YES; their hop distances spread evenly over ``1..max_hops`` where the graph
allows), half are not (NO; preferring sources with out-edges and targets with in-edges, so "is s a sink" is no
shortcut), in random order. Queries are independent given the edges: score them with teacher forcing.
``prompt_len`` is the first answer position. Named positions: ``source`` / ``target`` (edge tokens), ``query``
(``Q``), ``query_source``, ``query_target`` (predicts the answer), ``answer``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit.tasks.base import (
    Example,
    Label,
    LazyStructures,
    SearchDataset,
    Solution,
    Task,
    Vocab,
    check_int,
    make_rng,
    one_thread,
    own_masks,
    token_position_features,
)

_SALT = 0x64A6


@dataclass(frozen=True)
class Graph:
    """One DAG in vertex labels: ``edges`` in prompt order, ``queries`` as (source, target, reachable)."""

    n_vertices: int
    edges: tuple[tuple[int, int], ...]
    queries: tuple[tuple[int, int, bool], ...]

    def distances(self, source: int) -> list[int]:
        """Hop distance from ``source`` to every vertex (-1 if unreachable; 0 for the source itself)."""
        out = [[b for a, b in self.edges if a == v] for v in range(self.n_vertices)]
        dist = [-1] * self.n_vertices
        dist[source], todo = 0, deque([source])
        while todo:
            v = todo.popleft()
            for u in out[v]:
                if dist[u] < 0:
                    dist[u] = dist[v] + 1
                    todo.append(u)
        return dist

    def __repr__(self) -> str:
        qs = ", ".join(f"{s}->{t}:{'YES' if r else 'NO'}" for s, t, r in self.queries)
        return f"Graph({self.n_vertices} vertices, {len(self.edges)} edges, queries=[{qs}])"


def _make_graph(n_vertices: np.ndarray, edges: np.ndarray, queries: np.ndarray) -> Graph:
    q = queries.tolist()
    return Graph(int(n_vertices), tuple(map(tuple, edges.tolist())), tuple((s, t, bool(r)) for s, t, r in q))


class GraphSearch(Task):
    """Answer ``Q s t`` -> ``YES`` / ``NO``: is ``t`` reachable from ``s`` along the listed edges?

    Args:
        n_vertices: vertices per graph, 3..32.
        n_branches: chains the vertices are split into, 1..n_vertices-1.
        n_distractors: extra forward edges, 0..(all forward pairs minus chain edges).
        n_queries: queries per sequence, 1..2*(n_vertices - n_branches) (enough reachable pairs must exist).
        max_hops: YES queries spread their hop distance over 1..max_hops, 1..n_vertices-1.
        reach_hops: the h of the ``reach_h`` labels (vertices reachable within h hops).
    """

    difficulty_name = "largest hop distance of a YES query"

    def __init__(self, n_vertices: int = 10, n_branches: int = 3, n_distractors: int = 3, n_queries: int = 6,
                 max_hops: int = 4, reach_hops: tuple[int, ...] | list[int] = (1, 2, 4)):
        V = self.n_vertices = check_int("n_vertices", n_vertices, 3, 32)
        self.n_branches = check_int("n_branches", n_branches, 1, V - 1)
        self.n_distractors = check_int("n_distractors", n_distractors, 0, V * (V - 1) // 2 - (V - n_branches))
        self.n_queries = check_int("n_queries", n_queries, 1, 2 * (V - n_branches))
        self.max_hops = check_int("max_hops", max_hops, 1, V - 1)
        self.reach_hops = tuple(check_int("reach_hops", h, 1, V - 1) for h in reach_hops)
        self.name = f"graph-{V}"
        self.n_edges = V - n_branches + n_distractors
        self._vocab = Vocab(["PAD", "Q", "YES", "NO"] + [f"v{i}" for i in range(V)])
        self.v0 = self._vocab["v0"]
        self.first = 2 * self.n_edges  # position of the first Q

    @property
    def vocab(self) -> Vocab:
        return self._vocab

    @property
    def seq_len(self) -> int:
        return self.first + 4 * self.n_queries

    def spec(self) -> dict[str, Any]:
        return {"type": "graph", "n_vertices": self.n_vertices, "n_branches": self.n_branches,
                "n_distractors": self.n_distractors, "n_queries": self.n_queries, "max_hops": self.max_hops,
                "reach_hops": list(self.reach_hops)}

    # ------------------------------------------------------------------ sampling
    def _sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        V, b, ar = self.n_vertices, self.n_branches, np.arange(n)[:, None]
        cuts = np.sort(np.argsort(rng.random((n, V - 1)), axis=1)[:, : b - 1] + 1, axis=1)
        sorted_branch = (np.arange(V)[None, :, None] >= cuts[:, None, :]).sum(2)  # [n, V], sizes >= 1
        branch = np.empty_like(sorted_branch)
        branch[ar, np.argsort(rng.random((n, V)), axis=1)] = sorted_branch  # canonical vertex -> branch
        adj = np.zeros((n, V, V), bool)  # canonical; edges go from lower to higher index
        later = np.triu(np.ones((V, V), bool), 1)
        same = (branch[:, :, None] == branch[:, None, :]) & later
        nxt = np.where(same.any(2), same.argmax(2), -1)  # next vertex of the same branch
        src, dst = np.nonzero(nxt >= 0)
        adj[src, dst, nxt[src, dst]] = True
        iu = np.triu_indices(V, 1)
        keys = np.where(adj[:, iu[0], iu[1]], 2.0, rng.random((n, len(iu[0]))))
        pick = np.argsort(keys, axis=1, kind="stable")[:, : self.n_distractors]
        adj[ar, iu[0][pick], iu[1][pick]] = True
        ea, eb = np.divmod(np.nonzero(adj.reshape(n, V * V))[1].reshape(n, -1), V)  # [n, E] each
        order = np.argsort(rng.random((n, self.n_edges)), axis=1, kind="stable")
        edges = np.stack([ea[ar, order], eb[ar, order]], -1)
        dist = self._distances(adj)
        # queries: YES pairs at a uniformly drawn hop distance (nearest available), NO pairs mostly "hard"
        n_yes = self.n_queries // 2 + (rng.random(n) < 0.5) * (self.n_queries % 2)
        want = rng.integers(1, self.max_hops + 1, size=(n, self.n_queries))
        keys = rng.random((n, self.n_queries, V * V))
        flat = dist.reshape(n, V * V)
        hard = (adj.any(2)[:, :, None] & adj.any(1)[:, None, :]).reshape(n, V * V)
        not_self = ~np.eye(V, dtype=bool).reshape(-1)
        used = np.zeros((n, V * V), bool)
        pairs = np.zeros((n, self.n_queries), np.int64)
        for j in range(self.n_queries):
            yes = j < n_yes
            s_yes = np.where((flat > 0) & ~used, -np.abs(flat - want[:, j, None]) + 0.5 * keys[:, j], -1e9)
            s_no = np.where((flat < 0) & not_self & ~used, hard + keys[:, j], -1e9)
            pairs[:, j] = np.where(yes, s_yes.argmax(1), s_no.argmax(1))
            used[np.arange(n), pairs[:, j]] = True
        shuffle = np.argsort(rng.random((n, self.n_queries)), axis=1, kind="stable")
        pairs = pairs[ar, shuffle]
        perm = np.argsort(rng.random((n, V)), axis=1, kind="stable")  # canonical -> label
        return {"adj": adj, "dist": dist, "edges": edges, "pairs": pairs, "perm": perm}

    def _distances(self, adj: np.ndarray) -> np.ndarray:
        """All-pairs hop distances [n, V, V] (-1 unreachable, 0 on the diagonal) by repeated frontier steps."""
        n, V = adj.shape[:2]
        a = torch.from_numpy(adj.astype(np.float32))
        dist = torch.full((n, V, V), -1, dtype=torch.long)
        reach = torch.eye(V).expand(n, V, V).clone()
        dist[reach > 0] = 0
        for d in range(1, V):
            new = (torch.bmm(reach, a) > 0) & (dist < 0)
            if not new.any():
                break
            dist[new] = d
            reach = (reach > 0) | new
            reach = reach.float()
        return dist.numpy()

    def generate(self, n: int, seed: int = 0, split: str = "train") -> SearchDataset:
        """``n`` examples; the same ``(seed, split)`` always gives the same tokens."""
        check_int("n", n, 1)
        if split == "heldout":
            raise ValueError("split='heldout' is not available for GraphSearch (no held-out structures); "
                             "use split='train' or 'test'")
        rng = make_rng(seed, split, _SALT)
        with one_thread():
            return self._build(self._sample(rng, n), seed)

    # ------------------------------------------------------------------ tokens and labels
    def _build(self, s: dict[str, np.ndarray], seed: int) -> SearchDataset:
        V, f = self.n_vertices, self.first
        perm, edges, pairs, dist = s["perm"], s["edges"], s["pairs"], s["dist"]
        n, ar = len(perm), np.arange(len(perm))[:, None]
        lab_edges = perm[ar[:, :, None], edges]  # [n, E, 2] in labels
        qs, qt = pairs // V, pairs % V
        hops = np.maximum(dist.reshape(n, -1)[ar, pairs], 0)  # [n, nq]; 0 = unreachable
        tok = np.full((n, self.seq_len), self._vocab.pad_id, np.int64)
        tok[:, 0:f:2], tok[:, 1:f:2] = self.v0 + lab_edges[..., 0], self.v0 + lab_edges[..., 1]
        tok[:, f::4] = self._vocab["Q"]
        tok[:, f + 1::4], tok[:, f + 2::4] = self.v0 + perm[ar, qs], self.v0 + perm[ar, qt]
        tok[:, f + 3::4] = np.where(hops > 0, self._vocab["YES"], self._vocab["NO"])
        pos = np.arange(self.seq_len)
        loss = np.broadcast_to((pos >= f) & ((pos - f) % 4 == 3), (n, self.seq_len))
        difficulty = hops.max(1)
        ds = SearchDataset(self, torch.from_numpy(tok), torch.from_numpy(loss.copy()),
                           torch.full((n,), f + 3, dtype=torch.long), {}, [], seed,
                           {"difficulty": torch.from_numpy(difficulty)})
        ds.labels = own_masks(self._labels(ds, s, lab_edges, hops))
        queries = np.stack([perm[ar, qs], perm[ar, qt], (hops > 0).astype(np.int64)], -1)
        ds.structures = LazyStructures(_make_graph, {"n_vertices": np.full(n, V), "edges": lab_edges,
                                                     "queries": queries})
        return ds

    def _masks(self, n: int) -> dict[str, torch.Tensor]:
        pos, f = torch.arange(self.seq_len), self.first
        qpart = (pos >= f)
        m = {"source": (pos < f) & (pos % 2 == 0), "target": (pos < f) & (pos % 2 == 1),
             "query": qpart & ((pos - f) % 4 == 0), "query_source": qpart & ((pos - f) % 4 == 1),
             "query_target": qpart & ((pos - f) % 4 == 2), "answer": qpart & ((pos - f) % 4 == 3)}
        return {k: v[None, :].expand(n, -1) for k, v in m.items()}

    def positions(self, data: SearchDataset, name: str) -> torch.Tensor:
        """BoolTensor ``[n, seq]`` of named positions (see the module docstring)."""
        masks = self._masks(len(data))
        if name not in masks:
            raise ValueError(f"unknown position name {name!r}; valid names: {sorted(masks)}")
        return masks[name].clone()

    def _labels(self, ds: SearchDataset, s: dict[str, np.ndarray], lab_edges: np.ndarray,
                hops: np.ndarray) -> dict[str, Label]:
        V, nq, f, seq = self.n_vertices, self.n_queries, self.first, self.seq_len
        n, ar = len(lab_edges), np.arange(len(lab_edges))
        m = self._masks(n)
        base = token_position_features(ds.tokens, len(self._vocab))
        names = [f"v{i}" for i in range(V)]
        qidx = np.clip((np.arange(seq) - f) // 4, 0, nq - 1)  # the query each position belongs to
        words = ds.tokens.numpy() - self.v0
        qs_lab, qt_lab = words[:, f + 1::4], words[:, f + 2::4]  # [n, nq]
        eye = np.eye(V, dtype=np.float32)
        qfeat = torch.from_numpy(np.concatenate([eye[qs_lab], eye[qt_lab]], -1)[:, qidx])  # [n, seq, 2V]
        # reach_h: from the focus vertex (edge source / query source) along the edges listed so far
        adj = np.zeros((n, V, V), np.float32)
        want = {h: np.zeros((n, seq, V), np.float32) for h in self.reach_hops}

        def reach_from(focus: np.ndarray) -> dict[int, np.ndarray]:
            front = eye[focus]
            seen = np.zeros_like(front)
            out = {}
            for h in range(1, max(self.reach_hops) + 1):
                front = (np.einsum("nv,nvw->nw", front, adj) > 0).astype(np.float32) * (1 - seen)
                seen = np.maximum(seen, front)
                out[h] = seen.copy()
            return out

        for e in range(self.n_edges):
            adj[ar, lab_edges[:, e, 0], lab_edges[:, e, 1]] = 1.0
            r = reach_from(lab_edges[:, e, 0])
            for h in self.reach_hops:
                want[h][:, 2 * e + 1] = r[h]
        for j in range(nq):
            r = reach_from(qs_lab[:, j])
            for h in self.reach_hops:
                want[h][:, f + 4 * j + 1] = want[h][:, f + 4 * j + 2] = r[h]
        reach_mask = m["target"] | m["query_source"] | m["query_target"]
        labels = {}
        for h in self.reach_hops:
            labels[f"reach_{h}"] = Label(f"reach_{h}", "multilabel", torch.from_numpy(want[h]), reach_mask, V, base,
                                         "current token + position", names,
                                         f"vertices reachable within {h} hops from the edge's / query's source, "
                                         "using the edges listed so far")
        # per query: distances of every vertex to the query target
        dist_lab = np.empty_like(s["dist"])
        perm = s["perm"]
        dist_lab[ar[:, None, None], perm[:, :, None], perm[:, None, :]] = s["dist"]  # [n, from, to] in labels
        to_t = dist_lab[ar[:, None], :, qt_lab]  # [n, nq, V]: dist(v, t_j)
        to_t = np.where(to_t < 0, V, to_t).astype(np.float32)[:, qidx]
        qt = m["query_target"]
        yes = torch.from_numpy(np.ascontiguousarray((hops > 0)[:, qidx]).astype(np.int64))
        return {**labels,
                "reachable": Label("reachable", "binary", yes, qt, None, qfeat, "query source + target", None,
                                   "is the query target reachable from the query source"),
                "hops": Label("hops", "multiclass", torch.from_numpy(np.ascontiguousarray(hops[:, qidx])), qt, V,
                              qfeat, "query source + target", [str(i) for i in range(V)],
                              "hop distance of the query (0 = unreachable)"),
                "dist_to_target": Label("dist_to_target", "regression", torch.from_numpy(to_t), qt, V, qfeat,
                                        "query source + target", names,
                                        f"hops from every vertex to the query target ({V} = unreachable)"),
                "reaches_target": Label("reaches_target", "multilabel", torch.from_numpy((to_t < V).astype(
                    np.float32)), qt, V, qfeat, "query source + target", names,
                    "can each vertex reach the query target (the target itself included)")}

    # ------------------------------------------------------------------ solver
    def parse(self, tokens: torch.Tensor) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Tokens ``[seq]`` -> (edges, queries as (source, target)); answers in the tokens are ignored."""
        words = self._vocab.to_str(tokens).split()
        if "Q" not in words:
            raise ValueError("not a graph prompt: no Q token; pass an example from GraphSearch.generate")
        first = words.index("Q")
        ids = [int(w[1:]) for w in words[:first]]
        queries = [(int(words[i + 1][1:]), int(words[i + 2][1:])) for i in range(first, len(words), 4)
                   if i + 2 < len(words)]
        return list(zip(ids[0::2], ids[1::2])), queries

    def solve(self, example: Example) -> Solution:
        """BFS from each query's source; path = answers (True = YES); trace = BFS layers of every query."""
        edges, queries = self.parse(example.tokens)
        out: dict[int, list[int]] = {v: [] for v in range(self.n_vertices)}
        for a, b in edges:
            out[a].append(b)
        answers, trace = [], []
        for j, (s, t) in enumerate(queries):
            seen, frontier = {s}, [s]
            while frontier:
                trace.append({"query": j, "frontier": sorted(frontier), "visited": sorted(seen)})
                if t in seen:
                    break
                frontier = sorted({u for v in frontier for u in out[v]} - seen)
                seen |= set(frontier)
            answers.append(t in seen and t != s)
        return Solution(path=answers, trace=trace, algorithm="bfs")

    def render(self, example: Example, overlay: Any = None, ax: Any = None, **kw: Any) -> Any:
        from toolkit.tasks.render import render_graph

        return render_graph(example.structure, overlay=overlay, ax=ax, **kw)
