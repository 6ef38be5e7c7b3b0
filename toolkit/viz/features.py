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
from matplotlib.ticker import NullLocator

from toolkit.viz.attention import _as_numpy
from toolkit.viz.figure import new_figure
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
    """
    v = _as_numpy(values).reshape(-1)
    if torch.as_tensor(where).shape != (v.shape[0], 2):
        raise ValueError(f"where must be [n_rows, 2] = [{v.shape[0]}, 2], got {tuple(torch.as_tensor(where).shape)}")
    density = float((v > active_threshold).mean()) if v.size else 0.0
    if matches is None and labels:
        matches = label_match(v, labels)
    tops = top_examples(v, where, k) if data is not None else []
    fig = new_figure(11.0, 3.0 + (2.6 if tops else 0.0))
    grid = fig.add_gridspec(2 if tops else 1, max(3, len(tops)), height_ratios=[1, 1.15] if tops else None)
    n_top = max(3, len(tops))
    thirds = [slice(0, n_top // 3), slice(n_top // 3, 2 * n_top // 3), slice(2 * n_top // 3, n_top)]
    ax_hist, ax_dens, ax_lab = (fig.add_subplot(grid[0, s]) for s in thirds)

    active = v[v > active_threshold]
    counts, edges = np.histogram(active if active.size else [0.0], bins=30)
    ax_hist.stairs(np.maximum(counts, 0.8), edges, fill=True, color="C0", baseline=0.8)
    ax_hist.set_yscale("log")
    ax_hist.yaxis.set_minor_locator(NullLocator())  # minor log ticks cost more than the whole histogram
    ax_hist.set_title(f"{name}: activations > {active_threshold:g} ({active.size} rows)", fontsize=9)
    ax_hist.set_xlabel("activation", fontsize=8)

    if densities is not None:
        d = np.log10(np.clip(_as_numpy(densities).reshape(-1), 1e-6, 1))
        counts, edges = np.histogram(d, bins=30)
        ax_dens.stairs(counts, edges, fill=True, color="0.7")
        ax_dens.axvline(np.log10(max(density, 1e-6)), color="#d62728", lw=2)
        ax_dens.set_xlabel("log10 density (all features; red: this one)", fontsize=8)
    else:
        ax_dens.bar([0], [density], color="C1")
        ax_dens.set_xticks([])
        ax_dens.set_ylim(0, 1)
    ax_dens.set_title(f"density {density:.2%}", fontsize=9)

    if matches:
        names_, scores = zip(*matches)
        ax_lab.barh(range(len(scores)), scores, color="C2")
        ax_lab.set_yticks(range(len(scores)), names_, fontsize=7)
        ax_lab.invert_yaxis()
        ax_lab.set_xlim(0, 1)
        ax_lab.set_title("best-matching labels (|r|)", fontsize=9)
    else:
        ax_lab.text(0.5, 0.5, "no label matches\n(pass labels=)", ha="center", va="center", fontsize=8)
        ax_lab.set_axis_off()
        ax_lab.set_title("best-matching labels", fontsize=9)

    for j, (ex, pos, val) in enumerate(tops):
        axis = fig.add_subplot(grid[1, j])
        example = data[ex]
        seq = len(example.tokens)
        overlay = positions_to_overlay(data.task, example.tokens, example_overlay(v, where, ex, seq), reduce="max")
        data.task.render(example, overlay=overlay, ax=axis)
        tok = data.task.vocab.tokens[int(example.tokens[pos])]
        axis.set_title(f"example {ex}: max {val:.2f} at {pos} ({tok})", fontsize=8)
    return fig
