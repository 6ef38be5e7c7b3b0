"""ProbeExplorer: the label x depth table of a probe sweep as a clickable heatmap; a cell shows its numbers
(score, trivial baseline, control task, random-init twin and the differences: selectivity, vs baseline,
vs random-init), its confusion matrix and the probe's per-position predictions on one example. Names follow
:mod:`toolkit.viz.names` (columns are depths, the hook name shows on hover)."""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import torch

from toolkit import viz
from toolkit.probes.sweep import OwnLabels
from toolkit.widgets._model import token_strings
from toolkit.widgets.base import Explorer

VALUES = ("score", "selectivity", "vs baseline", "vs random-init")


def _cell_value(row: dict[str, Any], which: str) -> float:
    def num(key: str) -> float:
        v = row.get(key)
        return float("nan") if v is None else float(v)

    if which == "score":
        return num("score")
    if which == "selectivity":
        return num("selectivity")
    if which == "vs baseline":
        return num("score") - num("baseline")
    return num("score") - num("random_init")


class ProbeExplorer(Explorer):
    """Explore a :func:`toolkit.probes.sweep` result.

    Args:
        result: a ``SweepResult`` (``.table()``, ``.probe(label, hook)``), ungrouped (``group_by=None``).
        acts: the Activations the sweep was fitted on; needed for the confusion matrix and the per-position
            predictions (the sweep keeps the probes, not the rows).
        vocab: for activations of plain tokens: a list of token strings or a HF tokenizer (default: token ids).
        label, hook: the initially selected cell.

    Controls: ``value`` (what the heatmap shows: the score, selectivity = score − control-task score,
    vs baseline = score − trivial baseline, vs random-init = score − random-init twin), ``label``, ``hook``
    (the selected cell, shown as its depth; clicking a heatmap button sets both), ``example``. Views: ``grid``
    (buttons), ``cell`` (HTML numbers), ``confusion``
    (image: confusion matrix, or predicted-vs-true for regression), ``example`` (image: per-position
    predictions on one example).
    """

    def __init__(self, result: Any, acts: Any = None, *, vocab: Any = None, label: str | None = None,
                 hook: str | None = None,
                 example: int | None = None, value: str = "score"):
        super().__init__()
        if not hasattr(result, "table") or not hasattr(result, "probe"):
            raise TypeError(f"ProbeExplorer needs a probes.sweep(...) result; got {type(result).__name__}")
        rows = [r for r in viz.records(result) if r.get("group") is None or _isnan(r.get("group"))]
        if not rows:
            raise ValueError("the sweep has no ungrouped cells; run probes.sweep(..., group_by=None) for this view")
        if value not in VALUES:
            raise ValueError(f"value={value!r}; valid: {list(VALUES)}")
        own = getattr(result, "own_labels", None)
        if own and acts is not None and not isinstance(acts, OwnLabels):  # a sweep with labels={name: values}
            acts = OwnLabels(acts, own)
        self.result, self.acts, self.vocab = result, acts, vocab
        self.rows = {(r["label"], r["hook"]): r for r in rows}
        self.labels = list(dict.fromkeys(r["label"] for r in rows))
        self.hooks = [h for h in getattr(result, "hooks", []) if any(k[1] == h for k in self.rows)] or \
            list(dict.fromkeys(r["hook"] for r in rows))
        label = label or self.labels[0]
        hook = hook or self.hooks[-1]
        if (label, hook) not in self.rows:
            raise KeyError(f"no cell ({label!r}, {hook!r}); labels: {self.labels}; hooks: {self.hooks}")
        self._control("value", W.ToggleButtons(options=list(VALUES), value=value, description="colour by",
                                               style={"button_width": "auto"}))
        self._control("label", W.Dropdown(options=self.labels, value=label, description="label"))
        self._control("hook", W.Dropdown(options=[(f"{viz.depth_name(h)} ({h})", h) for h in self.hooks],
                                         value=hook, description="depth", layout=W.Layout(width="340px")))
        examples = sorted(set(acts.example_index.tolist())) if acts is not None else [0]
        self._control("example", W.Dropdown(options=examples, value=example if example is not None else examples[0],
                                            description="example", layout=W.Layout(width="180px")))
        self.buttons: dict[tuple[str, str], W.Button] = {}
        cells: list[W.Widget] = [W.Label("")] + [W.HTML(viz.depth_html(h), layout=W.Layout(width="60px"))
                                                 for h in self.hooks]
        for lab in self.labels:
            cells.append(W.Label(lab, layout=W.Layout(width="130px")))
            for h in self.hooks:
                b = W.Button(description="", layout=W.Layout(width="60px", height="26px", padding="0"),
                             tooltip=f"{lab} @ {h}", disabled=(lab, h) not in self.rows)
                b.add_class("searchlight-probe-cell")
                b.on_click(lambda _, lab=lab, h=h: self.select(lab, h))
                self.buttons[(lab, h)] = b
                cells.append(b)
        grid = W.GridBox(cells, layout=W.Layout(grid_template_columns=f"130px repeat({len(self.hooks)}, 62px)",
                                                grid_gap="2px"))
        grid.add_class("searchlight-probe-grid")
        self.views["grid"] = grid
        note = W.HTML("<div style='font-size:12px;line-height:1.4;color:#555'>"
                      f"columns: {viz.DEPTH_NOTE}; hover a column or a "
                      "cell for its hook. selectivity = score − control-task score (Hewitt &amp; Liang); "
                      "vs baseline = score − trivial baseline; vs random-init = score − random-init twin. "
                      "<b>found</b> = beats both the baseline and the random-init twin (those the sweep computed) by a "
                      "margin.</div>",
                      layout=W.Layout(max_width="900px"))
        self._finish(self.controls["value"], grid, note,
                     W.HBox([self.controls["label"], self.controls["hook"], self.controls["example"]]),
                     W.HBox([self._html("cell"), self._image("confusion")]), self._image("example"))

    def select(self, label: str, hook: str) -> None:
        """Select a cell (what clicking its button does)."""
        if (label, hook) not in self.rows:
            raise KeyError(f"no cell ({label!r}, {hook!r}); labels: {self.labels}; hooks: {self.hooks}")
        self._set_quiet("label", value=label)
        self._set_quiet("hook", value=hook)
        self.refresh(changed="cell")

    # ---------------------------------------------------------------- data for the selected cell
    def _rows_for(self, label: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Row ids (into acts) where the label is defined, and the targets there."""
        values, valid = self.acts.labels(label)
        if self.acts.label(label).kind == "multiclass":
            valid = valid & (values >= 0)
        idx = valid.nonzero().flatten()
        return idx, values[idx]

    def predictions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(row ids, y_true, y_pred)`` of the selected probe on every row where its label is defined."""
        if self.acts is None:
            raise ValueError("pass acts= (the Activations the sweep was fitted on) to see predictions")
        s = self.state()
        idx, y = self._rows_for(s["label"])
        probe = self.result.probe(s["label"], s["hook"])
        pred = torch.as_tensor(np.asarray(probe.predict(self.acts[s["hook"]][idx].float().numpy())))
        return idx, y, pred

    # ---------------------------------------------------------------- drawing
    def _paint(self) -> None:
        which = self.controls["value"].value
        vals = {k: _cell_value(r, which) for k, r in self.rows.items()}
        finite = [v for v in vals.values() if np.isfinite(v)]
        if which == "score":
            lo, hi, cmap = 0.0, max(1.0, max(finite, default=1.0)), "viridis"
        else:
            lim = max([abs(v) for v in finite] + [1e-6])
            lo, hi, cmap = -lim, lim, "RdBu_r"
        sel = (self.controls["label"].value, self.controls["hook"].value)
        for key, b in self.buttons.items():
            v = vals.get(key, float("nan"))
            b.description = f"{v:.2f}" if np.isfinite(v) else "–"
            b.style.button_color = viz.colour(v, lo, hi, cmap)
            frac = (v - lo) / (hi - lo) if np.isfinite(v) and hi > lo else 0.5
            b.style.text_color = "white" if (frac < 0.55 if cmap == "viridis" else abs(frac - 0.5) > 0.3) else "black"
            b.style.font_weight = "bold" if key == sel else "normal"
            b.layout.border = "3px solid #d62728" if key == sel else "1px solid #ccc"
            found = self.rows.get(key, {}).get("found")
            b.tooltip = f"{key[0]} @ {key[1]} ({viz.depth_name(key[1])}): {which} {v:.3f}" + (
                " (found)" if found else "")

    def _cell_html(self, row: dict[str, Any], n_rows: str) -> str:
        def f(key: str) -> str:
            v = row.get(key)
            return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else (
                f"{v:.3f}" if isinstance(v, float) else str(v))

        def diff(which: str) -> str:
            v = _cell_value(row, which)
            return f"{v:+.3f}" if np.isfinite(v) else "–"

        items = [("metric", row.get("metric", "score")), ("score", f"{f('score')} ± {f('score_std')}"),
                 ("chance", f("chance")), (f"trivial baseline ({row.get('baseline_name') or '-'})", f("baseline")),
                 ("control task", f("control")), ("random-init twin", f("random_init")),
                 ("selectivity (score − control task)", f("selectivity")),
                 ("vs baseline (score − baseline)", diff("vs baseline")),
                 ("vs random-init (score − twin)", diff("vs random-init")),
                 ("found (beats baseline and twin, those computed, by a margin)", f("found")),
                 ("train / test rows", f"{f('n_train')} / {f('n_test')}"), ("rows shown here", n_rows)]
        body = "".join(f"<tr><td>{k}</td><td><b>{v}</b></td></tr>" for k, v in items)
        return (f"<table class='searchlight-probe-cell-info' style='font-size:12px'><caption><b>{row['label']}</b> "
                f"@ <b>{viz.depth_name(row['hook'])}</b> (<code>{row['hook']}</code>)</caption>{body}</table>")

    def _draw(self) -> None:
        s = self.state()
        self._paint()
        if self.changed == "value":
            return
        row = self.rows[(s["label"], s["hook"])]
        if self.acts is None:
            self.views["cell"].value = self._cell_html(row, "none (pass acts=)")
            return
        idx, y, pred = self.predictions()
        lab = self.acts.label(s["label"])
        self.views["cell"].value = self._cell_html(row, f"{len(idx)} (all rows, train + test)")
        if self.changed != "example":
            def confusion() -> Any:
                title = f"{s['label']} @ {viz.depth_name(s['hook'])}"
                if lab.kind == "regression":
                    panel = self._figure("confusion", "scatter", lambda: viz.Panel(3.6, 3.2))
                    return panel.update(viz.prediction_scatter, y, pred, title=title)
                names = lab.class_names if lab.kind == "multiclass" else None
                yt, yp = y.reshape(-1).long(), pred.reshape(-1).long()
                k = len(names) if names else int(max(yt.max(), yp.max(), 1)) + 1
                panel = self._figure("confusion", ("matrix", k, tuple(names or ())), lambda: viz.Panel(
                    min(0.32 * k + 2.4, self.max_width), 0.3 * k + 1.8, colorbar="Blues"))
                return panel.update(viz.confusion_matrix, yt, yp, class_names=names, title=f"{title} (all rows)",
                                    clim=(0.0, 1.0))

            self._show("confusion", confusion, key=(s["label"], s["hook"]))
        ex = int(s["example"])
        on_ex = self.acts.example_index[idx] == ex
        pos = self.acts.position[idx][on_ex]
        data = self.acts.data
        task = getattr(data, "task", None)
        tokens = data.tokens[ex] if task is not None else data[ex]
        seq = int((tokens != task.vocab.pad_id).nonzero().max()) + 1 if task is not None else len(tokens)
        right = np.full(seq, np.nan)
        yt, yp = y[on_ex], pred[on_ex]
        if lab.kind == "regression":
            err = (yt.float() - yp.float()).abs().reshape(len(pos), -1).mean(1)
            right[pos.numpy()] = -err.numpy()
            what = "−|error|"
        else:
            ok = (yt.long() == yp.long()).float().reshape(len(pos), -1).mean(1)
            right[pos.numpy()] = ok.numpy()
            what = "fraction right"
        toks = ([task.vocab.tokens[int(t)] for t in tokens[:seq]] if task is not None else
                token_strings(self.vocab, tokens) if self.vocab is not None else [str(int(t)) for t in tokens])
        lo, hi = (0.0, 1.0) if lab.kind != "regression" else viz.value_range(right)
        width = min(max(3.0, 0.42 * seq + 1.0), self.max_width)
        strip = self._figure("example", (seq, what), lambda: viz.Panel(width, 1.25, colorbar="RdYlGn", label=what,
                                                                       fraction=0.02))
        self._show("example", lambda: strip.update(
            viz.token_strip, toks, right, vmin=lo, vmax=hi, cmap="RdYlGn", clim=(lo, hi),
            title=f"example {ex}: {s['label']} probe at {viz.depth_name(s['hook'])}, {what} per position "
                  "(blank: undefined)"), key=(s["label"], s["hook"], ex))

    def _describe(self) -> str:
        s = self.state()
        row = self.rows[(s["label"], s["hook"])]
        score = row.get("score")
        return (f"{len(self.labels)} labels x {len(self.hooks)} depths, selected={s['label']!r} @ {s['hook']!r} "
                f"(score {score:.3f}), colour={s['value']!r}, example={s['example']}")


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and np.isnan(v)
