"""A dashboard for one learned feature (an SAE latent, a PCA/ICA direction, a k-means cluster).

Inputs are plain tensors so any method fits: ``values [n_rows]`` is the feature's activation on the cached
rows, ``where [n_rows, 2]`` says which (example, position) each row came from (row-major over the positions
mask that :func:`activations.cache` used), and ``labels`` maps ground-truth label names to their values on
the same rows. The dashboard shows the activation histogram, where the feature's density sits among all
features, the ground-truth labels it matches best, and its top-activating examples drawn as tasks with the
activation overlaid on the nodes / cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from toolkit.tasks.render import value_range
from toolkit.viz.attention import _as_numpy
from toolkit.viz.figure import new_figure
from toolkit.viz.live import clear_axes, draw_task, fix_title_position, render_kwargs
from toolkit.viz.tasks import positions_to_overlay


def where_from_mask(mask: Any) -> torch.Tensor:
    """Positions mask ``[n, seq]`` -> ``[n_rows, 2]`` (example, position) in row-major order."""
    return torch.nonzero(torch.as_tensor(mask, dtype=torch.bool))


def _columns(name: str, values: np.ndarray, class_names: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """Split a label into 0/1 or float target columns: one-vs-rest per class, one per multilabel output."""
    if values.ndim == 2:
        return [(f"{name}[{class_names[k] if class_names else k}]", values[:, k]) for k in range(values.shape[1])]
    uniq = np.unique(values[np.isfinite(values)])
    if uniq.size > 2 and np.allclose(uniq, np.round(uniq)) and uniq.size <= 64:  # multiclass ids
        return [(f"{name}={class_names[int(c)] if class_names and 0 <= c < len(class_names) else int(c)}",
                 (values == c).astype(float)) for c in uniq if c >= 0]
    return [(name, values)]


def label_match_matrix(features: Any, labels: Mapping[str, Any],
                       class_names: Mapping[str, Sequence[str]] | None = None) -> tuple[list[str], np.ndarray]:
    """|Pearson r| of every feature with every ground-truth target column, vectorised.

    Args:
        features: ``[n_rows, d]`` activations (e.g. all SAE latents).
        labels: as in :func:`label_match`.
    Returns:
        ``(target names [C], |r| [d, C])``; constant features or targets give 0.
    """
    f = _as_numpy(features)
    if f.ndim != 2:
        raise ValueError(f"features must be [n_rows, d], got shape {f.shape}")
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for name, lab in labels.items():
        valid = np.ones(f.shape[0], dtype=bool)
        if isinstance(lab, tuple):
            lab, valid = lab[0], _as_numpy(lab[1]).astype(bool).reshape(-1)
        y = _as_numpy(lab)
        if y.shape[0] != f.shape[0]:
            raise ValueError(f"label {name!r} has {y.shape[0]} rows but the features have {f.shape[0]}; "
                             "take both from the same activation cache")
        cols = _columns(name, y[valid], (class_names or {}).get(name))
        if not cols or valid.sum() < 3:
            continue
        t = np.stack([c for _, c in cols], 1).astype(float)
        a = f[valid].astype(float)
        a = a - a.mean(0)
        t = t - t.mean(0)
        denom = np.sqrt((a**2).sum(0))[:, None] * np.sqrt((t**2).sum(0))[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(denom > 0, (a.T @ t) / np.where(denom > 0, denom, 1), 0.0)
        names += [n for n, _ in cols]
        blocks.append(np.abs(r))
    mat = np.concatenate(blocks, 1) if blocks else np.zeros((f.shape[1], 0))
    return names, mat


def label_match(values: Any, labels: Mapping[str, Any], top: int = 5,
                class_names: Mapping[str, Sequence[str]] | None = None) -> list[tuple[str, float]]:
    """Ground-truth targets that best match a feature: ``[(target, |Pearson r|), ...]``, best first.

    ``labels[name]`` is ``values [n_rows]`` / ``[n_rows, K]`` or a tuple ``(values, valid [n_rows] bool)``;
    multiclass labels are split one-vs-rest (``parent=3``), multilabel ones per output (``on_path[5]``).
    """
    v = _as_numpy(values).reshape(-1, 1)
    names, mat = label_match_matrix(v, labels, class_names)
    order = np.argsort(-mat[0], kind="stable")[:top]
    return [(names[i], float(mat[0, i])) for i in order]


def top_examples(values: Any, where: Any, k: int = 6) -> list[tuple[int, int, float]]:
    """The ``k`` examples with the largest activation: ``[(example, position, value), ...]`` (one row per example)."""
    v = _as_numpy(values).reshape(-1)
    w = torch.as_tensor(where).numpy()
    best: dict[int, tuple[int, float]] = {}
    for i in np.argsort(-v, kind="stable"):
        ex = int(w[i, 0])
        if ex not in best:
            best[ex] = (int(w[i, 1]), float(v[i]))
            if len(best) == k:
                break
    return [(ex, pos, val) for ex, (pos, val) in best.items()]


def example_overlay(values: Any, where: Any, example: int, seq: int) -> np.ndarray:
    """This feature's activation at every cached position of one example: ``[seq]`` with NaN elsewhere."""
    v = _as_numpy(values).reshape(-1)
    w = torch.as_tensor(where).numpy()
    out = np.full(seq, np.nan)
    sel = w[:, 0] == example
    out[w[sel, 1]] = v[sel]
    return out


