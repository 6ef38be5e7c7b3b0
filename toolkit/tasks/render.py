"""Draw trees, mazes and graphs with an optional per-node / per-cell overlay.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state), so it is safe
in widgets and tests. ``overlay`` is a dict ``{node_or_cell: value}`` or a 1-D tensor / array with one value per
node or cell; values are mapped through ``cmap`` (from ``vmin`` to ``vmax``, default the overlay's range) and a
colour bar is added unless ``colorbar=False`` (e.g. several panels sharing one scale). Pass ``ax`` to draw into an
existing Axes (its figure is returned).

Speed: nodes, edges and walls are drawn as a few collections (one artist per kind, not one per node), and the
axis limits are set explicitly, so a widget can clear an Axes and draw another example into it cheaply.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from toolkit._figure import NotebookFigure

_NODE = "#dde3ea"
_PATH = "#d62728"


def _axes(ax: Any, size: tuple[float, float]) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    fig = NotebookFigure(figsize=size)
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


def value_range(vals: Any, vmin: float | None = None, vmax: float | None = None) -> tuple[float, float]:
    """``(lo, hi)`` of the finite values (``(0, 1)`` when none), with ``vmin`` / ``vmax`` taking precedence."""
    v = np.asarray(vals, dtype=float).reshape(-1)
    finite = v[np.isfinite(v)]
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    return lo, (hi if hi > lo else lo + 1e-9)


def _colours(fig: Figure, ax: Any, vals: np.ndarray | None, n: int, cmap: str, label: str,
             vmin: float | None = None, vmax: float | None = None, colorbar: bool = True) -> np.ndarray:
    """``[n, 4]`` RGBA face colours: ``cmap`` over ``vmin .. vmax`` (default the values' range), plain where NaN."""
    from matplotlib import cm, colors

    if vals is None:
        return np.tile(colors.to_rgba(_NODE), (n, 1))
    mapper = cm.ScalarMappable(norm=colors.Normalize(*value_range(vals, vmin, vmax)), cmap=cmap)
    if colorbar:
        fig.colorbar(mapper, ax=ax, fraction=0.046, pad=0.04, label=label)
    face = mapper.to_rgba(np.nan_to_num(vals))
    face[~np.isfinite(vals)] = colors.to_rgba(_NODE)
    return face


def _limits(ax: Any, pts: np.ndarray, margin: float) -> None:
    """Data limits with ``margin`` (a fraction of the span, like ``ax.margins``) on every side."""
    for setter, lo, hi in ((ax.set_xlim, pts[:, 0].min(), pts[:, 0].max()), (ax.set_ylim, pts[:, 1].min(),
                                                                             pts[:, 1].max())):
        pad = margin * (hi - lo) if hi > lo else 0.5
        setter(lo - pad, hi + pad)


def _nodes(ax: Any, pts: np.ndarray, face: np.ndarray, size: float, square: int, rings: set[int],
           labels: list[str], fontsize: float) -> None:
    """All nodes as two collections (``square`` drawn as a square, the rest as circles), ringed in red where
    in ``rings``, each labelled; the collections carry ``gid="nodes"`` (and ``nodes`` lists their node ids)."""
    n = len(pts)
    edge = np.array([_PATH if v in rings else "#333" for v in range(n)], dtype=object)
    width = np.array([3.0 if v in rings else 1.0 for v in range(n)])
    from matplotlib.collections import PathCollection
    from matplotlib.markers import MarkerStyle
    from matplotlib.transforms import IdentityTransform

    for marker, ids in (("o", [v for v in range(n) if v != square]), ("s", [square] if 0 <= square < n else [])):
        if ids:  # what ax.scatter builds, without its argument parsing and autoscaling (~5x cheaper, measured)
            style = MarkerStyle(marker)
            col = PathCollection([style.get_path().transformed(style.get_transform())], sizes=[size] * len(ids),
                                 offsets=pts[ids], offset_transform=ax.transData, facecolors=face[ids],
                                 edgecolors=list(edge[ids]), linewidths=width[ids], zorder=2)
            col.set_transform(IdentityTransform())  # marker sizes in points, placed at data offsets
            col.set_gid("nodes")
            col.nodes = list(ids)
            ax.add_collection(col, autolim=False)
    dark = face[:, :3] @ np.array([0.299, 0.587, 0.114]) < 0.45  # white labels on dark nodes
    for v in range(n):
        ax.text(pts[v, 0], pts[v, 1], labels[v], ha="center", va="center", fontsize=fontsize, zorder=3,
                color="white" if dark[v] else "black")


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
                overlay_label: str = "value", *, vmin: float | None = None, vmax: float | None = None,
                colorbar: bool = True) -> Figure:
    """Nodes labelled by id; the root->goal path in red; root drawn as a square, goal with a thick ring."""
    from matplotlib.collections import LineCollection

    fig, ax = _axes(ax, (5.0, 3.6))
    xy = _tree_xy(tree)
    pts = np.array([xy.get(v, (np.nan, np.nan)) for v in range(tree.n_nodes)], dtype=float)
    path = tree.path
    on_path = set(zip(path[:-1], path[1:]))
    edges = [(p, v) for v, p in enumerate(tree.parent) if p >= 0]
    hot = [(p, v) in on_path for p, v in edges]
    ax.add_collection(LineCollection([[xy[p], xy[v]] for p, v in edges], colors=[_PATH if h else "#888" for h in hot],
                                     linewidths=[2.5 if h else 1.2 for h in hot], zorder=1), autolim=False)
    face = _colours(fig, ax, _overlay(overlay, tree.n_nodes, "node"), tree.n_nodes, cmap, overlay_label, vmin, vmax,
                    colorbar)
    _nodes(ax, pts, face, 520, tree.root, {tree.goal}, [str(v) for v in range(tree.n_nodes)], 10)
    ax.set_title(f"root {tree.root} → goal {tree.goal}  (path {' → '.join(map(str, path))})", fontsize=9)
    ax.set_axis_off()
    _limits(ax, pts[np.isfinite(pts[:, 0])], 0.15)
    return fig


