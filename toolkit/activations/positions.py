"""Which token positions to keep: a spec -> BoolTensor ``[n, seq]``.

Specs:

* ``"all"``: every non-padding position (every position when the data has no vocabulary)
* ``"loss"``: the loss positions (``data.loss_mask``: tokens that are training targets)
* ``"prompt"``: positions before ``data.prompt_len``
* a label name (e.g. ``"parent"``): that label's mask, so every row has a valid label value
* a named position of the task (e.g. ``"query"``; see ``task.positions``)
* ``"label:NAME"`` / ``"position:NAME"`` when a name is both (the tree task's ``"goal"`` is a label defined at
  the query and path positions *and* the position of the goal token); a bare ambiguous name means the label
* a BoolTensor ``[n, seq]``, or a callable ``data -> BoolTensor [n, seq]``
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

PositionSpec = str | torch.Tensor | Callable[[Any], torch.Tensor]
BUILTIN = ("all", "loss", "prompt")


def tokens_of(data: Any) -> torch.Tensor:
    """``data.tokens`` for a SearchDataset, or the tensor itself."""
    tokens = data.tokens if hasattr(data, "tokens") else data
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.dtype != torch.long:
        raise TypeError("data must be a SearchDataset (task.generate(n)) or a LongTensor [n, seq] of tokens, "
                        f"got {type(data).__name__}")
    return tokens


def position_mask(data: Any, positions: PositionSpec) -> torch.Tensor:
    """Resolve a position spec to a BoolTensor ``[n, seq]``."""
    tokens = tokens_of(data)
    shape = tuple(tokens.shape)
    if isinstance(positions, torch.Tensor):
        mask = positions
    elif callable(positions):
        mask = positions(data)
    elif isinstance(positions, str):
        mask = _named(data, tokens, positions)
    else:
        raise TypeError(f"positions must be a name, a BoolTensor [n, seq] or a callable, got {positions!r}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != shape:
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"positions must give a BoolTensor of shape {shape} (the tokens' shape), got {got}")
    return mask


def _task_position(data: Any, name: str) -> torch.Tensor | None:
    task = getattr(data, "task", None)
    if task is None or not hasattr(task, "positions"):
        return None
    try:
        return task.positions(data, name)
    except ValueError:
        return None


def _named(data: Any, tokens: torch.Tensor, name: str) -> torch.Tensor:
    if name == "all":
        vocab = getattr(getattr(data, "task", None), "vocab", None)
        if vocab is None:
            return torch.ones_like(tokens, dtype=torch.bool)
        return tokens != vocab.pad_id
    has_data = hasattr(data, "tokens")
    if name == "loss":
        if not has_data:
            raise ValueError("positions='loss' needs a SearchDataset (with loss_mask), not a bare token tensor")
        return data.loss_mask.clone()
    if name == "prompt":
        if not has_data:
            raise ValueError("positions='prompt' needs a SearchDataset (with prompt_len)")
        return torch.arange(tokens.shape[1])[None, :] < data.prompt_len[:, None]
    labels = getattr(data, "labels", {}) or {}
    task = getattr(data, "task", None)
    kind, _, bare = name.partition(":") if name.startswith(("label:", "position:")) else ("", "", name)
    if kind != "position" and bare in labels:
        if not kind and _task_position(data, bare) is not None:
            warnings.warn(f"positions={bare!r} is both a label and a task position; using the label's mask. Say "
                          f"'label:{bare}' or 'position:{bare}' to choose.", stacklevel=4)
        return labels[bare].mask.clone()
    task_note = ""
    if kind != "label" and task is not None and hasattr(task, "positions"):
        try:
            return task.positions(data, bare)
        except ValueError as e:
            task_note = f"; the task says: {e}"
    valid = list(BUILTIN) + sorted(labels)
    raise ValueError(f"unknown positions {name!r}; valid names: {valid}, a task position name, a BoolTensor "
                     f"[n, seq] or a callable{task_note}")
