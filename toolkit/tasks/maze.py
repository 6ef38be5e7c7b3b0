"""Shortest paths in small perfect grid mazes (after Ivanitskiy et al. 2023; own generator).

A maze is a spanning tree of the n x n grid carved by randomized depth-first search, so every pair of cells
has exactly one path. A sequence (``size=3``; cells are ``(row,col)`` tokens)::

    (1,1) (0,1) (2,0) (2,1) (0,0) (1,0) ... ORIGIN (0,0) TARGET (2,2) PATH (0,0) (1,0) ... (2,2) END PAD ...
    <- open passages, random order and orientation ->                  <----- answer, loss here ----->

With ``sep=True`` a ``;`` follows every passage. The prompt ends with ``PATH``; the loss covers the path cells
(origin included) and ``END``. Named positions: ``edges``, ``sep``, ``origin``, ``target``, ``query``
(``PATH``), ``path`` (the path cells; the last one is the target).
"""

from __future__ import annotations

from collections import deque
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

_SALT = 0x3A2E
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right
MOVE_NAMES = ["up", "down", "left", "right"]


@dataclass(frozen=True)
class Maze:
    """One maze: ``edges`` are the open passages (cell ids ``row * size + col``) in prompt order."""

    size: int
    edges: tuple[tuple[int, int], ...]
    origin: int
    target: int

    def neighbours(self, cell: int) -> list[int]:
        return sorted([b for a, b in self.edges if a == cell] + [a for a, b in self.edges if b == cell])

    def distances(self, source: int) -> list[int]:
        """BFS distance from ``source`` to every cell."""
        dist = [-1] * self.size**2
        dist[source], todo = 0, deque([source])
        while todo:
            v = todo.popleft()
            for u in self.neighbours(v):
                if dist[u] < 0:
                    dist[u] = dist[v] + 1
                    todo.append(u)
        return dist

    @property
    def path(self) -> list[int]:
        """Origin .. target (the unique shortest path in a generated maze; ``[origin]`` when walls added by
        hand, e.g. in ``widgets.MazeEditor``, cut the target off)."""
        dist, out = self.distances(self.target), [self.origin]
        if dist[self.origin] < 0:
            return out
        while out[-1] != self.target:
            out.append(next(u for u in self.neighbours(out[-1]) if dist[u] == dist[out[-1]] - 1))
        return out

    def __repr__(self) -> str:
        return f"Maze({self.size}x{self.size}, origin={self.origin}, target={self.target}, path={self.path})"


def _make_maze(size: np.ndarray, edges: np.ndarray, origin: np.ndarray, target: np.ndarray) -> Maze:
    return Maze(int(size), tuple(map(tuple, edges.tolist())), int(origin), int(target))


