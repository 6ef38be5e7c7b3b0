"""Heatmaps as HTML tables: instant to produce (no matplotlib), crisp at any zoom, a tooltip on every cell.

The explorers use these for views that change on every click; the matplotlib versions are for printing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from toolkit.viz.attention import _as_numpy


def colour(value: float, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "Blues") -> str:
    """``#rrggbb`` for a value (NaN -> light grey)."""
    if not np.isfinite(value):
        return "#eeeeee"
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    frac = (value - vmin) / (vmax - vmin) if vmax > vmin else 0.5
    return to_hex(colormaps[cmap](float(np.clip(frac, 0.0, 1.0))))


def _lut(cmap: str, n: int = 64) -> list[str]:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in colormaps[cmap](np.linspace(0, 1, n))]


def heatmap_html(matrix: Any, row_labels: Sequence[Any] | None = None, col_labels: Sequence[Any] | None = None, *,
                 vmin: float | None = None, vmax: float | None = None, cmap: str = "Blues",
                 highlight_row: int | None = None, highlight_col: int | None = None, title: str = "",
                 annotate: bool = False, cell_px: int = 16, css_class: str = "searchlight-heatmap",
                 row_name: str = "row", col_name: str = "col") -> str:
    """A ``[rows, cols]`` matrix as an HTML ``<table>``; NaN cells grey, one row / column outlined.

    Cells carry ``title`` tooltips (``row, col: value``) and ``data-value`` attributes (handy in browser tests).
    """
    m = _as_numpy(matrix)
    if m.ndim != 2:
        raise ValueError(f"heatmap_html needs a 2-D matrix, got shape {m.shape}")
    rows = [str(r) for r in (row_labels if row_labels is not None else range(m.shape[0]))]
    cols = [str(c) for c in (col_labels if col_labels is not None else range(m.shape[1]))]
    if len(rows) != m.shape[0] or len(cols) != m.shape[1]:
        raise ValueError(f"{len(rows)} row / {len(cols)} column labels for a {m.shape[0]} x {m.shape[1]} matrix")
    finite = m[np.isfinite(m)]
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    lut = _lut(cmap)
    esc = html.escape
    width = f"{cell_px * 2.6 if annotate else cell_px}px"
    out = [f"<table class='{css_class}' style='border-collapse:collapse;font:12px monospace;line-height:1'>"]
    if title:
        out.append(f"<caption style='font:13px sans-serif;text-align:left'>{esc(title)}</caption>")
    out.append("<tr><th></th>" + "".join(
        f"<th style='writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;padding:1px'>{esc(c)}</th>"
        for c in cols) + "</tr>")
    n = len(lut)
    with np.errstate(invalid="ignore"):
        frac = np.clip((m - lo) / (hi - lo), 0, 1) if hi > lo else np.full(m.shape, 0.5)
    k = np.where(np.isfinite(m), (np.nan_to_num(frac) * (n - 1)).astype(int), -1).tolist()  # -1: NaN
    bgs, fgs = [*lut, "#eeeeee"], ["white" if i > n * 0.6 else "black" for i in range(n)] + ["black"]
    tips = [f", {esc(col_name)} {esc(c)}: " for c in cols]
    rings = ["outline:2px solid #d62728;" if j == highlight_col else "" for j in range(len(cols))]
    cell = f";width:{width};height:{cell_px}px;padding:0;text-align:center;border:1px solid #fff;"
    for i, (r, row_vals, row_k) in enumerate(zip(rows, m.tolist(), k)):  # one string per cell, no numpy in the loop
        ring = "outline:2px solid #d62728;" if i == highlight_row else ""
        head = f"<td title='{esc(row_name)} {esc(r)}"
        cells = "".join(
            f"{head}{tip}{v:.3f}' data-value='{v:.4f}' style='background:{bgs[kk]};color:{fgs[kk]}{cell}{rg}'>"
            f"{f'{v:.2f}' if annotate and kk >= 0 else ''}</td>"
            for v, kk, tip, rg in zip(row_vals, row_k, tips, rings))
        out.append(f"<tr style='{ring}'><th style='font-weight:normal;text-align:right;padding-right:3px'>{esc(r)}"
                   f"</th>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def attention_html(pattern: Any, tokens: Sequence[str], *, query: int | None = None, title: str = "",
                   causal: bool = True) -> str:
    """One head's ``[seq, seq]`` pattern (rows: query, columns: key) as an HTML heatmap."""
    p = _as_numpy(pattern).copy()
    if p.ndim != 2 or p.shape[0] != p.shape[1] or p.shape[0] != len(tokens):
        raise ValueError(f"pattern must be [seq, seq] with one token per position; got {p.shape} and "
                         f"{len(tokens)} tokens")
    if causal:
        p[np.triu(np.ones_like(p, dtype=bool), 1)] = np.nan
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    return heatmap_html(p, labels, labels, vmin=0.0, vmax=1.0, cmap="Blues", highlight_row=query, title=title,
                        css_class="searchlight-heatmap searchlight-attention", row_name="query", col_name="key")
