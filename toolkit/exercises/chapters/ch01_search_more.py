"""Tutorial 01, part 2: depth-first search and A* (best-first search with a heuristic), written by the learner.

Cases: the graphs of ``ch01_search`` (trees, a grid maze, graphs with cycles, an unreachable goal) for DFS, and
open grids with walls, where A*'s order of expansion depends on its priority, for A*.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Any

from toolkit.exercises.chapters.ch01_search import _compare_path, _graph_cases, bfs_path
from toolkit.exercises.compare import diff_value
from toolkit.exercises.core import Mistake, function_exercise

Graph = dict[Hashable, list[Hashable]]


# --- references -------------------------------------------------------------------------------------------


def dfs_path(neighbors: Graph, start: Hashable, goal: Hashable) -> list | None:
    """The start -> goal path depth-first search finds (not necessarily the shortest), or None if unreachable.

    Use an explicit stack of ``(node, came_from)`` pairs; a node counts as visited when it is *popped*; push the
    neighbours in reverse order, so that they are explored in the order ``neighbors[node]`` lists them (the same
    path as the recursive version)."""
    came_from: dict = {}
    stack = [(start, None)]
    while stack:
        node, prev = stack.pop()
        if node in came_from:
            continue
        came_from[node] = prev
        if node == goal:
            path = [node]
            while came_from[path[-1]] is not None:
                path.append(came_from[path[-1]])
            return path[::-1]
        for nxt in reversed(neighbors.get(node, [])):
            if nxt not in came_from:
                stack.append((nxt, node))
    return None


def astar(neighbors: Graph, start: Hashable, goal: Hashable, h: dict) -> tuple[list | None, list]:
    """A* with unit step costs and heuristic ``h[node]``: returns ``(path or None, expanded)``.

    Keep a priority queue of ``(g + h[node], tie, node)`` with ``tie`` a counter that grows with every push (equal
    priorities leave in the order they were pushed). Pop; skip a node already expanded; append it to
    ``expanded``; stop when it is the goal; otherwise push every neighbour whose cost ``g + 1`` beats the best
    cost known for it (remember its predecessor)."""
    g = {start: 0}
    came_from = {start: None}
    queue = [(h[start], 0, start)]
    tie = 1
    expanded: list = []
    done: set = set()
    while queue:
        _, _, node = heapq.heappop(queue)
        if node in done:
            continue
        done.add(node)
        expanded.append(node)
        if node == goal:
            path = [node]
            while came_from[path[-1]] is not None:
                path.append(came_from[path[-1]])
            return path[::-1], expanded
        for nxt in neighbors.get(node, []):
            cost = g[node] + 1
            if nxt not in g or cost < g[nxt]:
                g[nxt], came_from[nxt] = cost, node
                heapq.heappush(queue, (cost + h[nxt], tie, nxt))
                tie += 1
    return None, expanded


# --- plausible mistakes -----------------------------------------------------------------------------------


def _dfs_bfs(neighbors, start, goal):  # a queue instead of a stack: that is BFS
    return bfs_path(neighbors, start, goal)


def _dfs_not_reversed(neighbors, start, goal):
    return dfs_path({k: list(reversed(v)) for k, v in neighbors.items()}, start, goal)


def _dfs_mark_on_push(neighbors, start, goal):
    came_from = {start: None}
    stack = [start]
    while stack:
        node = stack.pop()
        if node == goal:
            path = [node]
            while came_from[path[-1]] is not None:
                path.append(came_from[path[-1]])
            return path[::-1]
        for nxt in reversed(neighbors.get(node, [])):
            if nxt not in came_from:
                came_from[nxt] = node
                stack.append(nxt)
    return None


def _dfs_empty(neighbors, start, goal):
    path = dfs_path(neighbors, start, goal)
    return [] if path is None else path


def _astar_variant(neighbors, start, goal, h, priority="f", ties=True, goal_on_push=False):
    def prio(cost, node):
        return {"f": cost + h[node], "g": cost, "h": h[node]}[priority]

    g = {start: 0}
    came_from = {start: None}
    queue = [(prio(0, start), 0, start) if ties else (prio(0, start), start)]
    tie, expanded, done = 1, [], set()
    while queue:
        node = heapq.heappop(queue)[-1]
        if node in done:
            continue
        done.add(node)
        expanded.append(node)
        if node == goal:
            break
        for nxt in neighbors.get(node, []):
            cost = g[node] + 1
            if nxt not in g or cost < g[nxt]:
                g[nxt], came_from[nxt] = cost, node
                if goal_on_push and nxt == goal:
                    queue = []
                    break
                heapq.heappush(queue, (prio(cost, nxt), tie, nxt) if ties else (prio(cost, nxt), nxt))
                tie += 1
        if goal_on_push and goal in came_from:
            break
    if goal not in came_from:
        return None, expanded
    path = [goal]
    while came_from[path[-1]] is not None:
        path.append(came_from[path[-1]])
    return path[::-1], expanded


def _astar_uniform(neighbors, start, goal, h):
    return _astar_variant(neighbors, start, goal, h, priority="g")


def _astar_greedy(neighbors, start, goal, h):
    return _astar_variant(neighbors, start, goal, h, priority="h")


def _astar_ties_by_node(neighbors, start, goal, h):
    return _astar_variant(neighbors, start, goal, h, ties=False)


def _astar_goal_on_push(neighbors, start, goal, h):
    return _astar_variant(neighbors, start, goal, h, goal_on_push=True)


# --- cases ------------------------------------------------------------------------------------------------


def open_grid(rows: int, cols: int, walls: set) -> Graph:
    """A grid of cells ``(row, col)`` with 4-neighbour moves; ``walls`` are blocked cells."""
    cells = [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in walls]
    return {(r, c): [(r + dr, c + dc) for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1))
                     if (r + dr, c + dc) in cells] for r, c in cells}


def manhattan(neighbors: Graph, goal: tuple[int, int]) -> dict:
    return {cell: abs(cell[0] - goal[0]) + abs(cell[1] - goal[1]) for cell in neighbors}


def _dfs_cases():
    disagree = {0: [4, 2], 1: [], 2: [6, 4], 3: [], 4: [2, 5], 5: [6], 6: [5, 1]}
    return [("a graph where depth-first orders disagree", (disagree, 0, 6)), *_graph_cases()]


def _astar_cases():
    out = []
    wall = {(1, 1), (1, 2), (1, 3), (2, 3), (3, 3)}  # a hook that traps a greedy search
    g1 = open_grid(5, 5, wall)
    out.append(("5x5 grid with a hook-shaped wall", (g1, (2, 2), (2, 4), manhattan(g1, (2, 4)))))
    g2 = open_grid(4, 6, {(0, 2), (1, 2), (2, 2)})
    out.append(("4x6 grid with a wall to walk around", (g2, (0, 0), (0, 5), manhattan(g2, (0, 5)))))
    g3 = open_grid(3, 3, set())
    out.append(("open 3x3 grid, corner to corner", (g3, (0, 0), (2, 2), manhattan(g3, (2, 2)))))
    g4 = open_grid(3, 3, {(0, 1), (1, 1), (2, 1)})
    out.append(("the goal is walled off", (g4, (0, 0), (0, 2), manhattan(g4, (0, 2)))))
    return out


def _cmp_dfs(got: Any, expected: list | None, args: tuple) -> str | None:
    problem = diff_value(got, expected, name="path")
    if problem is None or not isinstance(got, (list, tuple)) or len(got) < 2:
        return problem
    bad = next(((a, b) for a, b in zip(got, got[1:]) if b not in args[0].get(a, [])), None)
    return f"{problem} (and {bad[0]!r} -> {bad[1]!r} is not an edge of the graph)" if bad else problem


def _cmp_astar(got: Any, expected: tuple, args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(path, expanded)`"
    problem = _compare_path(got[0], expected[0], args)
    if problem:
        return problem
    return diff_value(list(got[1]) if isinstance(got[1], (list, tuple)) else got[1], expected[1], name="expanded")


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "01.dfs", title="Depth-first search with a stack", difficulty=2, importance=4, minutes=12,
    reference=dfs_path, cases=_dfs_cases, compare=_cmp_dfs, time_limit=2.0,
    hints=["Depth-first search always continues from the node it reached most recently: a stack (last in, first out) "
           "where breadth-first search had a queue.",
           "Push `(node, came_from)` pairs; when you pop a node that is already visited, skip it; otherwise record "
           "where it came from. Push the neighbours in reverse, so the first listed one is popped first.",
           "`stack = [(start, None)]`; loop: `node, prev = stack.pop()`; `if node in came_from: continue`; "
           "`came_from[node] = prev`; at the goal, walk back; else `for nxt in reversed(neighbors.get(node, [])): "
           "stack.append((nxt, node))`."],
    mistakes=[Mistake("this is the path breadth-first search finds: use a stack (pop from the end), not a queue",
                      _dfs_bfs),
              Mistake("explore the neighbours in the order they are listed: push them in reverse, so the first one "
                      "is popped first", _dfs_not_reversed),
              Mistake("mark a node visited when you *pop* it (as the recursive version does on entry), not when you "
                      "push it", _dfs_mark_on_push),
              Mistake("return None (not an empty list) when the goal cannot be reached", _dfs_empty)],
)

function_exercise(
    "01.astar", title="A*: best-first search with a heuristic", difficulty=3, importance=4, minutes=20,
    reference=astar, cases=_astar_cases, compare=_cmp_astar, time_limit=2.0,
    hints=["A* expands the node with the lowest estimated total cost: the steps taken so far plus the heuristic's "
           "guess of the steps still needed. With a guess that never overestimates, the first time the goal is "
           "expanded its path is a shortest one.",
           "Use `heapq` with entries `(g + h[node], tie, node)`: the counter `tie` makes equal priorities leave in "
           "push order. Test for the goal when you *pop* it, not when you push it, and skip nodes popped before.",
           "Loop: `_, _, node = heapq.heappop(queue)`; `if node in done: continue`; `done.add(node)`; "
           "`expanded.append(node)`; if goal, walk `came_from` back; for each neighbour, `cost = g[node] + 1` and if "
           "`nxt not in g or cost < g[nxt]`: record it and `heapq.heappush(queue, (cost + h[nxt], tie, nxt))`."],
    mistakes=[Mistake("order the queue by g + h (steps so far plus the heuristic), not by g alone: that is "
                      "uniform-cost search, which expands more nodes", _astar_uniform),
              Mistake("order the queue by g + h, not by h alone: greedy best-first search can return a longer path",
                      _astar_greedy),
              Mistake("break ties by push order (a counter in the heap entries), not by comparing the nodes",
                      _astar_ties_by_node),
              Mistake("test for the goal when you pop it (expand it), not when you first push it",
                      _astar_goal_on_push)],
)