def feature_dashboard(values: Any, where: Any, data: Any = None, *, labels: Mapping[str, Any] | None = None,
                      densities: Any = None, name: str = "feature", k: int = 4, active_threshold: float = 0.0,
                      matches: Sequence[tuple[str, float]] | None = None) -> Figure:
    """One feature at a glance.

    Args:
        values: ``[n_rows]`` activations of the feature.
        where: ``[n_rows, 2]`` (example, position) of each row (see :func:`where_from_mask`).
        data: the SearchDataset the rows came from; its task draws the top examples (skipped when None).
        labels: ground truth on the same rows for :func:`label_match` (or give ``matches`` directly).
        densities: ``[n_features]`` fraction of rows on which every feature fires, to place this one.
        k: top-activating examples to draw.
        active_threshold: a row counts as active when the value exceeds this.

    The histogram's bars are coloured on the same scale as the top examples' nodes (its colour key).
    To draw feature after feature into one figure, keep a :class:`FeatureDashboard`.
    """
    v = _as_numpy(values).reshape(-1)
    if torch.as_tensor(where).shape != (v.shape[0], 2):
        raise ValueError(f"where must be [n_rows, 2] = [{v.shape[0]}, 2], got {tuple(torch.as_tensor(where).shape)}")
    tops = len(top_examples(v, where, k)) if data is not None else 0
    board = FeatureDashboard(where, data if tops else None, densities=densities, k=tops,
                             active_threshold=active_threshold)
    return board.update(v, name=name, labels=labels, matches=matches)


