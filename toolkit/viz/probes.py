"""Probe results: depth x label heatmaps (with selectivity / vs random-init / vs baseline), score-vs-depth curves,
confusion matrices. Names follow :mod:`toolkit.viz.names`.

The plots read a *long table*, one row per (label, layer) fit: a ``probes.sweep(...)`` result (anything with
``.table()``), a pandas DataFrame, or a list of dicts. Column names are arguments, so any table works::

    viz.probe_heatmap(result, value="score", control="control")        # score | control | selectivity
    viz.probe_heatmap(result, value="score", control="random_init")    # score | random_init | vs random-init
    viz.probe_curves(result, err="score_std", baseline="baseline")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from toolkit.viz.attention import _as_numpy
from toolkit.viz.figure import subplots
from toolkit.viz.names import depth_name, difference_name, resid_depth


def records(table: Any) -> list[dict[str, Any]]:
    """A sweep result / DataFrame / list of dicts -> list of dicts (one per row)."""
    if hasattr(table, "table") and callable(table.table):
        table = table.table()
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        return list(table.to_dict("records"))
    if isinstance(table, dict):
        keys = list(table)
        n = len(table[keys[0]]) if keys else 0
        return [{k: table[k][i] for k in keys} for i in range(n)]
    rows = list(table)
    if rows and not isinstance(rows[0], dict):
        raise TypeError("expected a sweep result, a DataFrame or a list of dicts, got rows of "
                        f"{type(rows[0]).__name__}")
    return rows


def _need(rows: list[dict[str, Any]], *cols: str | None) -> None:
    if not rows:
        raise ValueError("the probe table is empty; run the sweep on at least one label and layer")
    have = set(rows[0])
    missing = [c for c in cols if c is not None and c not in have]
    if missing:
        raise KeyError(f"column(s) {missing} not in the probe table; its columns are {sorted(have)}")


def _order(values: Sequence[Any]) -> list[Any]:
    seen = list(dict.fromkeys(values))
    if seen and all(isinstance(v, str) and resid_depth(v) is not None for v in seen):
        return sorted(seen, key=resid_depth)  # residual-stream hooks: by depth, not alphabetically
    try:
        return sorted(seen)
    except TypeError:
        return seen


def pivot(table: Any, row: str = "label", col: str = "layer", value: str = "score") -> tuple[list, list, np.ndarray]:
    """``(row_keys, col_keys, matrix [rows, cols])`` from a long table (NaN where a pair is missing)."""
    rows = records(table)
    _need(rows, row, col, value)
    rk = list(dict.fromkeys(r[row] for r in rows))
    ck = _order([r[col] for r in rows])
    mat = np.full((len(rk), len(ck)), np.nan)
    for r in rows:
        v = r[value]
        mat[rk.index(r[row]), ck.index(r[col])] = np.nan if v is None else float(v)
    return rk, ck, mat


def probe_heatmap(table: Any, *, row: str = "label", col: str = "layer", value: str = "score",
                  control: str | None = None, annotate: bool = True, selected: tuple[Any, Any] | None = None,
                  cmap: str = "viridis", title: str | None = None) -> Figure:
    """Heatmap of ``value`` over (row, col); with ``control`` also that column and ``value - control`` side by
    side, named by :func:`~toolkit.viz.names.difference_name` (``control="control"``: selectivity;
    ``"random_init"``: vs random-init; ``"baseline"``: vs baseline). Hook names in ``col`` are shown as depths.
    ``selected=(row_key, col_key)`` outlines one cell."""
    rk, ck, score = pivot(table, row, col, value)
    panels = [(value, score, cmap, (0.0, 1.0) if np.nanmax(score) <= 1 and np.nanmin(score) >= 0 else None)]
    if control is not None:
        _, _, ctrl = pivot(table, row, col, control)
        sel = score - ctrl
        lim = float(np.nanmax(np.abs(sel))) if np.isfinite(sel).any() else 1.0
        panels += [(control, ctrl, cmap, panels[0][3]), (difference_name(value, control), sel, "RdBu_r",
                                                          (-lim, lim))]
    w = 0.55 * len(ck) + 1.6
    fig, axes = subplots(1, len(panels), width=max(3.4, w) * len(panels), height=0.32 * len(rk) + 1.6)
    axes = np.atleast_1d(axes)
    for i, (axis, (name, mat, cm, lim)) in enumerate(zip(axes, panels)):
        lo, hi = lim if lim is not None else (np.nanmin(mat), np.nanmax(mat))
        im = axis.imshow(mat, cmap=cm, vmin=lo, vmax=hi, aspect="auto", interpolation="nearest")
        axis.set_xticks(range(len(ck)), [depth_name(c) if isinstance(c, str) else str(c) for c in ck], fontsize=9,
                        rotation=90 if any(isinstance(c, str) for c in ck) else 0)
        axis.set_yticks(range(len(rk)), [str(r) for r in rk] if i == 0 else [], fontsize=9)
        axis.set_xlabel(col, fontsize=9)
        axis.set_title(name, fontsize=9)
        if annotate and mat.size <= 400:
            for (a, b), v in np.ndenumerate(mat):
                if np.isfinite(v):
                    frac = (v - lo) / (hi - lo + 1e-12)
                    axis.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=8,
                              color="white" if (frac < 0.5 if cm == cmap else abs(frac - 0.5) > 0.35) else "black")
        if selected is not None and selected[0] in rk and selected[1] in ck:
            from matplotlib.patches import Rectangle

            axis.add_patch(Rectangle((ck.index(selected[1]) - 0.5, rk.index(selected[0]) - 0.5), 1, 1,
                                     fill=False, edgecolor="#d62728", lw=2.2))
        fig.colorbar(im, ax=axis, fraction=0.05, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def probe_curves(table: Any, *, x: str = "layer", y: str = "score", hue: str = "label", err: str | None = None,
                 control: str | None = None, baseline: str | None = None, labels: Sequence[Any] | None = None,
                 ylabel: str | None = None, title: str | None = None, ax: Any = None) -> Figure:
    """``y`` against ``x`` (accuracy vs depth), one line per ``hue`` value, with ``err`` as error bars,
    the ``control`` (e.g. the random-init model) dashed and the trivial ``baseline`` dotted in the same colour."""
    rows = records(table)
    _need(rows, x, y, hue, err, control, baseline)
    keys = list(dict.fromkeys(r[hue] for r in rows)) if labels is None else list(labels)
    fig, axis = subplots(width=5.6, height=3.6, ax=ax)
    for i, key in enumerate(keys):
        sub = sorted((r for r in rows if r[hue] == key), key=lambda r: r[x])
        if not sub:
            raise KeyError(f"no rows with {hue}={key!r}; available: {list(dict.fromkeys(r[hue] for r in rows))}")
        xs = [r[x] for r in sub]
        ys = np.array([float(r[y]) for r in sub])
        es = np.array([float(r[err]) for r in sub]) if err else None
        axis.errorbar(xs, ys, yerr=es, marker="o", ms=4, capsize=3, color=f"C{i}", label=str(key))
        if control:
            axis.plot(xs, [float(r[control]) for r in sub], "--", color=f"C{i}", lw=1, alpha=0.8)
        if baseline:
            axis.plot(xs, [float(r[baseline]) for r in sub], ":", color=f"C{i}", lw=1, alpha=0.8)
    extra = [s for s, c in (("dashed: " + str(control), control), ("dotted: " + str(baseline), baseline)) if c]
    axis.set_xlabel(x)
    axis.set_ylabel(ylabel or y)
    axis.set_title(title or (f"{y} by {x}" + (f"  ({'; '.join(extra)})" if extra else "")), fontsize=9)
    axis.legend(frameon=False, fontsize="small")
    axis.grid(alpha=0.3)
    return fig


def confusion_matrix(y_true: Any, y_pred: Any, *, class_names: Sequence[str] | None = None,
                     normalize: bool = True, title: str | None = None, ax: Any = None) -> Figure:
    """Confusion matrix of integer class predictions (rows: true class, columns: predicted)."""
    t = _as_numpy(y_true).astype(int).reshape(-1)
    p = _as_numpy(y_pred).astype(int).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries and y_pred {p.size}; pass one prediction per true value")
    k = max(int(t.max(initial=0)), int(p.max(initial=0))) + 1
    if class_names is not None:
        if len(class_names) < k:
            raise ValueError(f"{len(class_names)} class names but classes go up to {k - 1}")
        k = len(class_names)
    mat = np.zeros((k, k))
    np.add.at(mat, (t, p), 1)
    if normalize:
        mat = mat / np.maximum(mat.sum(1, keepdims=True), 1)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    fig, axis = subplots(width=0.32 * k + 2.4, height=0.3 * k + 1.8, ax=ax)
    im = axis.imshow(mat, cmap="Blues", vmin=0, vmax=1 if normalize else None, interpolation="nearest")
    axis.set_xticks(range(k), names, fontsize=9, rotation=90 if k > 10 else 0)
    axis.set_yticks(range(k), names, fontsize=9)
    axis.set_xlabel("predicted", fontsize=9)
    axis.set_ylabel("true", fontsize=9)
    acc = float((t == p).mean()) if t.size else float("nan")
    axis.set_title(title or f"accuracy {acc:.1%} (n={t.size})", fontsize=9)
    if ax is None:
        fig.colorbar(im, ax=axis, fraction=0.05, pad=0.02)
    return fig


def prediction_scatter(y_true: Any, y_pred: Any, *, title: str | None = None, ax: Any = None) -> Figure:
    """Predicted against true values of a regression probe (all outputs pooled), with the identity line."""
    t = _as_numpy(y_true).reshape(-1)
    p = _as_numpy(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values and y_pred {p.size}; pass one prediction per value")
    fig, axis = subplots(width=3.6, height=3.2, ax=ax)
    axis.scatter(t, p, s=6, alpha=0.4, color="C0", linewidths=0)
    lo, hi = float(np.nanmin([t.min(initial=0), p.min(initial=0)])), float(np.nanmax([t.max(initial=1),
                                                                                        p.max(initial=1)]))
    axis.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--")
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    axis.set_xlim(lo - pad, hi + pad)  # explicit: the Axes may be reused (a widget redrawing in place)
    axis.set_ylim(lo - pad, hi + pad)
    ss_res = float(((t - p) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum()) if t.size else 0.0
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    axis.set(xlabel="true", ylabel="predicted")
    axis.set_title(title or f"R² {r2:.2f} (n={t.size})", fontsize=9)
    return fig
