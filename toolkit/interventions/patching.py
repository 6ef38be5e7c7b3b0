"""Activation patching between clean and corrupted inputs: which (hook, position) or (hook, head) carries the
information that makes the clean answer clean?

    res = interventions.patching(model, clean, corrupt, hooks="resid_pre", per="position")
    res.normalized          # [n_hooks, seq]: 1 = patching here restores the clean behaviour, 0 = no effect
    res.table()

The corrupted run gets the clean activation at one site at a time ("denoising"). Metrics:

* ``"logit_diff"`` (default): at the first target position where the clean and corrupted answers differ,
  logit(clean token) - logit(corrupted token), averaged over examples
* ``"prob"``: probability of the clean token there
* ``"kl"``: mean KL(clean || patched) over the clean target positions (lower = more restored)
* a callable ``(logits, clean, corrupt) -> float``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from toolkit._result import frame, plain
from toolkit._threads import torch_threads
from toolkit.activations.hooks import resolve
from toolkit.activations.positions import tokens_of
from toolkit.interventions.core import logits as run_logits
from toolkit.interventions.edits import capture, patch

PATCH_METRICS = ("logit_diff", "prob", "kl")


def answer_sites(clean: Any, corrupt: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per example: (row, predicting position, clean token, corrupt token) at the first differing target."""
    ct, xt = tokens_of(clean), tokens_of(corrupt)
    if ct.shape != xt.shape:
        raise ValueError(f"clean {tuple(ct.shape)} and corrupt {tuple(xt.shape)} must have the same shape")
    mask = clean.loss_mask if hasattr(clean, "loss_mask") else torch.ones_like(ct, dtype=torch.bool)
    differ = mask & (ct != xt)
    differ[:, 0] = False
    has = differ.any(1)
    if not bool(has.any()):
        raise ValueError("the clean and corrupted answers never differ at a target position; corrupt something "
                         "that changes the answer (e.g. the goal), or use metric='kl'")
    first = differ.int().argmax(1)
    rows = has.nonzero().flatten()
    pos = first[rows]
    return rows, pos - 1, ct[rows, pos], xt[rows, pos]


def patch_metric(metric: str | Callable, clean: Any, corrupt: Any, clean_logits: torch.Tensor) -> Callable:
    """``logits -> float`` for a patching metric."""
    fn = metric_tensor(metric, clean, corrupt, clean_logits)
    return lambda lg: float(fn(lg))


def metric_tensor(metric: str | Callable, clean: Any, corrupt: Any, clean_logits: torch.Tensor) -> Callable:
    """``logits [n, seq, V] -> 0-d tensor`` for a patching metric, differentiable in the logits (a callable metric
    keeps whatever it returns)."""
    if callable(metric):
        return lambda lg: torch.as_tensor(metric(lg, clean, corrupt))
    if metric not in PATCH_METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {PATCH_METRICS} or a callable")
    if metric == "kl":
        mask = (clean.loss_mask if hasattr(clean, "loss_mask") else torch.ones_like(tokens_of(clean), dtype=bool))
        mask = mask[:, 1:]
        ref = F.log_softmax(clean_logits[:, :-1][mask], -1)
        return lambda lg: F.kl_div(F.log_softmax(lg[:, :-1][mask], -1), ref, log_target=True, reduction="batchmean")
    rows, pos, good, bad = answer_sites(clean, corrupt)
    if metric == "prob":
        return lambda lg: lg[rows, pos].softmax(-1).gather(1, good[:, None]).mean()
    return lambda lg: (lg[rows, pos].gather(1, good[:, None]) - lg[rows, pos].gather(1, bad[:, None])).mean()


