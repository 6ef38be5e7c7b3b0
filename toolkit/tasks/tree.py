"""Path-finding in random binary trees by backward chaining (Brinkmann et al. 2024).

A sequence (``n_nodes=8``, ``max_path=3``; node labels are a fresh random permutation per example)::

    S5 T2 S0 T5 S5 T7 S2 T4 S7 T1 S0 T3 S3 T6 | S4 : S0 T5 T2 T4 END PAD PAD ...
    <------------ shuffled edges ------------> goal    <- path: root .. goal ->

``S_a T_b`` is the edge a -> b (the source and target uses of a node are different tokens). Everything up to
and including ``:`` is the prompt; the loss covers the path (root included) and ``END``. With ``sep=True`` a
``,`` follows every edge (extra "register" positions).

Named positions (``task.positions(data, name)`` -> BoolTensor ``[n, seq]``): ``source`` / ``target`` (edge
tokens), ``sep``, ``goal`` (the goal token after ``|``), ``query`` (``:``), ``path`` (the path tokens before the
goal, each predicting the next path node), ``decision`` (``query`` + ``path``: every position that predicts a
path node).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toolkit.tasks.base import (
    Candidates,
    Example,
    Label,
    LazyStructures,
    SearchDataset,
    Solution,
    Task,
    Vocab,
    check_int,
    lookup_features,
    make_rng,
    one_thread,
    own_masks,
    token_position_features,
)

_SALT = 0x7EE


@dataclass(frozen=True)
class Tree:
    """One tree, in node labels. ``parent[v]`` is -1 for the root; ``edges`` are in prompt order."""

    parent: tuple[int, ...]
    root: int
    goal: int
    edges: tuple[tuple[int, int], ...]

    @property
    def n_nodes(self) -> int:
        return len(self.parent)

    @property
    def path(self) -> list[int]:
        """Root .. goal."""
        out = [self.goal]
        while self.parent[out[-1]] >= 0:
            out.append(self.parent[out[-1]])
        return out[::-1]

    def children(self, v: int) -> list[int]:
        return [c for c, p in enumerate(self.parent) if p == v]

    def depth(self, v: int) -> int:
        d = 0
        while self.parent[v] >= 0:
            v, d = self.parent[v], d + 1
        return d

    def __repr__(self) -> str:
        return f"Tree(root={self.root}, goal={self.goal}, path={self.path}, edges={list(self.edges)})"


def _make_tree(parent: np.ndarray, root: np.ndarray, goal: np.ndarray, edges: np.ndarray) -> Tree:
    return Tree(tuple(parent.tolist()), int(root), int(goal), tuple(map(tuple, edges.tolist())))


class TreeSearch(Task):
    """Find the root -> goal path in a random binary tree given as a shuffled edge list.

    Args:
        n_nodes: nodes per tree, >= 2.
        max_path: path length p (edges root -> goal) is uniform on ``1..max_path``; ``1 <= max_path < n_nodes``.
        long_branch: also grow a second branch whose leaf is as deep as the goal (when nodes allow), so that
            "pick the deepest leaf" is not a shortcut.
        sep: put a ``,`` after every edge (register positions).
        holdout: fraction (0..1) of tree shapes (unlabelled rooted tree with the goal marked) reserved for
            ``split="heldout"``; ``train`` and ``test`` never contain them.
    """

    difficulty_name = "path length"

    def __init__(self, n_nodes: int = 8, max_path: int = 4, long_branch: bool = False, sep: bool = False,
                 holdout: float = 0.0):
        self.n_nodes = check_int("n_nodes", n_nodes, 2)
        self.max_path = check_int("max_path", max_path, 1, n_nodes - 1)
        if not isinstance(holdout, int | float) or not 0.0 <= holdout < 1.0:
            raise ValueError(f"holdout={holdout!r} is out of range; valid range: [0, 1)")
        self.long_branch, self.sep, self.holdout = bool(long_branch), bool(sep), float(holdout)
        self.name = f"tree-{n_nodes}"
        specials = ["PAD", "END", "|", ":"] + ([","] if self.sep else [])
        self._vocab = Vocab(specials + [f"S{i}" for i in range(n_nodes)] + [f"T{i}" for i in range(n_nodes)])
        self.s0, self.t0 = self._vocab["S0"], self._vocab["T0"]
        self.width = 3 if self.sep else 2  # tokens per edge
        self.bar = self.width * (n_nodes - 1)  # position of "|"
        self.query = self.bar + 2  # position of ":"

    # ------------------------------------------------------------------ contract
    @property
    def vocab(self) -> Vocab:
        return self._vocab

    @property
    def seq_len(self) -> int:
        return self.query + 1 + (self.max_path + 1) + 1

    def spec(self) -> dict[str, Any]:
        return {"type": "tree", "n_nodes": self.n_nodes, "max_path": self.max_path,
                "long_branch": self.long_branch, "sep": self.sep, "holdout": self.holdout}

    # ------------------------------------------------------------------ sampling
    def _sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Canonical trees: node 0 is the root, 1..p the path (p = goal), parents precede children."""
        return self._sample_shapes(rng, rng.integers(1, self.max_path + 1, size=n))

    def _sample_shapes(self, rng: np.random.Generator, p: np.ndarray) -> dict[str, np.ndarray]:
        """Random trees with path lengths ``p [n]`` (canonical ids) and a random canonical -> label ``perm``."""
        N, n = self.n_nodes, len(p)
        ar = np.arange(n)
        rest = N - 1 - p
        if self.long_branch:  # branch from path node j with p - j nodes: its leaf sits at depth p
            lo = np.maximum(0, p - rest)
            j = lo + np.floor(rng.random(n) * (p - lo)).astype(np.int64)
            blen = np.where(rest >= 1, p - j, 0)
        else:
            j, blen = np.zeros(n, np.int64), np.zeros(n, np.int64)
        keys = rng.random((n, N, N))
        par = np.full((n, N), -1, np.int64)
        nchild = np.zeros((n, N), np.int64)
        for k in range(1, N):
            free = nchild[:, :k] < 2
            if k > 1:
                free[ar, np.minimum(p, k - 1)] &= p >= k  # the goal stays a leaf
            rand_par = np.where(free, keys[:, k, :k], -1.0).argmax(1)
            chain = (k <= p) | ((k > p + 1) & (k <= p + blen))
            par[:, k] = np.where(chain, k - 1, np.where((k == p + 1) & (blen > 0), j, rand_par))
            nchild[ar, par[:, k]] += 1
        perm = np.argsort(rng.random((n, N)), axis=1, kind="stable")  # canonical -> label
        order = np.argsort(rng.random((n, N - 1)), axis=1, kind="stable") + 1  # edge order (canonical child)
        return {"p": p, "par": par, "nchild": nchild, "perm": perm, "order": order}

    def _shape_keys(self, s: dict[str, np.ndarray]) -> np.ndarray:
        """Stable hash in [0, 1) of each tree's unlabelled shape with the goal marked (AHU encoding)."""
        out = np.empty(len(s["p"]))
        for i, (par, p) in enumerate(zip(s["par"].tolist(), s["p"].tolist())):
            codes: dict[int, list[str]] = {v: [] for v in range(len(par))}
            for v in range(len(par) - 1, 0, -1):  # children have larger canonical ids than parents
                codes[par[v]].append(("g" if v == p else "") + "(" + "".join(sorted(codes[v])) + ")")
            key = "(" + "".join(sorted(codes[0])) + ")"
            out[i] = zlib.crc32(key.encode()) / 2**32
        return out

    def generate(self, n: int, seed: int = 0, split: str = "train") -> SearchDataset:
        """``n`` examples; the same ``(seed, split)`` always gives the same tokens."""
        check_int("n", n, 1)
        rng = make_rng(seed, split, _SALT)
        if split == "heldout" and self.holdout == 0.0:
            raise ValueError("split='heldout' needs TreeSearch(holdout=...) > 0, e.g. holdout=0.2")
        if self.holdout == 0.0:
            s = self._sample(rng, n)
        else:
            parts, have = [], 0
            while have < n:
                s = self._sample(rng, max(64, 2 * (n - have)))
                keep = (self._shape_keys(s) < self.holdout) == (split == "heldout")
                parts.append({k: v[keep] for k, v in s.items()})
                have += int(keep.sum())
            s = {k: np.concatenate([q[k] for q in parts])[:n] for k in parts[0]}
        with one_thread():
            return self._build(s, seed)

    # ------------------------------------------------------------------ tokens and labels
    def _build(self, s: dict[str, np.ndarray], seed: int) -> SearchDataset:
        N, mp, w, q = self.n_nodes, self.max_path, self.width, self.query
        p, par, perm, order = s["p"], s["par"], s["perm"], s["order"]
        n, ar = len(p), np.arange(len(p))[:, None]
        lab_par = np.where(par >= 0, perm[ar, np.maximum(par, 0)], -1)  # canonical node -> parent label
        tok = np.full((n, self.seq_len), self._vocab.pad_id, np.int64)
        tok[:, 0:self.bar:w] = self.s0 + lab_par[ar, order]
        tok[:, 1:self.bar:w] = self.t0 + perm[ar, order]
        if self.sep:
            tok[:, 2:self.bar:w] = self._vocab[","]
        tok[:, self.bar] = self._vocab["|"]
        tok[:, self.bar + 1] = self.s0 + perm[ar[:, 0], p]
        tok[:, q] = self._vocab[":"]
        tok[:, q + 1] = self.s0 + perm[:, 0]
        steps = np.arange(1, mp + 2)
        tail = np.where(steps <= p[:, None], self.t0 + perm[:, np.minimum(steps, N - 1)], self._vocab.pad_id)
        tok[:, q + 2:] = np.where(steps == p[:, None] + 1, self._vocab["END"], tail)
        pos = np.arange(self.seq_len)
        loss = (pos > q) & (pos <= q + 2 + p[:, None])
        ds = SearchDataset(self, torch.from_numpy(tok), torch.from_numpy(loss),
                           torch.full((n,), q + 1, dtype=torch.long), {}, [], seed,
                           {"difficulty": torch.from_numpy(p.copy())})
        ds.labels = own_masks(self._labels(ds, s, lab_par))
        parent_by_label = np.empty((n, N), np.int64)
        parent_by_label[ar, perm] = lab_par
        ds.structures = LazyStructures(_make_tree, {
            "parent": parent_by_label, "root": perm[:, 0], "goal": perm[ar[:, 0], p],
            "edges": np.stack([lab_par[ar, order], perm[ar, order]], -1)})
        return ds

    def _masks(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        n, pos, q = len(p), torch.arange(self.seq_len), self.query
        edge = pos < self.bar
        col = pos[None, :].expand(n, -1)
        path = (col > q) & (col <= q + p[:, None])  # current token is a path node before the goal
        return {"source": (edge & (pos % self.width == 0)).expand(n, -1),
                "target": (edge & (pos % self.width == 1)).expand(n, -1),
                "sep": (edge & (pos % self.width == 2)).expand(n, -1),
                "goal": (col == self.bar + 1), "query": (col == q), "path": path, "decision": path | (col == q)}

    def positions(self, data: SearchDataset, name: str) -> torch.Tensor:
        """BoolTensor ``[n, seq]`` of named positions (see the module docstring)."""
        masks = self._masks(data.meta["difficulty"])
        if name not in masks:
            raise ValueError(f"unknown position name {name!r}; valid names: {sorted(masks)}")
        return masks[name].clone()

    def candidates(self, data: SearchDataset) -> Candidates:
        """Decision points: the path positions before the goal (root .. the goal's parent). Candidates: the
        children of the current node (``T_child`` tokens, K = 2), read from the ``children`` label. Score: tree
        distance from the child to the goal (the path child: ``d - 1``, its sibling: ``d + 1``, with ``d`` the
        current node's distance). Baseline: current token ⊕ (goal label, position)."""
        N, q = self.n_nodes, self.query
        dec = self.positions(data, "path")
        n, seq = dec.shape
        kids = data.label("children").values  # [n, seq, N] 0/1 over child labels
        order = torch.sort(kids, dim=2, descending=True, stable=True).indices[..., :2]  # child labels first
        has = torch.gather(kids, 2, order) > 0
        ids = torch.where(has & dec[..., None], self.t0 + order, torch.tensor(-1))
        nxt = torch.cat([data.tokens[:, 1:], data.tokens[:, -1:]], 1)
        is_next = (ids == nxt[..., None]) & (ids >= 0)
        chosen = torch.where(is_next.any(2) & dec, is_next.float().argmax(2), torch.tensor(-1))
        d_cur = (q + 1 + data.meta["difficulty"][:, None] - torch.arange(seq)[None, :]).float()  # p - k
        score = torch.where(is_next, d_cur[..., None] - 1, d_cur[..., None] + 1)
        score = torch.where(ids >= 0, score, torch.tensor(float("nan")))
        goal = data.tokens[:, self.bar + 1] - self.s0
        return Candidates(dec, ids, score, chosen, lookup_features(data.tokens, goal, N, len(self._vocab)))

    def _labels(self, ds: SearchDataset, s: dict[str, np.ndarray], lab_par: np.ndarray) -> dict[str, Label]:
        N, q, seq = self.n_nodes, self.query, self.seq_len
        p, perm, order = s["p"], s["perm"], s["order"]
        n, ar = len(p), np.arange(len(p))[:, None]
        m = self._masks(torch.from_numpy(p))
        base = token_position_features(ds.tokens, len(self._vocab))
        names = [str(i) for i in range(N)]
        after = torch.arange(seq)[None, :] <= q + 1 + torch.from_numpy(p)[:, None]  # through the goal token

        def cls(name: str, values: np.ndarray, mask: torch.Tensor, desc: str) -> Label:
            v = torch.where(mask, torch.from_numpy(np.ascontiguousarray(values)), torch.tensor(-1))
            return Label(name, "multiclass", v, mask, N, base, "current token + position", names, desc)

        labels: dict[str, Label] = {}
        parent = np.full((n, seq), -1, np.int64)
        parent[:, 1:self.bar:self.width] = lab_par[ar, order]
        labels["parent"] = cls("parent", parent, m["target"], "parent of node B, at B's target token T_B")
        goal = np.broadcast_to(perm[ar[:, 0], p][:, None], (n, seq))
        qmask = m["decision"] | m["goal"]
        labels["goal"] = cls("goal", goal, m["decision"], "the goal node, at the query and path positions")
        for k in range(1, self.max_path + 1):
            anc = np.broadcast_to(perm[ar[:, 0], np.maximum(p - k, 0)][:, None], (n, seq))
            mk = qmask & torch.from_numpy(p >= k)[:, None]
            labels[f"ancestor_{k}"] = cls(f"ancestor_{k}", anc, mk,
                                          f"the goal's {k}-th ancestor (backward-chaining frontier), at the goal"
                                          " token, the query and path positions")
        # per-node maps, indexed by node label
        depth_c = np.zeros((n, N), np.float32)
        for k in range(1, N):
            depth_c[:, k] = depth_c[ar[:, 0], s["par"][:, k]] + 1
        depth = np.empty_like(depth_c)
        depth[ar, perm] = depth_c
        after_edges = (torch.arange(seq)[None, :] >= self.bar) & after
        dmap = torch.from_numpy(depth)[:, None, :].expand(n, seq, N) * after_edges[..., None]
        labels["depth"] = Label("depth", "regression", dmap, after_edges, N, base, "current token + position",
                                names, "depth of every node (by label), once the edge list is complete")
        on_c = (np.arange(N)[None, :] <= p[:, None]).astype(np.float32)
        on = np.empty_like(on_c)
        on[ar, perm] = on_c
        omask = (torch.arange(seq)[None, :] > self.bar) & after
        omap = torch.from_numpy(on)[:, None, :].expand(n, seq, N) * omask[..., None]
        labels["on_path"] = Label("on_path", "multilabel", omap, omask, N, base, "current token + position",
                                  names, "is each node (by label) on the root->goal path, from the goal token on")
        # one-step lookahead: children of the node at the current path position
        adj = np.zeros((n, N, N), np.float32)  # adj[i, parent_label, child_label]
        adj[ar, lab_par[:, 1:], perm[:, 1:]] = 1.0
        nonleaf = adj.sum(2) > 0  # [n, label]
        cur = ds.tokens.numpy() - self.s0
        cur = np.where(cur >= N, cur - N, cur).clip(0, N - 1)  # S_v / T_v -> v
        ch = adj[ar, cur]  # [n, seq, N]
        pm = m["path"] | (torch.arange(seq)[None, :] == q + 1 + torch.from_numpy(p)[:, None])
        chm = torch.from_numpy(ch) * pm[..., None]
        labels["children"] = Label("children", "multilabel", chm, pm, N, base, "current token + position", names,
                                   "children of the current path node (one-step lookahead)")
        labels["nonleaf_children"] = Label("nonleaf_children", "multilabel",
                                           chm * torch.from_numpy(nonleaf[:, None, :]), pm, N, base,
                                           "current token + position", names,
                                           "children of the current path node that have children themselves")
        return labels

    # ------------------------------------------------------------------ solver
    def parse(self, tokens: torch.Tensor) -> tuple[list[tuple[int, int]], int]:
        """Prompt tokens ``[seq]`` -> (edges as (source, target) labels, goal label)."""
        words = self._vocab.to_str(tokens).split()
        if "|" not in words:
            raise ValueError("not a tree prompt: no '|' token; pass an example from TreeSearch.generate")
        bar = words.index("|")
        src = [int(w[1:]) for w in words[:bar] if w.startswith("S")]
        dst = [int(w[1:]) for w in words[:bar] if w.startswith("T")]
        return list(zip(src, dst)), int(words[bar + 1][1:])

    def solve(self, example: Example) -> Solution:
        """Backward chaining from the goal over the prompt's edges (the structure is not consulted)."""
        edges, goal = self.parse(example.tokens)
        parent = {b: a for a, b in edges}
        trace = [goal]
        while trace[-1] in parent:
            trace.append(parent[trace[-1]])
        return Solution(path=trace[::-1], trace=trace, algorithm="backward-chaining")

    def render(self, example: Example, overlay: Any = None, ax: Any = None, **kw: Any) -> Any:
        from toolkit.tasks.render import render_tree

        return render_tree(example.structure, overlay=overlay, ax=ax, **kw)
