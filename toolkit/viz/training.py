"""Training curves of several runs side by side and accuracy by difficulty (path length, maze size ...).

``History.plot()`` in :mod:`toolkit.models` draws *one* run; these compare runs (trained vs control, two
learning rates, two seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from toolkit.viz.figure import subplots


def _history_parts(h: Any) -> tuple[list[float], list[dict[str, Any]]]:
    """A ``models.History`` or its ``to_dict()`` -> (per-step loss, evals)."""
    if isinstance(h, dict):
        return list(h.get("loss", [])), list(h.get("evals", []))
    if hasattr(h, "loss") and hasattr(h, "evals"):
        return list(h.loss), list(h.evals)
    raise TypeError(f"expected a models.History (or History.to_dict()), got {type(h).__name__}")


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    k = max(1, min(k, len(x)))
    return np.convolve(x, np.ones(k) / k, mode="valid")


def training_curves(*histories: Any, labels: Sequence[str] | None = None, metric: str = "exact",
                    smooth: int = 20, title: str | None = None) -> Figure:
    """Smoothed training loss (left, log scale) and the evaluation ``metric`` (right) for each run."""
    if not histories:
        raise ValueError("pass at least one History, e.g. viz.training_curves(history_a, history_b)")
    names = list(labels) if labels is not None else [f"run {i}" for i in range(len(histories))]
    if len(names) != len(histories):
        raise ValueError(f"{len(names)} labels for {len(histories)} histories")
    fig, (ax_loss, ax_eval) = subplots(1, 2, width=9.5, height=3.3)
    for i, (h, name) in enumerate(zip(histories, names)):
        loss, evals = _history_parts(h)
        if loss:
            y = _smooth(np.asarray(loss, dtype=float), smooth)
            ax_loss.plot(np.arange(len(y)) + min(smooth, len(loss)), y, color=f"C{i}", label=name)
        pts = [(e["step"], e[metric]) for e in evals if metric in e]
        if evals and not pts:
            raise KeyError(f"metric {metric!r} is not in the evaluations; available: {sorted(evals[0])}")
        if pts:
            ax_eval.plot(*zip(*pts), "o-", ms=3, color=f"C{i}", label=name)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title=f"loss (mean of {smooth} steps)")
    ax_eval.set(xlabel="step", ylabel=metric, title=f"held-out {metric}")
    for axis in (ax_loss, ax_eval):
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(frameon=False, fontsize="small")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def accuracy_by_difficulty(*results: Any, labels: Sequence[str] | None = None, metric: str = "exact",
                           difficulty_name: str = "difficulty", title: str | None = None, ax: Any = None) -> Figure:
    """Grouped bars: ``metric`` per difficulty for each result (``models.EvalResult`` or a ``by_difficulty``
    dict ``{difficulty: {"n", "exact", ...}}``); bar labels give n."""
    if not results:
        raise ValueError("pass at least one EvalResult, e.g. viz.accuracy_by_difficulty(models.evaluate(m, data))")
    names = list(labels) if labels is not None else [f"model {i}" for i in range(len(results))]
    if len(names) != len(results):
        raise ValueError(f"{len(names)} labels for {len(results)} results")
    tables = [getattr(r, "by_difficulty", r) for r in results]
    for t in tables:
        if not isinstance(t, dict):
            raise TypeError(f"expected an EvalResult or a by_difficulty dict, got {type(t).__name__}")
    keys = sorted({k for t in tables for k in t}, key=lambda k: float(k))
    if not keys:
        raise ValueError("the results have no per-difficulty breakdown (data.meta['difficulty'] was missing)")
    fig, axis = subplots(width=max(4.0, 0.9 * len(keys) * len(results) ** 0.5 + 2), height=3.2, ax=ax)
    width = 0.8 / len(results)
    for i, (t, name) in enumerate(zip(tables, names)):
        xs = np.arange(len(keys)) + (i - (len(results) - 1) / 2) * width
        ys = [float(t[k][metric]) if k in t else np.nan for k in keys]
        bars = axis.bar(xs, ys, width=width * 0.95, color=f"C{i}", label=name)
        ns = [int(t[k]["n"]) if k in t and "n" in t[k] else None for k in keys]
        axis.bar_label(bars, [f"n={n}" if n is not None else "" for n in ns], fontsize=6, padding=1)
    axis.set_xticks(range(len(keys)), [str(k) for k in keys])
    axis.set(xlabel=difficulty_name, ylabel=metric, ylim=(0, 1.1))
    axis.set_title(title or f"{metric} by {difficulty_name}", fontsize=9)
    if len(results) > 1:
        axis.legend(frameon=False, fontsize="small")
    return fig