class MazeSearch(Task):
    """Find the shortest path between two cells of a random perfect maze.

    Args:
        size: the grid is ``size x size`` cells, 2..8.
        sep: put a ``;`` after every passage (Spies et al. found connectivity consolidated there).
        holdout: fraction (0..1) of mazes (passage sets) reserved for ``split="heldout"``; ``train`` and
            ``test`` never contain them.
    """

    difficulty_name = "path length"

    def __init__(self, size: int = 4, sep: bool = False, holdout: float = 0.0):
        self.size = check_int("size", size, 2, 8)
        if not isinstance(holdout, int | float) or not 0.0 <= holdout < 1.0:
            raise ValueError(f"holdout={holdout!r} is out of range; valid range: [0, 1)")
        self.sep, self.holdout = bool(sep), float(holdout)
        self.cells = size * size
        self.name = f"maze-{size}x{size}"
        self.cell_names = [f"({r},{c})" for r in range(size) for c in range(size)]
        specials = ["PAD", "END", "ORIGIN", "TARGET", "PATH"] + ([";"] if self.sep else [])
        self._vocab = Vocab(specials + self.cell_names)
        self.c0 = self._vocab[self.cell_names[0]]
        self.width = 3 if self.sep else 2
        self.n_edges = self.cells - 1
        self.query = self.width * self.n_edges + 4  # position of PATH
        rc = np.arange(self.cells)
        r, c = rc // size, rc % size
        self.nb = np.stack([np.where((0 <= r + dr) & (r + dr < size) & (0 <= c + dc) & (c + dc < size),
                                     (r + dr) * size + c + dc, -1) for dr, dc in MOVES], 1)  # [cells, 4]
        pairs = [(v, v + 1) for v in rc if c[v] < size - 1] + [(v, v + size) for v in rc if r[v] < size - 1]
        self.pairs = np.array(pairs, dtype=np.int64)  # every grid-adjacent pair [K, 2]

    @property
    def vocab(self) -> Vocab:
        return self._vocab

    @property
    def seq_len(self) -> int:
        return self.query + 1 + self.cells + 1

    def spec(self) -> dict[str, Any]:
        return {"type": "maze", "size": self.size, "sep": self.sep, "holdout": self.holdout}

    # ------------------------------------------------------------------ sampling
    def _carve(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Randomized DFS, vectorised over examples: always exactly 2*cells - 1 steps. -> open [n, cells, 4]."""
        C, ar = self.cells, np.arange(n)
        visited = np.zeros((n, C), bool)
        stack = np.zeros((n, C), np.int64)
        sp = np.zeros(n, np.int64)
        stack[:, 0] = rng.integers(C, size=n)
        visited[ar, stack[:, 0]] = True
        opened = np.zeros((n, C, 4), bool)
        keys = rng.random((n, 2 * C - 1, 4))
        back = np.array([1, 0, 3, 2])
        for it in range(2 * C - 1):
            top = stack[ar, np.maximum(sp, 0)]
            nbs = self.nb[top]
            ok = (nbs >= 0) & ~visited[ar[:, None], np.maximum(nbs, 0)] & (sp >= 0)[:, None]
            has = ok.any(1)
            move = np.where(ok, keys[:, it], -1.0).argmax(1)
            nxt = nbs[ar, move]
            h = ar[has]
            opened[h, top[h], move[h]] = True
            opened[h, nxt[h], back[move[h]]] = True
            visited[h, nxt[h]] = True
            sp = np.where(has, sp + 1, sp - 1)
            stack[h, sp[h]] = nxt[h]
        return opened

    def _bfs(self, opened: np.ndarray, source: np.ndarray) -> np.ndarray:
        """Distances [n, cells] from each example's ``source`` cell along open passages."""
        n = len(source)
        dist = np.full((n, self.cells), -1, np.int64)
        front = np.zeros((n, self.cells), bool)
        front[np.arange(n), source] = True
        nbc = np.maximum(self.nb, 0)
        for d in range(self.cells):
            dist[front] = d
            front = (opened & front[:, nbc]).any(2) & (dist < 0)
            if not front.any():
                break
        return dist

    def _sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        C = self.cells
        opened = self._carve(rng, n)
        origin = rng.integers(C, size=n)
        target = (origin + rng.integers(1, C, size=n)) % C
        # the passage list: each open pair once, shuffled, random orientation
        a, b = self.pairs[:, 0], self.pairs[:, 1]
        is_open = opened[:, a, np.where(b == a + 1, 3, 1)]  # [n, K]; exactly cells - 1 per row
        keys = np.where(is_open, rng.random(is_open.shape), 2.0)
        chosen = np.argsort(keys, axis=1, kind="stable")[:, : self.n_edges]
        flip = rng.random((n, self.n_edges)) < 0.5
        ea, eb = self.pairs[chosen, 0], self.pairs[chosen, 1]
        edges = np.stack([np.where(flip, eb, ea), np.where(flip, ea, eb)], -1)
        return {"opened": opened, "edges": edges, "origin": origin, "target": target, "is_open": is_open}

    @staticmethod
    def shape_key(is_open: np.ndarray) -> np.ndarray:
        """Stable hash in [0, 1) of each maze's passage set ``is_open [n, K]`` (splitmix64 over 60-bit chunks)."""
        h = np.zeros(len(is_open), np.uint64)
        for start in range(0, is_open.shape[1], 60):
            chunk = is_open[:, start:start + 60].astype(np.uint64)
            bits = (chunk << np.arange(chunk.shape[1], dtype=np.uint64)).sum(1, dtype=np.uint64)
            h = h ^ bits
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
        return (h >> np.uint64(11)).astype(np.float64) / 2.0**53

    def generate(self, n: int, seed: int = 0, split: str = "train") -> SearchDataset:
        """``n`` examples; the same ``(seed, split)`` always gives the same tokens."""
        check_int("n", n, 1)
        if split == "heldout" and self.holdout == 0.0:
            raise ValueError("split='heldout' needs MazeSearch(holdout=...) > 0, e.g. holdout=0.2")
        rng = make_rng(seed, split, _SALT)
        if self.holdout == 0.0:
            s = self._sample(rng, n)
        else:
            parts, have = [], 0
            while have < n:
                s = self._sample(rng, max(64, 2 * (n - have)))
                keep = (self.shape_key(s["is_open"]) < self.holdout) == (split == "heldout")
                parts.append({k: v[keep] for k, v in s.items()})
                have += int(keep.sum())
            s = {k: np.concatenate([q[k] for q in parts])[:n] for k in parts[0]}
        with one_thread():
            return self._build(s["opened"], s["edges"], s["origin"], s["target"], seed)

    # ------------------------------------------------------------------ tokens and labels
    def _build(self, opened, edges, origin, target, seed) -> SearchDataset:
        C, w, q, seq = self.cells, self.width, self.query, self.seq_len
        n, ar = len(origin), np.arange(len(origin))
        dist_t = self._bfs(opened, target)
        dist_o = self._bfs(opened, origin)
        length = dist_t[ar, origin]
        path = np.full((n, C), -1, np.int64)
        path[:, 0] = origin
        nbc = np.maximum(self.nb, 0)
        for k in range(1, C):
            cur = path[:, k - 1]
            step = opened[ar, cur] & (dist_t[ar[:, None], nbc[cur]] == (dist_t[ar, cur] - 1)[:, None])
            nxt = nbc[cur][ar, step.argmax(1)]
            path[:, k] = np.where(k <= length, nxt, -1)
        tok = np.full((n, seq), self._vocab.pad_id, np.int64)
        tok[:, 0: w * self.n_edges: w] = self.c0 + edges[:, :, 0]
        tok[:, 1: w * self.n_edges: w] = self.c0 + edges[:, :, 1]
        if self.sep:
            tok[:, 2: w * self.n_edges: w] = self._vocab[";"]
        for j, word in enumerate(["ORIGIN", None, "TARGET", None, "PATH"]):
            tok[:, q - 4 + j] = self._vocab[word] if word else self.c0 + (origin if j == 1 else target)
        steps = np.arange(C + 1)
        tail = np.where(steps <= length[:, None], self.c0 + path[:, np.minimum(steps, C - 1)], self._vocab.pad_id)
        tok[:, q + 1:] = np.where(steps == length[:, None] + 1, self._vocab["END"], tail)
        pos = np.arange(seq)[None, :]
        loss = (pos > q) & (pos <= q + 2 + length[:, None])
        ds = SearchDataset(self, torch.from_numpy(tok), torch.from_numpy(loss),
                           torch.full((n,), q + 1, dtype=torch.long), {}, [], seed,
                           {"difficulty": torch.from_numpy(length.copy())})
        ds.labels = own_masks(self._labels(ds, opened, dist_t, dist_o, path, origin, target, length))
        ds.structures = LazyStructures(_make_maze, {"size": np.full(n, self.size), "edges": edges,
                                                    "origin": origin, "target": target})
        return ds

    def _masks(self, length: torch.Tensor) -> dict[str, torch.Tensor]:
        n, q = len(length), self.query
        col = torch.arange(self.seq_len)[None, :].expand(n, -1)
        edge = col < self.width * self.n_edges
        end = q + 1 + length[:, None]  # the target at the end of the path
        return {"edges": edge & (col % self.width < 2), "sep": edge & (col % self.width == 2),
                "origin": col == q - 3, "target": col == q - 1, "query": col == q,
                "path": (col > q) & (col <= end), "path_before_target": (col > q) & (col < end),
                "maze_known": (col >= self.width * (self.n_edges - 1) + 1) & (col <= end),
                "task_known": (col >= q - 1) & (col <= end)}

    def positions(self, data: SearchDataset, name: str) -> torch.Tensor:
        """BoolTensor ``[n, seq]`` of named positions (see the module docstring)."""
        masks = self._masks(data.meta["difficulty"])
        if name not in masks:
            raise ValueError(f"unknown position name {name!r}; valid names: {sorted(masks)}")
        return masks[name].clone()

    def candidates(self, data: SearchDataset) -> Candidates:
        """Decision points: the path cells before the target. Candidates: the open neighbours of the current
        cell (from the ``next_moves`` label, K = 4 in up/down/left/right order) except the cell the path just
        came from (going back is never a move a shortest path takes, and it is the previous token, which any
        model can copy). Score: BFS distance from the neighbour to the target (``dist_to_target``). Baseline:
        current token ⊕ (target cell, position)."""
        C, q = self.cells, self.query
        dec = self.positions(data, "path_before_target")
        seq = dec.shape[1]
        cur = (data.tokens - self.c0).clamp(0, C - 1)
        nb = torch.from_numpy(self.nb)[cur]  # [n, seq, 4] neighbour cell or -1
        prev = torch.cat([data.tokens[:, :1], data.tokens[:, :-1]], 1) - self.c0
        came = (torch.arange(seq)[None, :] > q + 1)[..., None] & (nb == prev[..., None])
        ok = (data.label("next_moves").values > 0) & (nb >= 0) & ~came & dec[..., None]
        ids = torch.where(ok, self.c0 + nb, torch.tensor(-1))
        nxt = torch.cat([data.tokens[:, 1:], data.tokens[:, -1:]], 1)
        is_next = (ids == nxt[..., None]) & ok
        chosen = torch.where(is_next.any(2) & dec, is_next.float().argmax(2), torch.tensor(-1))
        dist = data.label("dist_to_target").values  # [n, seq, C]
        score = torch.gather(dist, 2, nb.clamp(min=0)).float()
        score = torch.where(ok, score, torch.tensor(float("nan")))
        target = data.tokens[:, q - 1] - self.c0
        return Candidates(dec, ids, score, chosen, lookup_features(data.tokens, target, C, len(self._vocab)),
                          "current token + (target cell x position)")

    def _labels(self, ds, opened, dist_t, dist_o, path, origin, target, length) -> dict[str, Label]:
        C, seq = self.cells, self.seq_len
        n, ar = len(origin), np.arange(len(origin))
        m = self._masks(torch.from_numpy(length))
        base = token_position_features(ds.tokens, len(self._vocab))
        eye = torch.eye(C)
        tgt = eye[target][:, None, :].expand(n, seq, C)
        ends = torch.cat([eye[origin], eye[target]], 1)[:, None, :].expand(n, seq, 2 * C)

        def per_cell(values: np.ndarray) -> torch.Tensor:  # [n, K] -> a [n, seq, K] view
            return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[:, None, :].expand(n, seq, -1)

        a, b = self.pairs[:, 0], self.pairs[:, 1]
        wall = ~opened[:, a, np.where(b == a + 1, 3, 1)]
        pair_names = [f"{self.cell_names[x]}-{self.cell_names[y]}" for x, y in self.pairs]
        on = dist_o + dist_t == length[:, None]
        # dead-end filling: repeatedly fill cells with one unfilled neighbour (never the origin / target)
        fill = np.zeros((n, C), np.int64)
        nbc = np.maximum(self.nb, 0)
        for it in range(1, C + 1):
            deg = (opened & (fill[:, nbc] == 0)).sum(2)
            dead = (fill == 0) & (deg <= 1)
            dead[ar, origin] = dead[ar, target] = False
            if not dead.any():
                break
            fill[dead] = it
        cur = (ds.tokens - self.c0).clamp(0, C - 1).numpy()
        moves = opened[ar[:, None], cur]  # [n, seq, 4]
        nxt_tok = torch.cat([ds.tokens[:, 1:], ds.tokens[:, -1:]], 1).numpy() - self.c0
        delta = np.clip(nxt_tok, 0, C - 1) - cur
        direction = np.select([delta == -self.size, delta == self.size, delta == -1, delta == 1], [0, 1, 2, 3], -1)
        cells = self.cell_names
        mk = m["maze_known"]
        tk = m["task_known"]
        return {
            "walls": Label("walls", "multilabel", per_cell(wall), mk, len(self.pairs), base,
                           "current token + position", pair_names,
                           "1 = wall, 0 = open, for every grid-adjacent pair, once all passages are listed"),
            "dist_to_target": Label("dist_to_target", "regression", per_cell(dist_t), tk, C, tgt, "target cell",
                                    cells, "BFS distance from every cell to the target"),
            "on_path": Label("on_path", "multilabel", per_cell(on), tk, C, ends, "origin + target cells", cells,
                             "is each cell on the origin->target solution path"),
            "dead_end_fill": Label("dead_end_fill", "regression", per_cell(fill), tk, C, ends,
                                   "origin + target cells", cells,
                                   "iteration at which dead-end filling fills each cell (0 = on the path)"),
            "next_moves": Label("next_moves", "multilabel", torch.from_numpy(moves.astype(np.float32)), m["path"],
                                4, base, "current token + position", MOVE_NAMES,
                                "open moves (up, down, left, right) from the current path cell"),
            "next_dir": Label("next_dir", "multiclass", torch.from_numpy(direction), m["path_before_target"], 4,
                              base, "current token + position", MOVE_NAMES,
                              "direction of the solution's next step from the current path cell"),
        }

    # ------------------------------------------------------------------ solver
    def parse(self, tokens: torch.Tensor) -> tuple[list[tuple[int, int]], int, int]:
        """Prompt tokens ``[seq]`` -> (open passages as cell pairs, origin, target)."""
        words = self._vocab.to_str(tokens).split()
        if "ORIGIN" not in words or "TARGET" not in words:
            raise ValueError("not a maze prompt: no ORIGIN / TARGET; pass an example from MazeSearch.generate")
        o = words.index("ORIGIN")
        ids = [self.cell_names.index(x) for x in words[:o] if x != ";"]
        return (list(zip(ids[0::2], ids[1::2])), self.cell_names.index(words[o + 1]),
                self.cell_names.index(words[words.index("TARGET") + 1]))

    def solve(self, example: Example) -> Solution:
        """Breadth-first search from the origin over the prompt's passages; trace = frontier per BFS layer."""
        edges, origin, target = self.parse(example.tokens)
        nbrs: dict[int, list[int]] = {v: [] for v in range(self.cells)}
        for a, b in edges:
            nbrs[a].append(b)
            nbrs[b].append(a)
        came = {origin: -1}
        frontier, trace = [origin], []
        while frontier:
            trace.append({"frontier": sorted(frontier), "visited": sorted(came)})
            if target in came:
                break
            nxt = []
            for v in frontier:
                for u in sorted(nbrs[v]):
                    if u not in came:
                        came[u] = v
                        nxt.append(u)
            frontier = nxt
        path = [target]
        while came[path[-1]] >= 0:
            path.append(came[path[-1]])
        return Solution(path=path[::-1], trace=trace, algorithm="bfs")

    def render(self, example: Example, overlay: Any = None, ax: Any = None, **kw: Any) -> Any:
        from toolkit.tasks.render import render_maze

        return render_maze(example.structure, overlay=overlay, ax=ax, **kw)
