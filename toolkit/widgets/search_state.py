"""SearchStateExplorer: step through the depths for one example and watch the decoded search state.

Probes read a search-state label (the goal's k-th ancestor, the on-path set, the reachable set, a distance
map) from the residual stream at one position; the explorer draws the decoded state on the task, depth by
depth, next to the ground truth. Depths are named as in :mod:`toolkit.viz.names` (depth 0 = the embedding,
depth d = after block d-1; the hook name shows on hover).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from toolkit import viz
from toolkit.activations.hooks import parse_hook
from toolkit.widgets._model import check_data, run_cache
from toolkit.widgets.base import Explorer


def hook_for(key: Any) -> str:
    """A probe key -> hook name: ``2`` -> ``blocks.2.hook_resid_post``; ``"embed"`` / ``-1`` -> the embedding."""
    if isinstance(key, str):
        return "blocks.0.hook_resid_pre" if key in ("embed", "hook_embed") else key
    if isinstance(key, int | np.integer):
        return "blocks.0.hook_resid_pre" if key < 0 else f"blocks.{int(key)}.hook_resid_post"
    raise TypeError(f"probe keys are layer numbers or hook names, got {key!r}")


def normalise_probes(probes: Any) -> dict[str, dict[str, Any]]:
    """``{label: {layer | hook: probe}}`` (or an object with ``.probes`` holding that) -> ``{label: {hook: probe}}``."""
    if hasattr(probes, "probes") and not isinstance(probes, Mapping):
        probes = probes.probes
    if not isinstance(probes, Mapping) or not probes:
        raise TypeError("probes must be a dict {label_name: {layer_or_hook: fitted probe}}, e.g. "
                        "{'ancestor_1': {0: probe0, 1: probe1}}")
    out: dict[str, dict[str, Any]] = {}
    for label, per_layer in probes.items():
        if not isinstance(per_layer, Mapping) or not per_layer:
            raise TypeError(f"probes[{label!r}] must be a dict {{layer_or_hook: probe}}, got "
                            f"{type(per_layer).__name__}")
        out[label] = {}
        for key, probe in per_layer.items():
            if not (hasattr(probe, "predict_proba") or hasattr(probe, "predict")):
                raise TypeError(f"probes[{label!r}][{key!r}] has no predict / predict_proba method")
            out[label][hook_for(key)] = probe
    return out


def _hook_order(hook: str) -> tuple[int, int]:
    if hook == "blocks.0.hook_resid_pre":
        return (-1, 0)
    layer, site = parse_hook(hook)
    order = {"hook_resid_pre": 0, "hook_resid_mid": 1, "hook_resid_post": 2}
    return (10**6 if layer is None else layer, order.get(site, 3))


def decode(probe: Any, x: torch.Tensor, kind: str) -> np.ndarray:
    """One residual vector ``[d]`` -> the probe's state vector: class probabilities ``[n_classes]``,
    per-output probabilities ``[K]`` (multilabel) or values ``[K]`` (regression)."""
    X = x.reshape(1, -1).numpy()
    if kind in ("multiclass", "binary", "multilabel") and hasattr(probe, "predict_proba"):
        p = probe.predict_proba(X)
        if isinstance(p, list):  # sklearn multi-output: one [1, 2] array per output
            return np.array([q[0, -1] for q in p])
        p = np.asarray(p)[0]
        return p if kind != "binary" else p[-1:]
    return np.asarray(probe.predict(X), dtype=float).reshape(-1)


def truth_vector(label: Any, example: int, position: int) -> np.ndarray:
    """The label's ground truth at one position as a state vector (one-hot for multiclass)."""
    v = label.values[example, position]
    if label.kind == "multiclass":
        out = np.zeros(int(label.n_classes))
        out[int(v)] = 1.0
        return out
    return np.asarray(v, dtype=float).reshape(-1)