@dataclass
class PatchingResult:
    """Scores of every patched site.

    Attributes:
        scores: ``[n_hooks, n_sites]`` metric after patching each site.
        clean, corrupt: the metric on the unpatched clean and corrupted runs.
        hooks: row names; sites: column keys (positions, heads, or ``"all"``).
        per: ``"position"``, ``"head"`` or ``"layer"``.
    """

    scores: torch.Tensor
    clean: float
    corrupt: float
    hooks: list[str]
    sites: list[Any]
    per: str
    metric: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def normalized(self) -> torch.Tensor:
        """``(score - corrupt) / (clean - corrupt)``: 1 = fully restored, 0 = no effect."""
        gap = self.clean - self.corrupt
        if abs(gap) < 1e-12:
            return torch.full_like(self.scores, float("nan"))
        return (self.scores - self.corrupt) / gap

    def table(self) -> Any:
        """One row per (hook, site): ``hook``, the site, ``score`` and ``normalized`` (a pandas DataFrame)."""
        norm = self.normalized
        rows = [{"hook": h, self.per: s, "score": float(self.scores[i, j]), "normalized": float(norm[i, j])}
                for i, h in enumerate(self.hooks) for j, s in enumerate(self.sites)]
        return frame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as plain Python (JSON-able): ``scores`` as ``[n_hooks][n_sites]`` lists."""
        return plain({"metric": self.metric, "per": self.per, "clean": self.clean, "corrupt": self.corrupt,
                      "hooks": self.hooks, "sites": self.sites, "scores": self.scores, "meta": self.meta})

    def __repr__(self) -> str:
        return (f"PatchingResult({self.metric}: clean {self.clean:.3f}, corrupt {self.corrupt:.3f}; "
                f"{len(self.hooks)} hooks x {len(self.sites)} {self.per} sites)")


def patching(model: Any, clean: Any, corrupt: Any, hooks: Any = "resid_pre", per: str = "position",
             positions: Any = None, metric: str | Callable = "logit_diff", batch_size: int = 256,
             progress: bool = True, threads: int | None = 1) -> PatchingResult:
    """Patch clean activations into the corrupted run, one site at a time.

    Args:
        hooks: hook name(s) / pattern(s), e.g. ``"resid_pre"`` (every layer) or ``"blocks.*.attn.hook_z"``.
        per: ``"position"`` (one site per position), ``"head"`` (one per head of per-head hooks such as
            ``hook_z``, at ``positions``), or ``"layer"`` (the whole hook at ``positions``).
        positions: restricts the patched positions (any positions spec; default all).
    """
    if per not in ("position", "head", "layer"):
        raise ValueError(f"per={per!r} is not valid; use 'position', 'head' or 'layer'")
    names = resolve(model, hooks)
    with torch_threads(threads):
        clean_lg = run_logits(model, clean, batch_size, None)
        corrupt_lg = run_logits(model, corrupt, batch_size, None)
        fn = patch_metric(metric, clean, corrupt, clean_lg)
        seq = tokens_of(clean).shape[1]
        sites: list[Any]
        if per == "position":
            sites = list(range(seq)) if positions is None else [p for p in range(seq) if p in set(_as_list(positions))]
        elif per == "head":
            sites = list(range(model.cfg.n_heads))
        else:
            sites = ["all"]
        scores = torch.full((len(names), len(sites)), float("nan"))
        bar = tqdm(total=len(names) * len(sites), desc="patching", disable=not progress)
        for i, name in enumerate(names):
            src = capture(model, name, clean, batch_size)
            for j, site in enumerate(sites):
                pos = [site] if per == "position" else positions
                heads = site if per == "head" else None
                with patch(model, name, src, positions=pos, heads=heads, data=corrupt):
                    scores[i, j] = fn(run_logits(model, corrupt, batch_size, None))
                bar.update(1)
        bar.close()
    label = metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")
    return PatchingResult(scores, fn(clean_lg), fn(corrupt_lg), names, sites, per, label)


def _as_list(positions: Any) -> list[int]:
    if isinstance(positions, int):
        return [positions]
    if isinstance(positions, list | tuple):
        return list(positions)
    raise ValueError("with per='position', positions must be an int or a list of ints (or None for all)")
