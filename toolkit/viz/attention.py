"""Static attention plots (for printing and for widgets); the interactive view is :func:`attention_heads`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from toolkit.viz.figure import subplots


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def attention_heatmap(pattern: Any, tokens: Sequence[str] | None = None, *, head_names: Sequence[str] | None = None,
                      query: int | None = None, title: str | None = None, causal: bool = True,
                      cmap: str = "Blues", ax: Any = None) -> Figure:
    """Attention probabilities as a query x key heatmap, one panel per head.

    Args:
        pattern: ``[seq, seq]`` (one head) or ``[n_heads, seq, seq]``, rows = query positions, columns = keys.
        tokens: the ``seq`` token strings used as tick labels (default: position numbers).
        head_names: panel titles, default ``H0, H1, ...``.
        query: outline this query row (the position a widget selected).
        causal: grey out the upper triangle (keys after the query), which a causal model cannot attend to.
        ax: draw into this Axes (single head only).
    """
    p = _as_numpy(pattern)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[1] != p.shape[2]:
        raise ValueError(f"pattern must be [seq, seq] or [n_heads, seq, seq], got shape {p.shape}")
    n_heads, seq = p.shape[0], p.shape[1]
    if tokens is not None and len(tokens) != seq:
        raise ValueError(f"{len(tokens)} tokens for a pattern over {seq} positions; pass exactly one token string "
                         "per position (crop padding from both)")
    names = list(head_names) if head_names is not None else [f"H{h}" for h in range(n_heads)]
    if len(names) != n_heads:
        raise ValueError(f"{len(names)} head names for {n_heads} heads")
    if query is not None and not 0 <= query < seq:
        raise ValueError(f"query={query} is outside the {seq} positions of the pattern")
    size = max(2.6, 0.16 * seq + 1.2)
    if ax is not None and n_heads != 1:
        raise ValueError("ax= works for a single head; pass pattern[h] or leave ax=None")
    fig, axes = subplots(1, n_heads, width=size * n_heads + 0.8, height=size, ax=ax)
    axes = np.atleast_1d(axes)
    labels = [str(t) for t in tokens] if tokens is not None else [str(i) for i in range(seq)]
    upper = np.triu(np.ones((seq, seq), dtype=bool), 1)
    image = None
    for h, axis in enumerate(axes):
        data = np.ma.masked_where(upper, p[h]) if causal else p[h]
        image = axis.imshow(data, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
        axis.set_facecolor("#eeeeee")
        step = max(1, seq // 24)
        axis.set_xticks(range(0, seq, step), labels[::step], rotation=90, fontsize=9)
        axis.set_yticks(range(0, seq, step), labels[::step] if h == 0 else [], fontsize=9)
        axis.set_title(names[h], fontsize=9)
        axis.set_xlabel("key", fontsize=9)
        if h == 0:
            axis.set_ylabel("query", fontsize=9)
        if query is not None:
            axis.add_patch(_row_box(query, seq))
    if image is not None and ax is None:
        fig.colorbar(image, ax=list(axes), fraction=0.04, pad=0.02, label="attention")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _row_box(row: int, seq: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((-0.5, row - 0.5), seq, 1, fill=False, edgecolor="#d62728", lw=1.5)


def token_strip(tokens: Sequence[str], values: Any = None, *, title: str | None = None, cmap: str = "viridis",
                vmin: float | None = None, vmax: float | None = None, highlight: int | None = None,
                label: str = "value", ax: Any = None) -> Figure:
    """A row of token boxes coloured by a per-position value (attention, activation, probe probability).

    ``values`` is ``[seq]`` with NaN (or None) where there is nothing to show; ``highlight`` outlines one
    position (e.g. the query). The boxes are one collection (``gid="tokens"``, one face colour per token).
    """
    from matplotlib import cm, colors
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle

    seq = len(tokens)
    vals = np.full(seq, np.nan) if values is None else _as_numpy(values).reshape(-1)
    if vals.shape[0] != seq:
        raise ValueError(f"{vals.shape[0]} values for {seq} tokens; pass one value per token")
    finite = vals[np.isfinite(vals)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    norm = colors.Normalize(lo, hi if hi > lo else lo + 1e-9)
    mapper = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig, axis = subplots(width=max(3.0, 0.42 * seq + 1.0), height=1.25, ax=ax)
    faces = mapper.to_rgba(np.nan_to_num(vals))
    faces[~np.isfinite(vals)] = (1, 1, 1, 1)
    boxes = PolyCollection([[(i, 0), (i + 0.95, 0), (i + 0.95, 1), (i, 1)] for i in range(seq)], facecolors=faces,
                           edgecolors="#999", linewidths=0.6)  # one artist for all boxes (redrawn per click)
    boxes.set_gid("tokens")
    axis.add_collection(boxes, autolim=False)
    for i, (tok, v, face) in enumerate(zip(tokens, vals, faces)):
        dark = np.isfinite(v) and sum(face[:3]) < 1.5
        axis.text(i + 0.475, 0.5, str(tok), ha="center", va="center", fontsize=9,
                  color="white" if dark else "black")
    if highlight is not None:
        axis.add_patch(Rectangle((highlight - 0.05, -0.08), 1.05, 1.16, fill=False, edgecolor="#d62728", lw=2))
    axis.set_xlim(-0.1, seq + 0.1)
    axis.set_ylim(-0.15, 1.15)
    axis.set_axis_off()
    if finite.size and ax is None:
        fig.colorbar(mapper, ax=axis, fraction=0.02, pad=0.01, label=label)
    if title:
        axis.set_title(title, fontsize=9)
    return fig


