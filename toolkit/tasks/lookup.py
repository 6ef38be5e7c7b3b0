"""A tree task that needs no search: the path is a fixed function of the goal token (a memorised lookup).

``TreeLookup`` writes exactly the same sequences as :class:`~toolkit.tasks.tree.TreeSearch` (same vocabulary,
positions, labels and candidates), but every goal label ``g`` always comes with the same root -> goal path: a
fixed random table (seeded by ``table_seed``) gives each goal its path length and its path labels, and the rest
of the tree is random around that path. So the answer is a function of ONE token (the goal) and the position;
a model never needs to read the edges. It is the negative control of :mod:`toolkit.signatures`: a battery that
says "search" on a model trained here is measuring something else.

    task = tasks.TreeLookup(n_nodes=8, max_path=4)
    data = task.generate(1000, seed=0)
    task.table                          # goal label -> its fixed path (labels, root first)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.tasks.base import SearchDataset, check_int, make_rng, one_thread
from toolkit.tasks.tree import TreeSearch

_SALT = 0x100C


class TreeLookup(TreeSearch):
    """Tree-shaped prompts whose root -> goal path is fixed by the goal label (no search needed).

    Args:
        n_nodes, max_path: as :class:`TreeSearch` (``n_nodes >= 3``).
        table_seed: seeds the fixed goal -> path table (a different table is a different task).

    Path lengths cycle over ``1..max_path`` across the goal labels (in a random order), so every length occurs.
    ``long_branch``, ``sep`` and ``holdout`` are not supported (the table, not the shape, decides the path).
    """

    def __init__(self, n_nodes: int = 8, max_path: int = 4, table_seed: int = 0):
        check_int("n_nodes", n_nodes, 3)
        super().__init__(n_nodes=n_nodes, max_path=max_path)
        self.table_seed = check_int("table_seed", table_seed, 0)
        self.name = f"tree-lookup-{n_nodes}"
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([_SALT, table_seed])))
        N = n_nodes
        lengths = 1 + np.arange(N) % max_path
        rng.shuffle(lengths)
        self.path_len = lengths.astype(np.int64)  # [N]: goal label -> path length (edges)
        self.table: list[list[int]] = []
        for g in range(N):
            others = rng.permutation([v for v in range(N) if v != g])[: lengths[g]]
            self.table.append([int(v) for v in others] + [g])  # root .. goal

    def spec(self) -> dict[str, Any]:
        return {"type": "tree_lookup", "n_nodes": self.n_nodes, "max_path": self.max_path,
                "table_seed": self.table_seed}

    def _sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Goal uniform over labels; path length and path labels from the table; the rest random."""
        N = self.n_nodes
        goal = rng.integers(0, N, size=n)
        p = self.path_len[goal]
        s = self._sample_shapes(rng, p)
        # canonical -> label: canonical 0..p is the table path, the rest a random order of the other labels
        keys = rng.random((n, N))
        rank = np.full((N, N), np.nan)  # rank[g, label]: position of label on g's path, NaN if off it
        for g, path in enumerate(self.table):
            rank[g, path] = np.arange(len(path)) - N  # negative: sorts first, in path order
        r = rank[goal]
        keys = np.where(np.isnan(r), keys, r)
        s["perm"] = np.argsort(keys, axis=1, kind="stable")
        return s

    def generate(self, n: int, seed: int = 0, split: str = "train") -> SearchDataset:
        """``n`` examples; the same ``(seed, split)`` always gives the same tokens."""
        check_int("n", n, 1)
        if split == "heldout":
            raise ValueError("TreeLookup has no held-out shapes (holdout is not supported); use split='test'")
        rng = make_rng(seed, split, _SALT)
        s = self._sample(rng, n)
        with one_thread():
            return self._build(s, seed)