class SearchStateExplorer(Explorer):
    """Decoded search state, depth by depth, on one example.

    Args:
        model: the TransformerBridge the probes were trained on.
        data: a SearchDataset with the probed labels; the first ``max_examples`` examples are run up front.
        probes: ``{label_name: {layer_or_hook: fitted probe}}``; layer ``l`` means ``blocks.l.hook_resid_post``
            and ``"embed"`` the embedding. A probe has ``predict_proba`` (classification) or ``predict``.

    Controls: ``label``, ``example``, ``position`` (where the label is defined), ``layer`` (the depth: one
    button per probed residual-stream hook, with the play button beside it; stopping leaves the depth where it
    is). Views: ``state`` (decoded | ground truth, drawn on the task) and ``layers`` (HTML: the decoded answer at
    every depth, the current one marked).
    """

    def __init__(self, model: Any, data: Any, probes: Any, *, label: str | None = None, example: int = 0,
                 layer: Any = None, position: int | None = None, max_examples: int = 64):
        super().__init__()
        check_data(data, "SearchStateExplorer")
        self.model, self.data, self.task = model, data, data.task
        self.probes = normalise_probes(probes)
        missing = [name for name in self.probes if name not in data.labels]
        if missing:
            raise KeyError(f"probes for {missing} but the data has no such labels; its labels: {sorted(data.labels)}")
        self.n = min(len(data), int(max_examples))
        hooks = sorted({h for per in self.probes.values() for h in per}, key=_hook_order)
        _, cache = run_cache(model, data.tokens[: self.n], ("hook_resid_pre", "hook_resid_post", "hook_resid_mid"))
        unknown = [h for h in hooks if h not in cache]
        if unknown:
            raise KeyError(f"probe hooks {unknown} are not residual-stream hooks of this model; use layer numbers, "
                           "'embed', or names like 'blocks.1.hook_resid_post'")
        self.resid = {h: cache[h] for h in hooks}  # hook -> [n, seq, d]
        names = list(self.probes)
        label = label if label is not None else names[0]
        if label not in self.probes:
            raise KeyError(f"no probes for label {label!r}; probed labels: {names}")
        if not 0 <= example < self.n:
            raise ValueError(f"example={example} is out of range; this explorer holds examples 0..{self.n - 1}")
        refill = lambda _: self._set_choices(None, None)  # noqa: E731
        self._control("label", W.Dropdown(options=names, value=label, description="label"), before=refill)
        self._control("example", W.IntSlider(value=example, min=0, max=self.n - 1, description="example",
                                             continuous_update=False), before=refill)
        self._control("position", W.Dropdown(description="position", layout=W.Layout(width="200px")))
        self._control("layer", W.ToggleButtons(options=[("x", "x")], description="depth",
                                               style={"button_width": "auto"}))
        self.play = W.Play(interval=900, min=0, max=1, step=1, tooltip="play through the depths")
        self.play.add_class("searchlight-play-depth")
        self.play.observe(self._on_play, names="value")
        self.controls["layer"].observe(self._sync_play, names="value")
        self._set_choices(position, layer)
        self._finish(W.HBox([self.controls["label"], self.controls["example"], self.controls["position"]]),
                     W.HBox([self.controls["layer"], self.play]),
                     self._html("description"), W.HBox([self._image("state"), self._html("layers")]))

    # ---------------------------------------------------------------- choices
    def _hooks(self) -> list[str]:
        return sorted(self.probes[self.controls["label"].value], key=_hook_order)

    def _positions(self) -> list[int]:
        lab = self.data.labels[self.controls["label"].value]
        return torch.nonzero(lab.mask[int(self.controls["example"].value)]).flatten().tolist()

    def _set_choices(self, position: int | None, layer: Any) -> None:
        ex = self.data[int(self.controls["example"].value)]
        pos = self._positions()
        toks = [self.task.vocab.tokens[int(t)] for t in ex.tokens]
        if not pos:
            raise ValueError(f"label {self.controls['label'].value!r} is defined at no position of example {ex.index}")
        old = self.controls["position"].value
        value = position if position is not None else (old if old in pos else pos[0])
        if value not in pos:
            raise ValueError(f"position={value} is not where this label is defined; valid positions: {pos}")
        self._set_quiet("position", options=[(f"{p}: {toks[p]}", p) for p in pos], value=value)
        hooks = self._hooks()
        old_l = self.controls["layer"].value
        want = hook_for(layer) if layer is not None else (old_l if old_l in hooks else hooks[-1])
        if want not in hooks:
            raise ValueError(f"layer={layer!r}: no probe there; probed: {hooks}")
        self.play.max = len(hooks) - 1
        self._set_quiet("layer", options=[(viz.depth_name(h), h) for h in hooks], value=want,
                        tooltips=list(hooks))

    def _on_play(self, change: dict[str, Any]) -> None:
        hooks = self._hooks()
        if not self.play.playing and int(change["new"]) == self.play.min:
            # the stop button: it pauses and rewinds the play button to its start; keep the depth where it is
            self._sync_play({"new": self.controls["layer"].value})
            return
        self.controls["layer"].value = hooks[min(int(change["new"]), len(hooks) - 1)]

    def _sync_play(self, change: dict[str, Any]) -> None:
        """Keep the play button's position on the selected depth (so play continues from there)."""
        hooks = self._hooks()
        if change["new"] in hooks and self.play.value != hooks.index(change["new"]):
            self.play.unobserve(self._on_play, names="value")
            try:
                self.play.value = hooks.index(change["new"])
            finally:
                self.play.observe(self._on_play, names="value")

    # ---------------------------------------------------------------- decoding
    def decoded(self, hook: str | None = None) -> np.ndarray:
        """The decoded state vector at the current label / example / position and ``hook`` (default: current)."""
        s = self.state()
        hook = hook or s["layer"]
        lab = self.data.labels[s["label"]]
        x = self.resid[hook][s["example"], s["position"]]
        return decode(self.probes[s["label"]][hook], x, lab.kind)

    def truth(self) -> np.ndarray:
        s = self.state()
        return truth_vector(self.data.labels[s["label"]], s["example"], s["position"])

    def _draw(self) -> None:
        s = self.state()
        lab = self.data.labels[s["label"]]
        ex = self.data[s["example"]]
        pred, true = self.decoded(), self.truth()
        n_el = viz.n_elements(self.task)
        on_task = pred.shape[0] == n_el and true.shape[0] == n_el
        toks = self.task.vocab.tokens
        where = f"position {s['position']} ({toks[int(ex.tokens[s['position']])]})"
        self.views["description"].value = (f"<b>{lab.name}</b> ({lab.kind}): {lab.description} &mdash; at {where}, "
                                           f"read at <b>{viz.depth_name(s['layer'])}</b> (<code>{s['layer']}</code>)")
        def figure() -> Any:
            if on_task:  # decoded and true state on one colour scale
                panels = self._figure("state", 2, lambda: viz.TaskPanels(self.task, 2, width=7.2, height=2.9,
                                                                         label="state value"))
                return panels.update([ex, ex], [pred, true], [f"decoded at {viz.depth_name(s['layer'])}",
                                                              "ground truth"])
            # the label is not one value per node / cell (e.g. a move direction): draw the task, list values
            panel = self._figure("state", 1, lambda: viz.TaskPanels(self.task, 1, width=4.6))
            return panel.update([ex], None, [f"{lab.name}: not a per-element state; see the table"],
                                prefix_titles=True)

        self._show("state", figure, key=(s["label"], s["example"], s["position"], s["layer"]))
        self.views["layers"].value = self._layer_table(lab, true)

    def _layer_table(self, lab: Any, true: np.ndarray) -> str:
        """Per depth: the decoded answer (argmax for classes, top elements / values otherwise) vs the truth."""
        names = lab.class_names or [str(i) for i in range(max(len(true), 1))]

        def summary(vec: np.ndarray) -> str:
            if lab.kind == "multiclass":
                return f"{names[int(np.argmax(vec))]} ({vec.max():.2f})"
            if lab.kind in ("multilabel", "binary"):
                on = [names[i] if i < len(names) else str(i) for i in np.flatnonzero(vec > 0.5)]
                return "{" + ", ".join(on[:8]) + (" ..." if len(on) > 8 else "") + "}"
            return " ".join(f"{v:.1f}" for v in vec[:8]) + (" ..." if len(vec) > 8 else "")

        def score(vec: np.ndarray) -> str:
            if lab.kind == "multiclass":
                return "✓" if int(np.argmax(vec)) == int(np.argmax(true)) else "✗"
            if lab.kind in ("multilabel", "binary"):
                return f"{((vec > 0.5) == (true > 0.5)).mean():.0%}"
            return f"mae {np.abs(vec - true).mean():.2f}"

        rows = []
        for h in self._hooks():
            vec = self.decoded(h)
            mark = " style='background:#fde0dd'" if h == self.controls["layer"].value else ""
            rows.append(f"<tr{mark}><td>{viz.depth_html(h)}</td><td>{summary(vec)}</td><td>{score(vec)}</td></tr>")
        return ("<table class='searchlight-layers' style='font-size:12px'><tr><th>depth</th><th>decoded</th>"
                f"<th>vs truth</th></tr>{''.join(rows)}<tr><td><b>truth</b></td><td>{summary(true)}</td><td></td>"
                "</tr></table>")

    def _describe(self) -> str:
        s = self.state()
        return (f"label={s['label']!r}, example={s['example']}/{self.n - 1}, position={s['position']}, "
                f"depth={viz.depth_name(s['layer'])!r}")
