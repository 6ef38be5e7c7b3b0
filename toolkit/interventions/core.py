"""Shared machinery: which entries of an activation to edit, batches over a dataset, and the metrics.

Positions (``positions=``) for every intervention:

* ``None``: every position
* an int or a list of ints: the same positions in every example (negative counts from the end)
* a BoolTensor ``[seq]`` (same for all examples) or ``[n, seq]`` (per example; :func:`run` and
  :func:`logits` hand every batch its rows; when you call the model yourself, pass all ``n`` examples at once)
* a name (``"loss"``, ``"query"``, a label name...) together with ``data=``: see
  :func:`toolkit.activations.position_mask`

Metrics (``metric=``) computed from logits ``[n, seq, V]`` and a SearchDataset:

* ``"exact_path"``: fraction of examples whose every target token is the argmax (teacher-forced; for greedy
  decoding this is the same number: if every teacher-forced prediction is right, greedy decoding reproduces
  the path, and vice versa)
* ``"token_acc"``: fraction of target tokens right; ``"loss"``: mean cross-entropy over target tokens
* ``"kl"``: mean KL(reference || run) over target positions (pass ``reference=`` logits)
* a callable ``(logits, data) -> float``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from toolkit._threads import torch_threads
from toolkit.activations.batching import batch_rows, current_rows
from toolkit.activations.cache import _device
from toolkit.activations.hooks import position_dim
from toolkit.activations.positions import position_mask, tokens_of

METRICS = ("exact_path", "token_acc", "loss", "kl")


def resolve_positions(positions: Any, data: Any = None) -> Any:
    """Turn a name into a BoolTensor ``[n, seq]`` (needs ``data``); other specs pass through after checks."""
    if isinstance(positions, str):
        if data is None:
            raise ValueError(f"positions={positions!r} is a name; pass data= (the SearchDataset you will run) too")
        return position_mask(data, positions)
    if isinstance(positions, torch.Tensor) and positions.dtype != torch.bool:
        raise TypeError("a positions tensor must be bool ([seq] or [n, seq]); use a list for position indices")
    if positions is not None and not isinstance(positions, int | list | tuple | torch.Tensor):
        raise TypeError(f"positions must be None, an int, a list of ints, a BoolTensor or a name; got {positions!r}")
    return positions


def batch_mask(positions: Any, batch: int, seq: int, device: torch.device) -> torch.Tensor:
    """The positions to edit in the current batch: BoolTensor ``[batch, seq]``."""
    if positions is None:
        return torch.ones(batch, seq, dtype=torch.bool, device=device)
    if isinstance(positions, int | list | tuple):
        idx = [positions] if isinstance(positions, int) else list(positions)
        m = torch.zeros(seq, dtype=torch.bool, device=device)
        for p in idx:
            if -seq <= p < seq:
                m[p] = True
        return m.expand(batch, seq)
    mask = positions.to(device)
    if mask.ndim == 1:
        return mask[:seq].expand(batch, seq)
    return source_rows(mask, batch, what="per-example positions cover")[:, :seq]


def edit(t: torch.Tensor, name: str, mask: torch.Tensor, heads: Any, fn: Callable[[torch.Tensor], torch.Tensor]
         ) -> torch.Tensor:
    """Replace the selected entries of activation ``t`` by ``fn(selected)``.

    ``mask [b, seq]`` selects positions (query positions for attention patterns); ``heads`` (int / list)
    selects the head axis for per-head hooks (``hook_z``, ``hook_q``..., ``hook_pattern``).
    """
    pattern = position_dim(name) == 2
    tt = t.transpose(1, 2) if pattern else t  # [b, seq, ...]
    out = tt.clone()
    sel = out[mask]  # [rows, ...]
    if heads is None:
        new = fn(sel)
    else:
        if sel.ndim < 3:
            raise ValueError(f"heads= needs a per-head hook (e.g. blocks.0.attn.hook_z); {name!r} has no head axis")
        h = [heads] if isinstance(heads, int) else list(heads)
        new = sel.clone()
        new[:, h] = fn(sel[:, h])
    out[mask] = new.to(out.dtype)
    return out.transpose(1, 2) if pattern else out


def source_rows(source: torch.Tensor, batch: int, what: str = "the source activations hold") -> torch.Tensor:
    """The rows of a full-dataset tensor ``[n, ...]`` that belong to the current batch."""
    rows = current_rows()
    if rows is not None:
        source = source[rows[0]:rows[1]]
    if source.shape[0] != batch:
        raise ValueError(f"{what} {source.shape[0]} examples but this forward pass has {batch}; "
                         "run all examples at once or use interventions.run / interventions.logits")
    return source


@torch.no_grad()
def logits(model: Any, data: Any, batch_size: int = 256, threads: int | None = 1) -> torch.Tensor:
    """Logits ``[n, seq, V]`` over a dataset, with whatever interventions are active."""
    tokens = tokens_of(data)
    out = []
    with torch_threads(threads):
        for s in range(0, len(tokens), batch_size):
            e = min(len(tokens), s + batch_size)
            with batch_rows(s, e):
                out.append(model(tokens[s:e].to(_device(model))).float().cpu())
    return torch.cat(out)


def score(lg: torch.Tensor, data: Any, metric: str | Callable = "exact_path",
          reference: torch.Tensor | None = None) -> float:
    """A metric of logits ``[n, seq, V]`` on a SearchDataset (see the module docstring)."""
    if callable(metric):
        return float(metric(lg, data))
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {METRICS} or a callable (logits, data) -> float")
    if not hasattr(data, "loss_mask"):
        raise TypeError(f"metric {metric!r} needs a SearchDataset (with loss_mask), not bare tokens")
    mask = data.loss_mask[:, 1:]
    pred_lg = lg[:, :-1]
    target = data.tokens[:, 1:]
    if metric == "loss":
        return float(F.cross_entropy(pred_lg[mask], target[mask]))
    if metric == "kl":
        if reference is None:
            raise ValueError("metric='kl' needs reference= logits (e.g. interventions.logits(model, data) first)")
        ref = F.log_softmax(reference[:, :-1][mask].float(), -1)
        cur = F.log_softmax(pred_lg[mask].float(), -1)
        return float(F.kl_div(cur, ref, log_target=True, reduction="batchmean"))
    right = (pred_lg.argmax(-1) == target) | ~mask
    if metric == "token_acc":
        return float(right[mask].float().mean())
    return float(right.all(1).float().mean())


def run(model: Any, data: Any, metric: str | Callable = "exact_path", reference: torch.Tensor | None = None,
        batch_size: int = 256, threads: int | None = 1) -> float:
    """Run the model over ``data`` (with the active interventions) and return the named metric."""
    return score(logits(model, data, batch_size, threads), data, metric, reference)
