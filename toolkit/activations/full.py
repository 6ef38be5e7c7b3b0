"""The whole activation of one hook, every example and every position, in the hook's own shape.

:func:`cache` keeps chosen positions as rows ``[n_rows, d]``; :func:`full` keeps the tensor as the hook emits
it (``[n, seq, d_model]``, ``[n, seq, heads, d_head]`` for ``hook_z``, ``[n, heads, q, k]`` for
``hook_pattern``). It is what interventions patch from and what unsupervised streaming samples from.
:func:`trace` runs a few examples once and returns the logits with several hooks in their own shapes (what the
explorers draw). With :func:`cache`, these are the only places where the toolkit runs a model to collect
activations.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit._threads import torch_threads
from toolkit.activations.batching import batch_rows
from toolkit.activations.cache import _device
from toolkit.activations.hooks import stop_layer
from toolkit.activations.positions import tokens_of
from toolkit.models.build import check_bridge


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


@torch.no_grad()
def trace(model: Any, data: Any, suffixes: tuple[str, ...],
          threads: int | None = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass over ``data`` (a dataset or tokens ``[n, seq]``, a few examples: no batching) in eval mode.

    Returns ``(logits [n, seq, d_vocab], {hook_name: activation})`` for every hook whose name ends with one of
    ``suffixes`` (e.g. ``("attn.hook_pattern",)``), each in the hook's own shape, as float32 on the model's device.
    The model's train/eval mode is restored afterwards.
    """
    check_bridge(model, "activations.trace")
    tokens = tokens_of(data)
    d_vocab = getattr(getattr(model, "cfg", None), "d_vocab", None)
    if d_vocab is not None and tokens.numel() and int(tokens.max()) >= d_vocab:
        raise ValueError(f"the data uses token id {int(tokens.max())} but the model has only {d_vocab} tokens; "
                         "use data made for this model's vocabulary")
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch_threads(threads):
            logits, cache = model.run_with_cache(tokens.to(_device(model)),
                                                 names_filter=lambda n: n.endswith(tuple(suffixes)))
    finally:
        model.train(was_training)
    return logits.detach().float(), {k: v.detach().float() for k, v in cache.items()}