class FeatureDashboard:
    """The :func:`feature_dashboard` figure, kept and redrawn in place for one feature after another.

    Args: ``where``, ``data``, ``densities``, ``k``, ``active_threshold`` as in :func:`feature_dashboard` (they
    stay fixed); :meth:`update` draws one feature's ``values [n_rows]``.
    """

    def __init__(self, where: Any, data: Any = None, *, densities: Any = None, k: int = 4,
                 active_threshold: float = 0.0, cmap: str = "viridis"):
        self.where = torch.as_tensor(where)
        if self.where.ndim != 2 or self.where.shape[1] != 2:
            raise ValueError(f"where must be [n_rows, 2], got {tuple(self.where.shape)}")
        self.data, self.k = data, int(k) if data is not None else 0
        self.threshold, self.cmap = float(active_threshold), cmap
        self._shared = render_kwargs(data.task) if self.k else False
        self.fig = fig = new_figure(10.4, 3.0 + (2.6 if self.k else 0.0))  # 998 px at an explorer's 96 dpi
        n_top = max(3, self.k)
        grid = fig.add_gridspec(2 if self.k else 1, n_top, height_ratios=[1, 1.15] if self.k else None)
        thirds = [slice(0, n_top // 3), slice(n_top // 3, 2 * n_top // 3), slice(2 * n_top // 3, n_top)]
        self.ax_hist, self.ax_dens, self.ax_lab = (fig.add_subplot(grid[0, s]) for s in thirds)
        self.ax_tops = [fig.add_subplot(grid[1, j]) for j in range(self.k)]
        fix_title_position(self.ax_hist, self.ax_dens, self.ax_lab, *self.ax_tops)
        self.ax_hist.set_yscale("log")
        self.ax_hist.yaxis.set_minor_locator(NullLocator())  # minor log ticks cost more than the whole histogram
        self.ax_hist.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))  # 1, 10, 100: no mathtext
        self.ax_hist.set_xlabel("activation (colour: same scale as the examples)", fontsize=9)
        self.ax_hist.xaxis.set_major_locator(MaxNLocator(5))
        self.densities = None
        if densities is not None:  # the same for every feature: drawn once, only the red line moves
            self.densities = _as_numpy(densities).reshape(-1)
            d = np.log10(np.clip(self.densities, 1e-6, 1))
            counts, self._dens_edges = np.histogram(d, bins=30)
            self.ax_dens.stairs(counts, self._dens_edges, fill=True, color="0.7")
            self.dens_line = self.ax_dens.axvline(0.0, color="#d62728", lw=2)
            self.ax_dens.set_xlabel("log10 density (all features; red: this one)", fontsize=9)
        else:
            self.ax_dens.set_xticks([])
            self.ax_dens.set_ylim(0, 1)
        self.ax_lab.set_yticks([])
        self.ax_lab.set_xlim(0, 1)
        self.ax_lab.set_xticks([0, 0.5, 1])

    def update(self, values: Any, *, name: str = "feature", labels: Mapping[str, Any] | None = None,
               matches: Sequence[tuple[str, float]] | None = None) -> Figure:
        """Draw the feature with activations ``values [n_rows]`` (``labels`` / ``matches`` as in
        :func:`feature_dashboard`)."""
        from matplotlib import colormaps
        from matplotlib.collections import PolyCollection

        v = _as_numpy(values).reshape(-1)
        if v.shape[0] != self.where.shape[0]:
            raise ValueError(f"where must be [n_rows, 2] = [{v.shape[0]}, 2], got {tuple(self.where.shape)}")
        density = float((v > self.threshold).mean()) if v.size else 0.0
        if matches is None and labels:
            matches = label_match(v, labels)
        lo, hi = value_range(v if v.size else [0.0], min(0.0, float(v.min())) if v.size else 0.0)

        ax = self.ax_hist  # histogram of the active rows, bars coloured by value: the examples' colour key
        clear_axes(ax)
        active = v[v > self.threshold]
        counts, edges = np.histogram(active if active.size else [0.0], bins=30)
        heights = np.maximum(counts, 0.8)
        quads = [[(a, 0.8), (b, 0.8), (b, h), (a, h)] for a, b, h in zip(edges[:-1], edges[1:], heights)]
        centres = np.clip(((edges[:-1] + edges[1:]) / 2 - lo) / (hi - lo), 0, 1)
        ax.add_collection(PolyCollection(quads, facecolors=colormaps[self.cmap](centres), edgecolors="none"),
                          autolim=False)
        pad = 0.02 * (edges[-1] - edges[0]) if edges[-1] > edges[0] else 0.5
        ax.set_xlim(edges[0] - pad, edges[-1] + pad)
        ax.set_ylim(0.8, max(2.0, heights.max() * 1.6))
        ax.set_title(f"{name}: activations > {self.threshold:g} ({active.size} rows)", fontsize=9)

        if self.densities is not None:
            x = np.log10(max(density, 1e-6))
            self.dens_line.set_xdata([x, x])
            lo_d, hi_d = min(self._dens_edges[0], x), max(self._dens_edges[-1], x)
            self.ax_dens.set_xlim(lo_d - 0.03 * (hi_d - lo_d + 1e-9), hi_d + 0.03 * (hi_d - lo_d + 1e-9))
        else:
            clear_axes(self.ax_dens)
            self.ax_dens.bar([0], [density], color="C1")
        self.ax_dens.set_title(f"density {density:.2%}", fontsize=9)

        ax = self.ax_lab  # label names written on their bars: no tick labels whose width changes the layout
        clear_axes(ax)
        ax.set_axis_on() if matches else ax.set_axis_off()
        if matches:
            names_, scores = zip(*matches)
            ax.barh(range(len(scores)), scores, color="#a1d99b")
            for i, (label, score) in enumerate(zip(names_, scores)):
                ax.text(0.01, i, f"{label}  ({score:.2f})", va="center", fontsize=10)
            ax.set_ylim(len(scores) - 0.5, -0.5)
            ax.set_title("best-matching labels (|r|)", fontsize=9)
        else:
            ax.text(0.5, 0.5, "no label matches\n(pass labels=)", ha="center", va="center", fontsize=10,
                    transform=ax.transAxes)
            ax.set_title("best-matching labels", fontsize=9)

        tops = top_examples(v, self.where, self.k) if self.k else []
        for j, axis in enumerate(self.ax_tops):
            axis.set_visible(j < len(tops))
            if j >= len(tops):
                continue
            ex, pos, val = tops[j]
            example = self.data[ex]
            seq = len(example.tokens)
            overlay = positions_to_overlay(self.data.task, example.tokens, example_overlay(v, self.where, ex, seq),
                                           reduce="max")
            draw_task(self.data.task, example, overlay, axis, vmin=lo, vmax=hi, cmap=self.cmap, shared=self._shared)
            tok = self.data.task.vocab.tokens[int(example.tokens[pos])]
            axis.set_title(f"example {ex}: max {val:.2f} at {pos} ({tok})", fontsize=9)
        return self.fig
