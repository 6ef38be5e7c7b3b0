"""Tasks drawn with a value per node / cell: wraps ``task.render`` and maps token positions to task elements.

A model's quantities live at token *positions* (attention from a query, a latent's activation, a probe's
prediction); a task's picture has *elements* (tree nodes, maze cells, graph vertices). The tokens name the
elements (``S3`` / ``T3`` are node 3 of a tree), so :func:`position_elements` maps positions to elements and
:func:`positions_to_overlay` pools per-position values onto them.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from toolkit.viz.attention import _as_numpy
from toolkit.viz.figure import subplots


def task_legend(task: Any) -> str:
    """What the marks of ``task.render`` mean (the colours are the overlay's, see its colour bar)."""
    if hasattr(task, "n_nodes"):
        return "square: the root; thick red ring: the goal; red edges: the root → goal path"
    if hasattr(task, "n_vertices"):
        return "square: the query's source; thick red ring: its target"
    if hasattr(task, "size"):
        return "black lines: walls; red o: the origin; red x: the target; red line: the solution path"
    return ""


def n_elements(task: Any) -> int:
    """How many nodes / cells / vertices a task's picture has (the length of an overlay)."""
    hook = getattr(task, "n_elements", None)
    if hook is not None:
        return int(hook() if callable(hook) else hook)
    for attr in ("n_nodes", "n_vertices"):
        if hasattr(task, attr):
            return int(getattr(task, attr))
    if hasattr(task, "size"):
        size = task.size
        return int(size[0] * size[1]) if isinstance(size, tuple | list) else int(size) ** 2
    raise TypeError(f"cannot tell how many elements a {type(task).__name__} draws; it needs n_nodes, n_vertices or "
                    "size (or an n_elements attribute)")


def element_table(task: Any) -> np.ndarray:
    """``[d_vocab]`` int array: the element each token id names, -1 for tokens that name none (``PAD``, ``:``).

    Uses ``task.token_element(token_str)`` when the task defines it; otherwise reads the trailing number of
    the token (``S3``, ``T3``, ``V3`` -> 3; ``(r,c)`` -> ``r * width + c``).
    """
    hook = getattr(task, "token_element", None)
    n = n_elements(task)
    table = np.full(len(task.vocab), -1, dtype=np.int64)
    width = int(np.sqrt(n)) if not hasattr(task, "size") else (
        task.size[1] if isinstance(task.size, tuple | list) else int(task.size))
    for i, tok in enumerate(task.vocab.tokens):
        if hook is not None:
            e = hook(tok)
            table[i] = -1 if e is None else int(e)
            continue
        cell = re.fullmatch(r"\(?(\d+)\s*,\s*(\d+)\)?", tok)
        if cell:
            table[i] = int(cell.group(1)) * width + int(cell.group(2))
            continue
        num = re.fullmatch(r"[A-Za-z_]*?(\d+)", tok)
        if num and int(num.group(1)) < n:
            table[i] = int(num.group(1))
    return table


def position_elements(task: Any, tokens: Any) -> torch.Tensor:
    """LongTensor ``[seq]`` (or ``[n, seq]``): the element named by the token at each position, -1 if none."""
    t = torch.as_tensor(tokens, dtype=torch.long)
    return torch.from_numpy(element_table(task))[t]


def positions_to_overlay(task: Any, tokens: Any, values: Any, reduce: str = "sum") -> np.ndarray:
    """Pool per-position ``values [seq]`` onto elements: ``[n_elements]`` floats, NaN where no position maps.

    ``reduce``: ``"sum"`` (attention mass on a node across its tokens), ``"max"`` or ``"mean"``.
    """
    if reduce not in ("sum", "max", "mean"):
        raise ValueError(f"reduce={reduce!r}; valid: 'sum', 'max', 'mean'")
    elem = position_elements(task, tokens).numpy()
    vals = _as_numpy(values).reshape(-1)
    if vals.shape[0] != elem.shape[0]:
        raise ValueError(f"{vals.shape[0]} values for {elem.shape[0]} token positions; pass one per position")
    out = np.full(n_elements(task), np.nan)
    for e in np.unique(elem[(elem >= 0) & np.isfinite(vals)]):
        v = vals[(elem == e) & np.isfinite(vals)]
        out[e] = v.sum() if reduce == "sum" else v.max() if reduce == "max" else v.mean()
    return out


def render(task: Any, example: Any, overlay: Any = None, *, title: str | None = None, ax: Any = None,
           width: float = 4.6, height: float = 3.4) -> Figure:
    """``task.render(example, overlay)`` drawn into a :class:`~toolkit.viz.figure.VizFigure`.

    ``overlay``: one value per element (``[n_elements]`` or ``{element: value}``), e.g. a probe's probability
    that each node is on the path, or :func:`positions_to_overlay` of attention weights.
    """
    if not hasattr(task, "render"):
        raise TypeError(f"{type(task).__name__} cannot be drawn: it has no render(example, overlay, ax) method")
    fig, axis = subplots(width=width, height=height, ax=ax)
    task.render(example, overlay=overlay, ax=axis)
    if title:
        axis.set_title(title + "\n" + axis.get_title(), fontsize=9)
    return fig


def render_positions(task: Any, example: Any, values: Any, *, reduce: str = "sum", title: str | None = None,
                     ax: Any = None) -> Figure:
    """Per-position values (attention from a query, a latent's activation) drawn on the task's elements."""
    return render(task, example, positions_to_overlay(task, example.tokens, values, reduce), title=title, ax=ax)


def render_grid(task: Any, examples: list[Any], overlays: list[Any] | None = None,
                titles: list[str] | None = None, ncols: int = 3) -> Figure:
    """Several examples side by side (e.g. a latent's top-activating examples), one overlay each."""
    n = len(examples)
    if n == 0:
        raise ValueError("render_grid needs at least one example")
    overlays = overlays if overlays is not None else [None] * n
    titles = titles if titles is not None else [None] * n
    if len(overlays) != n or len(titles) != n:
        raise ValueError(f"{n} examples but {len(overlays)} overlays and {len(titles)} titles; give one each")
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = subplots(nrows, ncols, width=3.4 * ncols, height=2.7 * nrows)
    axes = np.atleast_1d(axes).reshape(-1)
    for axis, ex, ov, ti in zip(axes, examples, overlays, titles):
        task.render(ex, overlay=ov, ax=axis)
        if ti:
            axis.set_title(ti, fontsize=8)
    for axis in axes[n:]:
        axis.set_axis_off()
    return fig
