"""FeatureBrowser: browse the latents of an SAE (or any ``transform``-er) over cached activations.

Pick a latent from a list sorted by density, by best label match, or "matches nothing" (fires, but no
ground-truth label explains it); see its dashboard. Pick an example; see which latents fire where.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import torch

from toolkit import viz
from toolkit.probes.sweep import own_labels
from toolkit.widgets._model import is_plain, token_strings
from toolkit.widgets.base import Explorer

SORTS = ("density", "label match", "matches nothing")


class FeatureBrowser(Explorer):
    """Latents of ``sae`` on the rows of ``acts``.

    Args:
        sae: anything with ``transform(X [n_rows, d]) -> [n_rows, d_sae]`` (SparseAutoencoder, PCA, ...).
        acts: an ``activations.Activations`` (rows with ``example_index`` / ``position`` and labels).
        data: the SearchDataset, or the token tensor ``[n, seq]``, the activations were cached from (default
            ``acts.data``).
        vocab: for plain tokens: a list of token strings or a HF tokenizer (no task pictures are drawn then).
        hook: which cached hook to encode (default ``sae.hook_name`` or the only cached hook).
        labels: label names to match latents against (default: every label of the data), or your own labels
            ``{name: values [n, seq]}`` / ``{name: (values, mask)}`` as :func:`toolkit.probes.sweep` takes them.
        match_threshold: a latent "matches nothing" when its best |r| is below this.
        top_k: top-activating examples drawn in the dashboard.

    Controls: ``sort``, ``latent``, ``example``. Views: ``dashboard`` (image), ``legend`` (HTML: what the colours
    and marks of the task pictures mean), ``example`` (the example with the latent overlaid), ``where`` (HTML: the
    latents most active on the example, by position; the selected latent is always among them, outlined).
    """

    def __init__(self, sae: Any, acts: Any, data: Any = None, *, vocab: Any = None, hook: str | None = None,
                 labels: list[str] | dict[str, Any] | None = None, match_threshold: float = 0.3, top_k: int = 3,
                 latent: int | None = None, sort: str = "density", example: int | None = None):
        super().__init__()
        if not hasattr(sae, "transform"):
            raise TypeError("FeatureBrowser needs a fitted feature extractor with transform(); got "
                            f"{type(sae).__name__}")
        for attr in ("example_index", "position", "hook_names"):
            if not hasattr(acts, attr):
                raise TypeError("FeatureBrowser needs activations from activations.cache(model, data, ...); got "
                                f"{type(acts).__name__}")
        self.data = data if data is not None else getattr(acts, "data", None)
        if self.data is None:
            raise ValueError("FeatureBrowser needs the data the activations came from: pass the SearchDataset or "
                             "the token tensor [n, seq] (with vocab=) as data")
        plain = is_plain(self.data, vocab, "FeatureBrowser")
        self.vocab = vocab
        if sort not in SORTS:
            raise ValueError(f"sort={sort!r}; valid: {list(SORTS)}")
        self.hook = hook or getattr(sae, "hook_name", None) or (acts.hook_names[0] if len(acts.hook_names) == 1
                                                                else None)
        if self.hook is None or self.hook not in acts.hook_names:
            raise ValueError(f"choose the hook the SAE was trained on: hook= one of {acts.hook_names}")
        self.sae, self.acts, self.task = sae, acts, None if plain else self.data.task
        self.top_k, self.match_threshold = int(top_k), float(match_threshold)
        self.latents = torch.as_tensor(sae.transform(acts[self.hook])).float()  # [n_rows, d_sae]
        self.where = torch.stack([acts.example_index, acts.position], 1)
        self.density = (self.latents > 0).float().mean(0).numpy()
        if isinstance(labels, dict):  # your own labels, as probes.sweep takes them
            acts, labels = own_labels(acts, labels), None
        names = labels if labels is not None else list(getattr(acts, "label_names", []))
        lab = {n: acts.labels(n) for n in names}
        classes = {n: acts.label(n).class_names for n in names if getattr(acts.label(n), "class_names", None)}
        self.target_names, self.match = viz.label_match_matrix(self.latents.numpy(), lab, classes)
        self._labels = lab
        self._classes = classes
        best = self.match.max(1) if self.match.size else np.zeros(self.latents.shape[1])
        self.best_score = best
        self.best_target = [self.target_names[i] if self.match.size else "-" for i in
                            (self.match.argmax(1) if self.match.size else np.zeros(len(best), int))]
        examples = sorted(set(acts.example_index.tolist()))
        self._control("sort", W.ToggleButtons(options=list(SORTS), value=sort, description="sort by"),
                      before=lambda _: self._set_latents(None, keep=False))
        self._control("latent", W.Dropdown(description="latent", layout=W.Layout(width="420px")))
        self._control("example", W.Dropdown(options=examples, value=example if example is not None else examples[0],
                                            description="example", layout=W.Layout(width="180px")))
        self._set_latents(latent)
        if self.task is None:  # plain tokens: no task pictures, the per-position table only
            self._finish(W.VBox([self.controls["sort"], self.controls["latent"]]), self._image("dashboard"),
                         self.controls["example"], self._html("where"))
            return
        self._finish(W.VBox([self.controls["sort"], self.controls["latent"]]), self._image("dashboard"),
                     self._html("legend"), self.controls["example"],
                     W.HBox([self._image("example"), self._html("where")]))
        self.views["legend"].value = (
            "<div style='font-size:12px;line-height:1.4;color:#333;max-width:880px'><b>Task pictures:</b> "
            "a node's (cell's) colour is "
            "the selected latent's largest activation at the tokens that name it, on the colour scale of the "
            "histogram above (and of the colour bar below); uncoloured: no token names it. "
            f"{viz.task_legend(self.task)}.</div>")

    # ---------------------------------------------------------------- ordering
    def order(self, sort: str) -> list[int]:
        """Latent ids in the order the ``sort`` option lists them (dead latents last / left out)."""
        alive = np.flatnonzero(self.density > 0)
        if sort == "density":
            return [int(i) for i in alive[np.argsort(-self.density[alive], kind="stable")]]
        if sort == "label match":
            return [int(i) for i in alive[np.argsort(-self.best_score[alive], kind="stable")]]
        lonely = alive[self.best_score[alive] < self.match_threshold]
        return [int(i) for i in lonely[np.argsort(-self.density[lonely], kind="stable")]]

    def _label(self, i: int) -> str:
        return (f"{i}: density {self.density[i]:.1%}, best {self.best_target[i]} "
                f"(|r|={self.best_score[i]:.2f})")

    def _set_latents(self, latent: int | None, keep: bool = True) -> None:
        """Fill the latent list in the current sort order; select ``latent``, else the old one (``keep``), else
        the top of the list."""
        ids = self.order(self.controls["sort"].value)
        if not ids:
            ids = [int(np.argmax(self.density))]  # nothing in this category: show the densest latent
        old = self.controls["latent"].value
        value = latent if latent is not None else (old if keep and old in ids else ids[0])
        if value not in range(self.latents.shape[1]):
            raise ValueError(f"latent={value} is out of range; the SAE has {self.latents.shape[1]} latents")
        opts = [(self._label(i), i) for i in ids[:500]]
        if value not in ids[:500]:
            opts.insert(0, (self._label(value), value))
        self._set_quiet("latent", options=opts, value=value)

    # ---------------------------------------------------------------- drawing
    def _draw(self) -> None:
        s = self.state()
        i, ex = int(s["latent"]), int(s["example"])
        v = self.latents[:, i]
        matches = [(self.target_names[j], float(self.match[i, j])) for j in np.argsort(-self.match[i])[:5]] \
            if self.match.size else None
        if self.changed != "example":
            board = self._figure("dashboard", None, lambda: viz.FeatureDashboard(
                self.where, self.data if self.task is not None else None, densities=self.density, k=self.top_k))
            self._show("dashboard", lambda: board.update(v, name=f"latent {i}", matches=matches), key=i)
        if self.task is not None:
            example = self.data[ex]
            overlay = viz.positions_to_overlay(self.task, example.tokens, viz.example_overlay(
                v, self.where, ex, len(example.tokens)), reduce="max")
            lo, hi = viz.value_range(v, min(0.0, float(v.min())))  # the dashboard's scale: same latent, same colours
            panel = self._figure("example", None, lambda: viz.TaskPanels(self.task, 1, width=4.6,
                                                                         label="activation"))
            self._show("example", lambda: panel.update([example], [overlay], [f"latent {i} on example {ex}"],
                                                       prefix_titles=True, vmin=lo, vmax=hi), key=(i, ex))
        rows = self.acts.example_index == ex
        f = self.latents[rows]  # [positions, d_sae]
        pos = self.acts.position[rows].tolist()
        top = torch.argsort(f.max(0).values, descending=True)[:12].tolist()
        if i not in top:  # keep the selected latent in view, in place of the 12th
            top = top[:11] + [i]
        tokens = self.data[ex] if self.task is None else self.data[ex].tokens
        toks = (token_strings(self.vocab, tokens[pos]) if self.task is None else
                [self.task.vocab.tokens[int(t)] for t in tokens[pos]])
        self.views["where"].value = viz.heatmap_html(
            f[:, top].T, [f"#{j} (selected)" if j == i else f"#{j}" for j in top],
            [f"{p}:{t}" for p, t in zip(pos, toks)], cmap="viridis", vmin=0.0, highlight_row=top.index(i),
            row_name="latent", col_name="position",
            title=f"most active latents on example {ex} (outlined: the selected latent {i})")

    def _describe(self) -> str:
        s = self.state()
        return (f"latent={s['latent']} (of {self.latents.shape[1]}, sorted by {s['sort']}), example={s['example']}, "
                f"hook={self.hook!r}")
