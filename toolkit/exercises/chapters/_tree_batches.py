"""Seeded tree-task batches shared by the tutorial-02 exercise modules (not a chapter: no ``ch`` prefix, so the
package does not import it as one)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def tree_batch(n: int, seed: int, n_nodes: int = 8, max_path: int = 4):
    """``(tokens [n, seq], loss_mask [n, seq], difficulty [n], vocab size)`` of a held-out TreeSearch batch."""
    from toolkit.tasks import TreeSearch

    data = TreeSearch(n_nodes=n_nodes, max_path=max_path).generate(n, seed=seed, split="test")
    return data.tokens, data.loss_mask, data.meta["difficulty"], len(data.task.vocab)
