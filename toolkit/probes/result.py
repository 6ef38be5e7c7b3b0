""":class:`SweepResult`: the table and the fitted probes of a :func:`toolkit.probes.sweep`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from toolkit._result import frame, plain

COLUMNS = ("label", "kind", "metric", "group", "layer", "hook", "n_train", "n_test", "score", "score_std",
           "score_lo", "score_hi", "chance", "baseline", "baseline_name", "control", "selectivity", "random_init",
           "vs_baseline_lo", "vs_random_lo", "found")


@dataclass
class SweepResult:
    """One row per (label, group, hook) cell; see :func:`toolkit.probes.sweep` for the columns.

    The names follow :mod:`toolkit.viz.names`: ``selectivity`` is only score − control-task score (Hewitt &
    Liang); ``vs_baseline_lo`` / ``vs_random_lo`` are the lower bootstrap ends of *vs baseline* (score − trivial
    baseline) and *vs random-init* (score − random-init twin). ``hook`` is the residual-stream position; its depth
    (0 = embedding, d = after block d-1) is ``toolkit.probes.depth(hook, n_layers)``.

    Attributes:
        rows: the table as a list of dicts.
        fitted: ``{(label, hook, group): probe}`` (linear probes; sklearn-style ``predict`` / ``predict_proba``).
        skipped: cells with too few rows, as ``(label, group, reason)``.
        hooks: the probed hooks, in order.
    """

    hooks: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    fitted: dict[tuple[str, str, Any], Any] = field(default_factory=dict)
    skipped: list[tuple[str, Any, str]] = field(default_factory=list)

    def table(self) -> Any:
        """A pandas DataFrame (a list of dicts when pandas is not installed)."""
        return frame([{c: r.get(c) for c in COLUMNS} for r in self.rows], COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """The table's rows, the hooks, the skipped cells and the sweep's settings as plain Python (JSON-able;
        the fitted probes stay in :attr:`fitted`)."""
        return plain({"hooks": self.hooks, "meta": self.meta, "rows": [{c: r.get(c) for c in COLUMNS}
                                                                       for r in self.rows],
                      "skipped": self.skipped})

    @property
    def probes(self) -> dict[str, dict[str, Any]]:
        """``{label: {hook: probe}}`` for ungrouped sweeps (what ``widgets.SearchStateExplorer`` takes)."""
        out: dict[str, dict[str, Any]] = {}
        for (label, hook, group), probe in self.fitted.items():
            if group is None:
                out.setdefault(label, {})[hook] = probe
        return out

    def probe(self, label: str, hook: str, group: Any = None) -> Any:
        key = (label, hook, group)
        if key not in self.fitted:
            have = sorted({(k[0], k[1], k[2]) for k in self.fitted}, key=str)[:12]
            raise KeyError(f"no fitted probe for {key}; available (first 12): {have}")
        return self.fitted[key]

    def direction(self, label: str, hook: str, cls: int = 0, group: Any = None) -> torch.Tensor:
        """Unit vector ``[d]``: the probe's weight row for class / output ``cls`` (binary: ``cls=0``)."""
        w = self.probe(label, hook, group).coef_
        if not 0 <= cls < w.shape[0]:
            raise ValueError(f"cls={cls} is out of range; this probe has {w.shape[0]} weight rows")
        v = w[cls]
        return v / v.norm().clamp_min(1e-12)

    def map(self, label: str, value: str = "score") -> Any:
        """``value`` as a hook x group grid for one label (a DataFrame, or a dict of dicts without pandas)."""
        cells = [r for r in self.rows if r["label"] == label]
        if not cells:
            raise KeyError(f"no rows for label {label!r}; labels: {sorted({r['label'] for r in self.rows})}")
        grid: dict[str, dict[Any, Any]] = {}
        for r in cells:
            grid.setdefault(r["hook"], {})[r["group"]] = r[value]
        try:
            import pandas as pd
        except ImportError:
            return grid
        return pd.DataFrame.from_dict(grid, orient="index").reindex(self.hooks).dropna(how="all")

    def found(self) -> list[tuple[str, Any, str]]:
        """``(label, group, first hook where found)`` for every label / group that was found somewhere."""
        out = []
        seen = set()
        for r in self.rows:
            key = (r["label"], r["group"])
            if r["found"] and key not in seen:
                seen.add(key)
                out.append((r["label"], r["group"], r["hook"]))
        return out

    def __repr__(self) -> str:
        labels = sorted({r["label"] for r in self.rows})
        n_found = sum(r["found"] for r in self.rows)
        return (f"SweepResult({len(self.rows)} cells: {len(labels)} labels x {len(self.hooks)} hooks, "
                f"{n_found} found; .table() for details)")
