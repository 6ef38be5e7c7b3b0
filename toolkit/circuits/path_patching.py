"""Path patching: does a sender's output matter through one particular receiver?

    res = circuits.path_patching(model, clean, corrupt, sender=(0, 1),
                                 receivers=[(1, 0, "v"), (1, 1, "q"), "logits"], metric=my_metric)
    res.normalized        # [n_receivers]: 1 = this path alone carries the whole clean -> corrupt change

The algorithm (Wang et al. 2022, IOI, appendix; Goldowsky-Dill et al. 2023), all runs on the **clean** input:

1. *Sender run*: the sender's output (``blocks.Ls.attn.hook_z`` for its head, or ``blocks.Ls.hook_mlp_out`` for an
   MLP) takes its value from the corrupted run at ``sender_positions``, and every other head and MLP of blocks
   ``>= Ls`` is frozen to its clean value at every position. So the residual stream of this run differs from the
   clean one only by (corrupted - clean sender output), and only through the direct path. We record what the
   receivers read: the receiver head's ``hook_q`` / ``hook_k`` / ``hook_v`` (``[n, seq, head, d_head]``, after its
   ``ln1``), or the logits for the receiver ``"logits"`` (the path sender -> residual -> unembedding).
2. *Receiver run* (not for ``"logits"``): a clean run in which only the receiver head's ``q`` / ``k`` / ``v`` takes
   the recorded value at ``receiver_positions``; everything downstream of it recomputes.

The metric of the run (step 1's logits for ``"logits"``, step 2's otherwise) gives the effect of the path,
normalised by the whole change: ``(metric_path - metric_clean) / (metric_corrupt - metric_clean)``; 1 = the path
carries the full effect of corrupting the input, 0 = nothing goes through it.

Positions: ``sender_positions`` (where the sender is corrupted) and ``receiver_positions`` (the query positions
at which the receiver's q / k / v is patched; a key position's k / v is read by every later query) take any
positions spec (None = all). Metric: ``"logit_diff"``, ``"prob"``, ``"kl"`` or a callable
``(logits, clean, corrupt) -> float`` as in :func:`toolkit.interventions.patching`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from toolkit._result import frame, plain
from toolkit.circuits.components import component, metric_name, run_cache
from toolkit.interventions.core import logits as run_logits
from toolkit.interventions.edits import capture, patch
from toolkit.interventions.patching import patch_metric

INPUTS = ("q", "k", "v")


def _receiver(spec: Any, model: Any, sender_layer: int) -> tuple[str, int | None, str | None]:
    """``(name, head, hook)``: ``("L1H0.v", 0, "blocks.1.attn.hook_v")`` or ``("logits", None, None)``."""
    if spec in ("logits", "resid", "resid_final"):
        return "logits", None, None
    if not (isinstance(spec, tuple | list) and len(spec) == 3 and spec[2] in INPUTS):
        raise ValueError(f"a receiver is (layer, head, 'q' | 'k' | 'v') or 'logits'; got {spec!r}")
    c = component((spec[0], spec[1]), model)
    if c.head is None or c.layer <= sender_layer:
        raise ValueError(f"receiver {spec!r} must be a head in a later block than the sender (block {sender_layer})")
    return f"{c.name}.{spec[2]}", c.head, f"blocks.{c.layer}.attn.hook_{spec[2]}"


@dataclass
class PathPatchingResult:
    """Effects of the paths sender -> each receiver.

    Attributes:
        scores: ``[n_receivers]`` metric of each path-patched run; clean, corrupt: the unpatched metrics.
        receivers: names (``"L1H0.v"``, ``"logits"``); sender: ``"L0H1"`` or ``"MLP0"``.
    """

    scores: torch.Tensor
    clean: float
    corrupt: float
    sender: str
    receivers: list[str]
    metric: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def effect(self) -> torch.Tensor:
        """``[n_receivers]``: ``score - clean``."""
        return self.scores - self.clean

    @property
    def normalized(self) -> torch.Tensor:
        """``[n_receivers]``: ``(score - clean) / (corrupt - clean)``; NaN when the two runs agree."""
        gap = self.corrupt - self.clean
        return self.effect / gap if abs(gap) >= 1e-12 else torch.full_like(self.scores, float("nan"))

    def table(self) -> Any:
        """One row per receiver: ``sender``, ``receiver``, ``score``, ``effect``, ``normalized`` (a DataFrame)."""
        return frame([{"sender": self.sender, "receiver": r, "score": float(self.scores[i]),
                       "effect": float(self.effect[i]), "normalized": float(self.normalized[i])}
                      for i, r in enumerate(self.receivers)])

    def to_dict(self) -> dict[str, Any]:
        return plain({"sender": self.sender, "receivers": self.receivers, "metric": self.metric, "clean": self.clean,
                      "corrupt": self.corrupt, "scores": self.scores, "normalized": self.normalized,
                      "meta": self.meta})

    def __repr__(self) -> str:
        parts = ", ".join(f"{r} {float(v):.3f}" for r, v in zip(self.receivers, self.normalized, strict=True))
        return f"PathPatchingResult({self.sender} -> {parts} (normalised))"


def path_patching(model: Any, clean: Any, corrupt: Any, sender: Any, receivers: Any = ("logits",),
                  metric: str | Callable = "logit_diff", sender_positions: Any = None, receiver_positions: Any = None,
                  batch_size: int = 256, progress: bool = True) -> PathPatchingResult:
    """Patch ``sender``'s corrupted output into the clean run along the path into each receiver only.

    Args:
        clean, corrupt: SearchDatasets or tokens ``[n, seq]`` of the same shape.
        sender: a head ``(layer, head)`` / ``"L0H1"`` or an MLP ``(layer, None)`` / ``"MLP0"``.
        receivers: a list of ``(layer, head, "q" | "k" | "v")`` (a head of a later block) and / or ``"logits"``.
        sender_positions, receiver_positions: see the module docstring (None = every position).
    """
    s = component(sender, model)
    recv = [_receiver(r, model, s.layer) for r in ([receivers] if isinstance(receivers, str) else receivers)]
    clean_lg = run_logits(model, clean, batch_size)
    fn = patch_metric(metric, clean, corrupt, clean_lg)
    corrupt_lg = run_logits(model, corrupt, batch_size)
    L = model.cfg.n_layers
    frozen = [f"blocks.{layer}.{h}" for layer in range(s.layer, L) for h in ("attn.hook_z", "hook_mlp_out")]
    clean_acts = run_cache(model, clean, frozen, batch_size)
    sender_src = capture(model, s.hook, corrupt, batch_size)
    heads_all = list(range(model.cfg.n_heads))
    hooks = sorted({h for _, _, h in recv if h is not None})

    with ExitStack() as stack:  # step 1: sender corrupted, every other head / MLP of blocks >= Ls frozen at clean
        for name in frozen:
            keep = [h for h in heads_all if not (name == s.hook and h == s.head)] if "hook_z" in name else None
            if name == s.hook and s.head is None:
                continue
            if keep != []:
                stack.enter_context(patch(model, name, clean_acts[name], heads=keep))
        stack.enter_context(patch(model, s.hook, sender_src, positions=sender_positions, heads=s.head, data=clean))
        direct = fn(run_logits(model, clean, batch_size))
        recorded = run_cache(model, clean, hooks, batch_size) if hooks else {}

    scores = []
    for _, head, hook in tqdm(recv, desc="path patching", disable=not progress):
        if hook is None:
            scores.append(direct)
            continue
        with patch(model, hook, recorded[hook], positions=receiver_positions, heads=head, data=clean):
            scores.append(fn(run_logits(model, clean, batch_size)))
    label = metric_name(metric)
    return PathPatchingResult(torch.tensor(scores), fn(clean_lg), fn(corrupt_lg), s.name, [r[0] for r in recv],
                              label, {"sender_positions": plain(sender_positions),
                                      "receiver_positions": plain(receiver_positions)})
