"""The whole activation of one hook, every example and every position, in the hook's own shape.

:func:`cache` keeps chosen positions as rows ``[n_rows, d]``; :func:`full` keeps the tensor as the hook emits
it (``[n, seq, d_model]``, ``[n, seq, heads, d_head]`` for ``hook_z``, ``[n, heads, q, k]`` for
``hook_pattern``). It is what interventions patch from and what unsupervised streaming samples from, and it is
the one other place besides :func:`cache` where the toolkit runs a model to collect activations.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit._threads import torch_threads
from toolkit.activations.batching import batch_rows
from toolkit.activations.cache import _device
from toolkit.activations.hooks import stop_layer
from toolkit.activations.positions import tokens_of


@torch.no_grad()
def full(model: Any, hook: str, data: Any, batch_size: int = 256, threads: int | None = 1,
         stop_early: bool = False) -> torch.Tensor:
    """The activation of ``hook`` (one exact hook name) over ``data`` (a dataset or tokens ``[n, seq]``).

    Hooks already attached to the model (an intervention) stay active; each batch runs inside
    ``batch_rows(start, stop)`` so they see which dataset rows it holds. ``stop_early`` stops the forward pass
    after the hook's block (same values, less work). Returns ``[n, ...]`` on the CPU.
    """
    tokens = tokens_of(data)
    parts: list[torch.Tensor] = []
    stop = stop_layer([hook], model.cfg.n_layers) if stop_early else None
    kwargs = {} if stop is None else {"stop_at_layer": stop}

    def grab(t: torch.Tensor, hook: Any) -> torch.Tensor:
        parts.append(t.detach().cpu())
        return t

    with model.hooks(fwd_hooks=[(hook, grab)]), torch_threads(threads):
        for s in range(0, len(tokens), batch_size):
            with batch_rows(s, min(len(tokens), s + batch_size)):
                model(tokens[s:s + batch_size].to(_device(model)), **kwargs)
    if not parts:
        raise RuntimeError(f"hook {hook!r} did not fire; check the name with activations.hook_names(model)")
    return torch.cat(parts)
