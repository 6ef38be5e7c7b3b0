"""Draw trees, mazes and graphs with an optional per-node / per-cell overlay.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state), so it is safe
in widgets and tests. ``overlay`` is a dict ``{node_or_cell: value}`` or a 1-D tensor / array with one value per
node or cell; values are mapped through ``cmap`` and a colour bar is added. Pass ``ax`` to draw into an
existing Axes (its figure is returned).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

_NODE = "#dde3ea"
_PATH = "#d62728"


def _axes(ax: Any, size: tuple[float, float]) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size)
    return fig, fig.add_subplot(1, 1, 1)


def _overlay(overlay: Any, n: int, what: str) -> np.ndarray | None:
    """dict / tensor / array -> float array [n] with NaN where no value is given."""
    if overlay is None:
        return None
    vals = np.full(n, np.nan)
    if isinstance(overlay, dict):
        for k, v in overlay.items():
            if not 0 <= int(k) < n:
                raise ValueError(f"overlay key {k} is not a valid {what} (0..{n - 1})")
            vals[int(k)] = float(v)
        return vals
    arr = np.asarray(overlay.detach().cpu() if hasattr(overlay, "detach") else overlay, dtype=float).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"overlay has {arr.shape[0]} values; pass one per {what} ({n}) or a dict")
    return arr


def _colours(fig: Figure, ax: Any, vals: np.ndarray | None, n: int, cmap: str, label: str) -> list[Any]:
    if vals is None:
        return [_NODE] * n
    from matplotlib import cm, colors

    finite = vals[np.isfinite(vals)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = colors.Normalize(lo, hi if hi > lo else lo + 1e-9)
    mapper = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(mapper, ax=ax, fraction=0.046, pad=0.04, label=label)
    return [mapper.to_rgba(v) if np.isfinite(v) else _NODE for v in vals]


def _tree_xy(tree: Any) -> dict[int, tuple[float, float]]:
    """Leaves spaced evenly left to right; parents centred over their children; y = -depth."""
    kids: dict[int, list[int]] = {v: [] for v in range(tree.n_nodes)}
    for v, p in enumerate(tree.parent):
        if p >= 0:
            kids[p].append(v)
    xy: dict[int, tuple[float, float]] = {}
    next_x = [0.0]

    def place(v: int, d: int) -> float:
        if not kids[v]:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            x = float(np.mean([place(c, d + 1) for c in sorted(kids[v])]))
        xy[v] = (x, -float(d))
        return x

    place(tree.root, 0)
    return xy


def render_tree(tree: Any, overlay: Any = None, ax: Any = None, cmap: str = "viridis",
                overlay_label: str = "value") -> Figure:
    """Nodes labelled by id; the root->goal path in red; root drawn as a square, goal with a thick ring."""
    fig, ax = _axes(ax, (5.0, 3.6))
    xy = _tree_xy(tree)
    path = tree.path
    on_path = set(zip(path[:-1], path[1:]))
    for v, p in enumerate(tree.parent):
        if p >= 0:
            (x0, y0), (x1, y1) = xy[p], xy[v]
            hot = (p, v) in on_path
            ax.plot([x0, x1], [y0, y1], color=_PATH if hot else "#888", lw=2.5 if hot else 1.2, zorder=1)
    face = _colours(fig, ax, _overlay(overlay, tree.n_nodes, "node"), tree.n_nodes, cmap, overlay_label)
    for v, (x, y) in xy.items():
        ax.scatter([x], [y], s=520, c=[face[v]], marker="s" if v == tree.root else "o", zorder=2,
                   edgecolors=_PATH if v == tree.goal else "#333", linewidths=3 if v == tree.goal else 1)
        ax.text(x, y, str(v), ha="center", va="center", fontsize=10, zorder=3)
    ax.set_title(f"root {tree.root} → goal {tree.goal}  (path {' → '.join(map(str, path))})", fontsize=9)
    ax.set_axis_off()
    ax.margins(0.15)
    return fig


def render_maze(maze: Any, overlay: Any = None, ax: Any = None, cmap: str = "viridis",
                overlay_label: str = "value") -> Figure:
    """Walls as black lines, the solution as a red line, origin ``o`` and target ``x``; cell (0, 0) top-left."""
    n = maze.size
    fig, ax = _axes(ax, (4.2, 3.6))
    face = _colours(fig, ax, _overlay(overlay, n * n, "cell"), n * n, cmap, overlay_label)
    for v in range(n * n):
        r, c = divmod(v, n)
        ax.add_patch(_rect(c, r, face[v] if overlay is not None else "white"))
    open_pairs = {frozenset(e) for e in maze.edges}
    for v in range(n * n):
        r, c = divmod(v, n)
        if c < n - 1 and frozenset((v, v + 1)) not in open_pairs:
            ax.plot([c + 1, c + 1], [r, r + 1], color="black", lw=3)
        if r < n - 1 and frozenset((v, v + n)) not in open_pairs:
            ax.plot([c, c + 1], [r + 1, r + 1], color="black", lw=3)
    ax.plot([0, n, n, 0, 0], [0, 0, n, n, 0], color="black", lw=4)
    path = maze.path
    ax.plot([v % n + 0.5 for v in path], [v // n + 0.5 for v in path], color=_PATH, lw=2.5, alpha=0.8)
    for v, mark in ((maze.origin, "o"), (maze.target, "x")):
        ax.scatter([v % n + 0.5], [v // n + 0.5], s=140, marker=mark, color=_PATH, linewidths=3, zorder=3)
    ax.set_xlim(-0.1, n + 0.1)
    ax.set_ylim(n + 0.1, -0.1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"{n}x{n} maze, path length {len(path) - 1}", fontsize=9)
    return fig


def _rect(x: float, y: float, colour: Any) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="#ddd", lw=0.5, zorder=0)


def render_graph(graph: Any, overlay: Any = None, ax: Any = None, query: int = 0, cmap: str = "viridis",
                 overlay_label: str = "value") -> Figure:
    """Vertices in layers (longest path from a source); query ``query``'s source is a square, its target ringed."""
    V = graph.n_vertices
    fig, ax = _axes(ax, (5.5, 3.6))
    layer = [0] * V
    for _ in range(V):  # longest-path layering of a DAG
        for a, b in graph.edges:
            layer[b] = max(layer[b], layer[a] + 1)
    xy: dict[int, tuple[float, float]] = {}
    for d in sorted(set(layer)):
        members = [v for v in range(V) if layer[v] == d]
        for i, v in enumerate(members):
            xy[v] = (float(d), (len(members) - 1) / 2.0 - i + 0.35 * (d % 2))
    s, t, yes = graph.queries[query] if graph.queries else (-1, -1, False)
    for a, b in graph.edges:
        bend = 0.0 if layer[b] - layer[a] == 1 else 0.3  # long edges curve around the layers they skip
        ax.annotate("", xy=xy[b], xytext=xy[a], zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": "#777", "lw": 1.2, "shrinkA": 11, "shrinkB": 11,
                                "connectionstyle": f"arc3,rad={bend}"})
    face = _colours(fig, ax, _overlay(overlay, V, "vertex"), V, cmap, overlay_label)
    for v, (x, y) in xy.items():
        ax.scatter([x], [y], s=420, c=[face[v]], marker="s" if v == s else "o", zorder=2,
                   edgecolors=_PATH if v in (s, t) else "#333", linewidths=3 if v in (s, t) else 1)
        ax.text(x, y, f"v{v}", ha="center", va="center", fontsize=8, zorder=3)
    if graph.queries:
        ax.set_title(f"query {query}: v{s} → v{t}?  {'YES' if yes else 'NO'}", fontsize=9)
    ax.set_axis_off()
    ax.margins(0.12)
    return fig
