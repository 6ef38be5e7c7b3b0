"""Activations from a TransformerBridge for the unsupervised methods: all at once or streamed on the fly.

``collect_activations(model, tokens, hook)`` -> ``[n_rows, d]`` (rows in (example, position) order of
``mask``); ``activation_source(model, tokens, hook)`` -> an endless iterator of shuffled ``[rows, d]``
chunks, for ``SparseAutoencoder.fit`` when the cache would not fit in memory. Both run the model only up
to the hook's block (``stop_at_layer``) under ``torch.no_grad``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from toolkit.activations.full import full
from toolkit.unsupervised.train import generator


def check_hook(model: Any, hook_name: str) -> None:
    hooks = getattr(model, "hook_dict", None)
    if hooks is not None and hook_name not in hooks:
        examples = [h for h in hooks if h.endswith(("hook_resid_post", "hook_resid_mid"))][:4]
        raise KeyError(f"model has no hook {hook_name!r}; e.g. {examples} (model.hook_dict lists all)")


def run_to_hook(model: Any, tokens: torch.Tensor, hook_name: str) -> torch.Tensor:
    """Activations ``[n, seq, *]`` at ``hook_name`` for ``tokens [n, seq]`` (one forward pass that stops after
    the hook's block; :func:`toolkit.activations.full.full` runs it)."""
    return full(model, hook_name, tokens, batch_size=max(1, len(tokens)), threads=None, stop_early=True)


def _mask(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [n, seq], got shape {tuple(tokens.shape)}")
    if mask is None:
        return torch.ones_like(tokens, dtype=torch.bool)
    mask = torch.as_tensor(mask)
    if mask.shape != tokens.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor shaped like tokens {tuple(tokens.shape)}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")
    return mask


@torch.no_grad()
def collect_activations(model: Any, tokens: torch.Tensor, hook_name: str, mask: torch.Tensor | None = None,
                        batch_size: int = 128) -> torch.Tensor:
    """``[n_rows, d]`` activations at the positions where ``mask [n, seq]`` is True (default: all).

    Attention-head hooks (``[n, seq, heads, d_head]``) are flattened to ``heads * d_head``.
    """
    check_hook(model, hook_name)
    tokens = torch.as_tensor(tokens)
    mask = _mask(tokens, mask)
    out = []
    for i in range(0, tokens.shape[0], batch_size):
        act = run_to_hook(model, tokens[i:i + batch_size], hook_name)
        act = act.reshape(*act.shape[:2], -1)
        out.append(act[mask[i:i + batch_size]].float().cpu())
    return torch.cat(out)


def activation_source(model: Any, tokens: torch.Tensor, hook_name: str, mask: torch.Tensor | None = None,
                      examples_per_chunk: int = 64, seed: int = 0, repeat: bool = True) -> Iterator[torch.Tensor]:
    """Endless (``repeat=True``) iterator of shuffled ``[rows, d]`` chunks, computed on the fly.

    Each chunk runs the model on ``examples_per_chunk`` random examples and shuffles their selected
    positions, so consecutive SAE batches are not dominated by one sequence. Pass it to ``fit``.
    """
    check_hook(model, hook_name)
    tokens = torch.as_tensor(tokens)
    mask = _mask(tokens, mask)
    g = generator(seed, "activation-source")
    while True:
        order = torch.randperm(tokens.shape[0], generator=g)
        for i in range(0, tokens.shape[0], examples_per_chunk):
            idx = order[i:i + examples_per_chunk]
            act = run_to_hook(model, tokens[idx], hook_name)
            rows = act.reshape(*act.shape[:2], -1)[mask[idx]].float().cpu()
            if rows.shape[0]:
                yield rows[torch.randperm(rows.shape[0], generator=g)]
        if not repeat:
            return
