"""Toy search tasks with ground-truth search state.

``TreeSearch`` (path-finding by backward chaining), ``MazeSearch`` (shortest paths in grid mazes) and
``GraphSearch`` (reachability queries in DAGs) all follow the contract in :mod:`toolkit.tasks.base`;
``TreeLookup`` is the tree task's no-search twin (the path is a fixed table of the goal token), the negative
control of :mod:`toolkit.signatures`. Tree, maze and lookup tasks give their next-move candidates with
``task.candidates(data)``::

    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(1000, seed=0, split="train")   # SearchDataset: tokens, loss_mask, labels, ...
    task.solve(data[0]).path
    tasks.from_spec(task.spec())                          # rebuilds the task (used by model save/load)
"""

from __future__ import annotations

from typing import Any

from toolkit.tasks.base import Candidates, Example, Label, SearchDataset, Solution, Task, Vocab
from toolkit.tasks.graph import Graph, GraphSearch
from toolkit.tasks.lookup import TreeLookup
from toolkit.tasks.maze import Maze, MazeSearch
from toolkit.tasks.tree import Tree, TreeSearch

_TYPES: dict[str, type[Task]] = {"tree": TreeSearch, "maze": MazeSearch, "graph": GraphSearch,
                                 "tree_lookup": TreeLookup}


def from_spec(spec: dict[str, Any]) -> Task:
    """Rebuild a task from ``task.spec()`` (a JSON dict with a ``"type"`` key)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"a task spec is a dict with a 'type' key (one of {sorted(_TYPES)}), got {spec!r}")
    kwargs = dict(spec)
    kind = kwargs.pop("type")
    if kind not in _TYPES:
        raise ValueError(f"unknown task type {kind!r}; valid types: {sorted(_TYPES)}")
    return _TYPES[kind](**kwargs)


__all__ = [
    "TreeSearch", "MazeSearch", "GraphSearch", "TreeLookup", "Tree", "Maze", "Graph",
    "Candidates", "SearchDataset", "Label", "Vocab", "Example", "Solution", "Task", "from_spec",
]