def render_maze(maze: Any, overlay: Any = None, ax: Any = None, cmap: str = "viridis",
                overlay_label: str = "value", *, vmin: float | None = None, vmax: float | None = None,
                colorbar: bool = True) -> Figure:
    """Walls as black lines, the solution as a red line, origin ``o`` and target ``x``; cell (0, 0) top-left."""
    from matplotlib.collections import LineCollection, PolyCollection

    n = maze.size
    fig, ax = _axes(ax, (4.2, 3.6))
    vals = _overlay(overlay, n * n, "cell")
    face = _colours(fig, ax, vals, n * n, cmap, overlay_label, vmin, vmax, colorbar) if vals is not None else "white"
    rows, cols = np.divmod(np.arange(n * n), n)
    squares = np.stack([np.stack([cols, rows], 1) + d for d in ((0, 0), (1, 0), (1, 1), (0, 1))], 1)
    cells = PolyCollection(squares, facecolors=face, edgecolors="#ddd", linewidths=0.5, zorder=0)
    cells.set_gid("cells")
    ax.add_collection(cells, autolim=False)
    open_pairs = {frozenset(e) for e in maze.edges}
    walls = []
    for v in range(n * n):
        r, c = divmod(v, n)
        if c < n - 1 and frozenset((v, v + 1)) not in open_pairs:
            walls.append([(c + 1, r), (c + 1, r + 1)])
        if r < n - 1 and frozenset((v, v + n)) not in open_pairs:
            walls.append([(c, r + 1), (c + 1, r + 1)])
    ax.add_collection(LineCollection(walls, colors="black", linewidths=3), autolim=False)
    ax.plot([0, n, n, 0, 0], [0, 0, n, n, 0], color="black", lw=4, scalex=False, scaley=False)
    path = maze.path
    ax.plot([v % n + 0.5 for v in path], [v // n + 0.5 for v in path], color=_PATH, lw=2.5, alpha=0.8,
            scalex=False, scaley=False)
    for v, mark in ((maze.origin, "o"), (maze.target, "x")):
        ax.plot([v % n + 0.5], [v // n + 0.5], ls="none", ms=11.8, marker=mark, color=_PATH, mew=3, zorder=3,
                scalex=False, scaley=False)
    ax.set_xlim(-0.1, n + 0.1)
    ax.set_ylim(n + 0.1, -0.1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"{n}x{n} maze, path length {len(path) - 1}", fontsize=9)
    return fig


def render_graph(graph: Any, overlay: Any = None, ax: Any = None, query: int = 0, cmap: str = "viridis",
                 overlay_label: str = "value", *, vmin: float | None = None, vmax: float | None = None,
                 colorbar: bool = True) -> Figure:
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
    face = _colours(fig, ax, _overlay(overlay, V, "vertex"), V, cmap, overlay_label, vmin, vmax, colorbar)
    pts = np.array([xy[v] for v in range(V)], dtype=float)
    _nodes(ax, pts, face, 420, s, {s, t}, [f"v{v}" for v in range(V)], 8)
    if graph.queries:
        ax.set_title(f"query {query}: v{s} → v{t}?  {'YES' if yes else 'NO'}", fontsize=9)
    ax.set_axis_off()
    _limits(ax, pts, 0.12)
    return fig
