"""AttentionExplorer: pick an example, layer, head and query position; see where that query attends,
drawn on the task (attention mass pooled onto the nodes / cells its tokens name) and as a heatmap."""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import torch

from toolkit import viz
from toolkit.widgets._model import attention_patterns, is_plain, real_length, token_strings
from toolkit.widgets.base import Explorer


class AttentionExplorer(Explorer):
    """Attention of a model on a few examples of its task.

    Args:
        model: a TransformerBridge for ``data.task``, or any TransformerBridge for plain tokens.
        data: a SearchDataset, or token ids ``[n, seq]``; the first ``max_examples`` examples are run once, up front.
        vocab: for plain tokens: a list of token strings or a HF tokenizer (then there is no ``task`` view).
        example, layer, head: initial selection; ``query`` defaults to the last prompt position.

    Controls (``explorer.controls``): ``example``, ``layer``, ``head``, ``query``. Views: ``task`` (the example
    drawn with the attention from the query pooled onto its elements), ``heatmap`` (HTML: the head's pattern,
    the query row outlined) and ``top`` (the most-attended tokens). :meth:`circuits` gives the interactive
    circuitsvis view of the current layer.
    """

    def __init__(self, model: Any, data: Any, *, vocab: Any = None, example: int = 0, layer: int = 0, head: int = 0,
                 query: int | None = None, max_examples: int = 64):
        super().__init__()
        plain = is_plain(data, vocab, "AttentionExplorer")
        self.model, self.data, self.vocab = model, data, vocab
        self.task, self.tokens = (None, data) if plain else (data.task, data.tokens)
        self.n = min(len(data), int(max_examples))
        self.patterns = attention_patterns(model, self.tokens[: self.n])  # [L, n, H, seq, seq]
        n_layers, _, n_heads = self.patterns.shape[:3]
        if not 0 <= example < self.n:
            raise ValueError(f"example={example} is out of range; this explorer holds examples 0..{self.n - 1}")
        if not 0 <= layer < n_layers or not 0 <= head < n_heads:
            raise ValueError(f"layer={layer}, head={head} out of range: the model has {n_layers} layers x "
                             f"{n_heads} heads")
        self._control("example", W.IntSlider(value=example, min=0, max=self.n - 1, description="example",
                                             continuous_update=False), before=lambda _: self._set_queries(None))
        self._control("layer", W.ToggleButtons(  # a component name (L{layer}H{head}), not a depth: see viz.names
            options=list(range(n_layers)), value=layer, description="layer", style={"button_width": "36px"},
            tooltips=[f"block {i}: its heads read depth {i} and write into depth {i + 1}" for i in range(n_layers)]))
        self._control("head", W.ToggleButtons(options=list(range(n_heads)), value=head, description="head",
                                              style={"button_width": "36px"}))
        self._control("query", W.Dropdown(description="query", layout=W.Layout(width="220px")))
        self._set_queries(query)
        controls = W.VBox([self.controls["example"], self.controls["layer"], self.controls["head"],
                           self.controls["query"]])
        views = [self._image("task")] if self.task is not None else []
        self._finish(W.HBox([controls, self._html("top")]), W.HBox(views + [self._html("heatmap")]))

    # ---------------------------------------------------------------- helpers
    def _tokens(self) -> list[str]:
        tokens = self.tokens[int(self.controls["example"].value)]
        if self.task is None:
            return token_strings(self.vocab, tokens)
        seq = real_length(tokens, self.task.vocab.pad_id)
        return [self.task.vocab.tokens[int(t)] for t in tokens[:seq]]

    def _set_queries(self, query: int | None) -> None:
        """Query options: every real position of the current example ("17: S5"); keep the old one if valid."""
        toks = self._tokens()
        example = int(self.controls["example"].value)
        old = self.controls["query"].value
        prompt_len = len(toks) if self.task is None else int(self.data.prompt_len[example])
        default = min(prompt_len - 1, len(toks) - 1)
        value = query if query is not None else (old if old is not None and old < len(toks) else default)
        if not 0 <= value < len(toks):
            raise ValueError(f"query={value} is outside the {len(toks)} real positions of example {example}")
        self._set_quiet("query", options=[(f"{i}: {t}", i) for i, t in enumerate(toks)], value=value)

    def pattern(self) -> torch.Tensor:
        """The selected head's pattern on the selected example, cropped to real tokens: ``[seq, seq]``."""
        s = self.state()
        seq = len(self._tokens())
        return self.patterns[s["layer"], s["example"], s["head"], :seq, :seq]

    def attention_from_query(self) -> torch.Tensor:
        """``[seq]``: where the selected query position attends."""
        return self.pattern()[self.state()["query"]]

    # ---------------------------------------------------------------- drawing
    def _draw(self) -> None:
        s = self.state()
        toks, row = self._tokens(), self.attention_from_query()
        name = f"L{s['layer']}H{s['head']}"
        q = s["query"]
        if self.task is not None:
            ex = self.data[s["example"]]
            full = torch.full((len(ex.tokens),), float("nan"))
            full[: len(row)] = row
            overlay = viz.positions_to_overlay(self.task, ex.tokens, full)
            panel = self._figure("task", 1, lambda: viz.TaskPanels(self.task, 1, width=4.6, label="attention"))
            self._show("task", lambda: panel.update([ex], [overlay], [f"{name} attention from {q}: {toks[q]}"],
                                                    prefix_titles=True), key=(s["example"], s["layer"], s["head"], q))
        self.views["heatmap"].value = viz.attention_html(self.pattern(), toks, query=q, title=f"{name} pattern")
        top = torch.argsort(row, descending=True)[:5].tolist()
        items = "".join(f"<li>{i}: <code>{toks[i]}</code> {float(row[i]):.2f}</li>" for i in top)
        self.views["top"].value = f"<b>{name}, query {q} (<code>{toks[q]}</code>) attends to</b><ol>{items}</ol>"

    def circuits(self) -> viz.CircuitsView:
        """Interactive circuitsvis view of every head of the current layer on the current example."""
        s = self.state()
        seq = len(self._tokens())
        return viz.attention_heads(self._tokens(), self.patterns[s["layer"], s["example"], :, :seq, :seq])

    def _describe(self) -> str:
        s = self.state()
        toks = self._tokens()
        return (f"example={s['example']}/{self.n - 1}, layer={s['layer']}, head={s['head']}, "
                f"query={s['query']} {toks[s['query']]!r}")
