"""Tutorial 01, *What is search?*: backward chaining, breadth-first search and search traces.

The cases are small trees from :class:`toolkit.tasks.TreeSearch`, a grid maze (cells are ``(row, col)``),
graphs with cycles whose shortest paths are unique, and edge cases (start == goal, unreachable goal).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from functools import lru_cache

import numpy as np

from toolkit.exercises.compare import diff_value
from toolkit.exercises.core import Mistake, function_exercise

Graph = dict[Hashable, list[Hashable]]


# --- references -------------------------------------------------------------------------------------------


def backward_chain(edges: list[tuple[int, int]], goal: int) -> list[int]:
    """Root -> goal path in a tree given as (parent, child) edges, found by walking up from the goal."""
    parent = {child: par for par, child in edges}
    chain = [goal]
    while chain[-1] in parent:
        chain.append(parent[chain[-1]])
    return chain[::-1]


def maze_neighbors(passages: list[tuple[int, int]], n_cells: int) -> dict[int, list[int]]:
    """Open passages (undirected cell pairs) -> ``{cell: sorted open neighbours}`` for every cell 0..n_cells-1."""
    out: dict[int, list[int]] = {cell: [] for cell in range(n_cells)}
    for a, b in passages:
        out[a].append(b)
        out[b].append(a)
    return {cell: sorted(nbrs) for cell, nbrs in out.items()}


def bfs_path(neighbors: Graph, start: Hashable, goal: Hashable) -> list | None:
    """Shortest start -> goal path (list of nodes, both ends included), or None if the goal is unreachable."""
    came_from = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while came_from[path[-1]] is not None:
                path.append(came_from[path[-1]])
            return path[::-1]
        for nxt in neighbors.get(node, []):
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return None


def bfs_layers(neighbors: Graph, start: Hashable) -> list[list]:
    """The BFS search trace: ``layers[k]`` = sorted nodes at distance k from ``start`` (no empty last layer)."""
    seen = {start}
    layers = [[start]]
    while True:
        nxt = sorted({m for v in layers[-1] for m in neighbors.get(v, []) if m not in seen})
        if not nxt:
            return layers
        seen.update(nxt)
        layers.append(nxt)


# --- plausible mistakes -----------------------------------------------------------------------------------


def _chain_not_reversed(edges, goal):
    return backward_chain(edges, goal)[::-1]


def _chain_without_root(edges, goal):
    return backward_chain(edges, goal)[1:]


def _chain_without_goal(edges, goal):
    return backward_chain(edges, goal)[:-1]


def _chain_map_wrong_way(edges, goal):
    child = {par: ch for par, ch in edges}  # parent -> (last) child: walks down, not up
    chain, seen = [goal], {goal}
    while chain[-1] in child and child[chain[-1]] not in seen:
        chain.append(child[chain[-1]])
        seen.add(chain[-1])
    return chain[::-1]


def _maze_one_way(passages, n_cells):
    out = {cell: [] for cell in range(n_cells)}
    for a, b in passages:
        out[a].append(b)
    return {cell: sorted(v) for cell, v in out.items()}


def _maze_unsorted(passages, n_cells):
    out = {cell: [] for cell in range(n_cells)}
    for a, b in passages:
        out[a].append(b)
        out[b].append(a)
    return out


def _maze_only_seen_cells(passages, n_cells):
    out: dict[int, list[int]] = {}
    for a, b in passages:
        out.setdefault(a, []).append(b)
        out.setdefault(b, []).append(a)
    return {cell: sorted(v) for cell, v in sorted(out.items())}


def _dfs_path(neighbors, start, goal):
    seen = set()

    def walk(node):
        if node == goal:
            return [node]
        seen.add(node)
        for nxt in neighbors.get(node, []):
            if nxt not in seen:
                rest = walk(nxt)
                if rest is not None:
                    return [node, *rest]
        return None

    return walk(start)


def _bfs_reversed(neighbors, start, goal):
    path = bfs_path(neighbors, start, goal)
    return None if path is None else path[::-1]


def _bfs_no_start(neighbors, start, goal):
    path = bfs_path(neighbors, start, goal)
    return None if path is None else path[1:]


def _bfs_empty_when_unreachable(neighbors, start, goal):
    path = bfs_path(neighbors, start, goal)
    return [] if path is None else path


def _layers_unsorted(neighbors, start):
    seen, layers = {start}, [[start]]
    while True:
        nxt = []
        for v in layers[-1]:
            for m in neighbors.get(v, []):
                if m not in seen:
                    seen.add(m)
                    nxt.append(m)
        if not nxt:
            return layers
        layers.append(nxt)


def _layers_trailing_empty(neighbors, start):
    return [*bfs_layers(neighbors, start), []]


def _layers_mark_late(neighbors, start):
    """Marks nodes as seen only when their layer is finished: a node reached twice in one layer repeats."""
    seen, layers = {start}, [[start]]
    while True:
        nxt = sorted(m for v in layers[-1] for m in neighbors.get(v, []) if m not in seen)
        if not nxt:
            return layers
        seen.update(nxt)
        layers.append(nxt)


def _layers_cumulative(neighbors, start):
    layers = bfs_layers(neighbors, start)
    return [sorted(x for layer in layers[: k + 1] for x in layer) for k in range(len(layers))]


# --- cases ------------------------------------------------------------------------------------------------


def _tree_edges(n_nodes: int, max_path: int, n: int, seed: int) -> list[tuple[list[tuple[int, int]], int]]:
    from toolkit.tasks import TreeSearch

    data = TreeSearch(n_nodes=n_nodes, max_path=max_path).generate(n, seed=seed, split="test")
    return [([tuple(e) for e in data.structures[i].edges], data.structures[i].goal) for i in range(n)]


def grid_maze(rows: int, cols: int, seed: int) -> Graph:
    """A perfect maze (random spanning tree of the grid) as cell -> open neighbour cells."""
    rng = np.random.default_rng(seed)
    nbrs: Graph = {(r, c): [] for r in range(rows) for c in range(cols)}
    stack, seen = [(0, 0)], {(0, 0)}
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
                   if (r + dr, c + dc) in nbrs and (r + dr, c + dc) not in seen]
        if not options:
            stack.pop()
            continue
        nxt = options[rng.integers(len(options))]
        nbrs[(r, c)].append(nxt)
        nbrs[nxt].append((r, c))
        seen.add(nxt)
        stack.append(nxt)
    return {k: sorted(v) for k, v in nbrs.items()}


def _n_shortest(neighbors: Graph, start, goal) -> int:
    count, dist, queue = {start: 1}, {start: 0}, deque([start])
    while queue:
        v = queue.popleft()
        for m in neighbors.get(v, []):
            if m not in dist:
                dist[m], count[m] = dist[v] + 1, count[v]
                queue.append(m)
            elif dist[m] == dist[v] + 1:
                count[m] += count[v]
    return count.get(goal, 0)


def cyclic_graph(n: int, seed: int) -> tuple[Graph, int, int]:
    """A directed graph with cycles, a long detour and a unique shortest path from 0 to the returned goal."""
    rng = np.random.default_rng(seed)
    while True:
        nbrs: Graph = {v: [v + 1] if v < n - 1 else [] for v in range(n)}  # a long chain 0 -> 1 -> ..., listed
        for _ in range(n // 2):                                          # first: depth-first search follows it
            a, b = (int(x) for x in rng.integers(n, size=2))
            if a != b and b not in nbrs[a]:
                nbrs[a].append(b)
        goal = n - 1
        path = bfs_path(nbrs, 0, goal)
        if path is not None and 2 < len(path) <= n // 2 + 1 and _n_shortest(nbrs, 0, goal) == 1:
            return nbrs, 0, goal


@lru_cache(maxsize=1)
def _graph_cases() -> tuple:
    trees = _tree_edges(8, 4, 3, seed=101) + _tree_edges(12, 8, 2, seed=102)
    cases = []
    for i, (edges, goal) in enumerate(trees):
        children: Graph = {}
        for a, b in edges:
            children.setdefault(a, []).append(b)
        root = backward_chain(edges, goal)[0]
        cases.append((f"tree {i + 1} ({len(edges) + 1} nodes)", (children, root, goal)))
    maze = grid_maze(4, 4, seed=3)
    cases.append(("4x4 maze, cells are (row, col)", (maze, (0, 0), (3, 3))))
    for k in range(2):
        g, s, t = cyclic_graph(12, seed=10 + k)
        cases.append((f"graph with cycles {k + 1}", (g, s, t)))
    g = {0: [1], 1: [2], 2: [0], 3: [0]}
    cases.append(("unreachable goal (answer None)", (g, 0, 3)))
    cases.append(("start is the goal", ({0: [1], 1: [0]}, 1, 1)))
    return tuple(cases)


def _maze_cases():
    from toolkit.tasks import MazeSearch

    cases = []
    for size, seed in ((3, 301), (4, 302), (4, 303)):
        maze = MazeSearch(size=size).generate(1, seed=seed, split="test").structures[0]
        cases.append((f"{size}x{size} maze", ([tuple(e) for e in maze.edges], size * size)))
    cases.append(("2x2 grid where cell 3 is walled in", ([(0, 1), (2, 0)], 4)))
    return cases


def _backward_cases():
    trees = _tree_edges(8, 4, 4, seed=201) + _tree_edges(12, 8, 2, seed=202)
    out = [(f"tree {i + 1} ({len(e) + 1} nodes, path of {len(backward_chain(e, g)) - 1})", (e, g))
           for i, (e, g) in enumerate(trees)]
    out.append(("goal is the root", ([(3, 1), (3, 2), (1, 0)], 3)))
    return out


def _layers_cases():
    cases = []
    for name, (g, s, _) in _graph_cases()[:-2]:
        cases.append((name, (g, s)))
    diamond = {0: [2, 1], 1: [3], 2: [3], 3: [0]}
    cases.insert(0, ("diamond with a cycle back to the start", (diamond, 0)))
    return cases


def _compare_path(got, expected, args) -> str | None:
    """Exact match, plus a diagnosis for valid-but-longer paths (the shortest path is unique in every case)."""
    problem = diff_value(got, expected, name="path")
    if problem is None or expected is None or not isinstance(got, (list, tuple)) or len(got) < 2:
        return problem
    if "reverse order" in problem:
        return problem
    neighbors = args[0]
    steps_ok = all(b in neighbors.get(a, []) for a, b in zip(got, got[1:]))
    if steps_ok and list(got[:1]) == expected[:1] and list(got[-1:]) == expected[-1:] and len(got) > len(expected):
        return (f"your path is valid but has {len(got) - 1} steps; the shortest has {len(expected) - 1}: "
                "a queue (first in, first out) finds shortest paths, a stack does not")
    if not steps_ok:
        bad = next((a, b) for a, b in zip(got, got[1:]) if b not in neighbors.get(a, []))
        return f"{problem} (and {bad[0]!r} -> {bad[1]!r} is not an edge of the graph)"
    return problem


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "01.backward_chain", title="Backward chaining in a tree", difficulty=1, importance=5, minutes=8,
    reference=backward_chain, cases=_backward_cases,
    hints=["Every node except the root has exactly one parent, so you can walk *up* from the goal until you reach "
           "the root.",
           "Turn the edges into a lookup from child to parent, start a list with the goal and keep appending the "
           "parent of the last element while it has one; you collect goal .. root, and the answer runs root .. goal.",
           "`parent = {child: par for par, child in edges}`, then `while chain[-1] in parent: "
           "chain.append(parent[chain[-1]])` and return `chain[::-1]`."],
    mistakes=[Mistake("the path runs goal -> root: reverse it so it starts at the root", _chain_not_reversed),
              Mistake("the root is missing: keep walking up until the node has no parent, and include that node",
                      _chain_without_root),
              Mistake("the goal is missing: the path ends with the goal itself", _chain_without_goal),
              Mistake("you walked down the tree: your dict maps parent -> child, but each child has exactly one "
                      "parent, so map child -> parent", _chain_map_wrong_way)],
)

function_exercise(
    "01.maze_neighbors", title="From passages to neighbours", difficulty=1, importance=3, minutes=5,
    reference=maze_neighbors, cases=_maze_cases,
    hints=["A passage is open in both directions, and every cell needs an entry, even a walled-in one.",
           "Start with an empty list for every cell; for each passage (a, b) append b to a's list *and* a to b's "
           "list; sort the lists at the end.",
           "`out = {cell: [] for cell in range(n_cells)}`, append both ways in a loop over `passages`, then return "
           "`{cell: sorted(v) for cell, v in out.items()}`."],
    mistakes=[Mistake("passages are undirected: (a, b) also lets you walk from b to a", _maze_one_way),
              Mistake("sort each neighbour list", _maze_unsorted),
              Mistake("every cell needs an entry, even a walled-in cell with no open passage (empty list)",
                      _maze_only_seen_cells)],
)

function_exercise(
    "01.bfs", title="Breadth-first search", difficulty=2, importance=5, minutes=15,
    reference=bfs_path, cases=_graph_cases, compare=_compare_path, time_limit=2.0,
    hints=["Breadth-first search expands nodes in the order it discovers them (first in, first out) and remembers, "
           "for every node it has seen, the node it reached it from.",
           "Mark a node as seen when you *enqueue* it, not when you pop it, or graphs with cycles make you loop. "
           "When you pop the goal, follow the recorded predecessors back to the start and reverse; if the queue runs "
           "dry, return None.",
           "`came_from = {start: None}`, `queue = deque([start])`; in the loop `node = queue.popleft()`, and for "
           "each neighbour `m` not in `came_from`: `came_from[m] = node` and `queue.append(m)`."],
    mistakes=[Mistake("the path runs goal -> start: reverse it", _bfs_reversed),
              Mistake("the start node is missing: the path includes both ends", _bfs_no_start),
              Mistake("return None (not an empty list) when the goal cannot be reached",
                      _bfs_empty_when_unreachable),
              Mistake("this is the path a depth-first search finds: use a queue (popleft), not a stack (pop)",
                      _dfs_path)],
)

function_exercise(
    "01.bfs_layers", title="A search trace: BFS layers", difficulty=2, importance=3, minutes=10,
    reference=bfs_layers, cases=_layers_cases, time_limit=2.0,
    hints=["Layer k holds exactly the nodes at distance k: layer k+1 is every neighbour of a layer-k node that no "
           "earlier layer contains.",
           "Keep a set of the nodes seen so far; build each layer as a set (a node reached twice appears once), add "
           "it to the seen set, and stop when the next layer would be empty (do not append it). Sort each layer.",
           "Start with `layers = [[start]]` and `seen = {start}`; each round `nxt = sorted({m for v in layers[-1] "
           "for m in neighbors.get(v, []) if m not in seen})`."],
    mistakes=[Mistake("each layer should be sorted (`sorted(...)`)", _layers_unsorted),
              Mistake("there is an empty layer at the end: stop before appending an empty layer",
                      _layers_trailing_empty),
              Mistake("a node appears twice in one layer: build each layer as a set", _layers_mark_late),
              Mistake("layer k should hold only the nodes at distance exactly k, not everything seen so far",
                      _layers_cumulative)],
)
