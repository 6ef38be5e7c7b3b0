"""Running a model once for an explorer: attention patterns and residual streams of a few examples."""

from __future__ import annotations

from typing import Any

import torch

from toolkit._threads import one_thread  # noqa: F401  (used by the explorers)
from toolkit.activations.full import trace
from toolkit.models.build import check_bridge

PLAIN_HINT = (". It draws a search task's state, so it needs that task's data; on plain tokens of your own model "
              "use AttentionExplorer(model, tokens, vocab=...), ProbeExplorer(sweep, acts) and FeatureBrowser(sae, "
              "acts, tokens, vocab=..., hook=...)")


def check_data(data: Any, who: str) -> None:
    for attr in ("tokens", "task", "prompt_len"):
        if not hasattr(data, attr):
            raise TypeError(f"{who} needs a SearchDataset (from task.generate(n)); got {type(data).__name__}"
                            + (PLAIN_HINT if isinstance(data, torch.Tensor) else ""))
    if len(data) == 0:
        raise ValueError(f"{who} got an empty dataset; generate at least one example")


def is_plain(data: Any, vocab: Any, who: str) -> bool:
    """True for a plain token tensor ``[n, seq]`` (then ``vocab`` is required); False for a SearchDataset."""
    if not isinstance(data, torch.Tensor):
        check_data(data, who)
        return False
    if data.ndim != 2 or data.is_floating_point():
        raise ValueError(f"{who} takes token ids [n, seq] (integer tensor); got {data.dtype} {tuple(data.shape)}")
    if vocab is None:
        raise ValueError(f"{who} on plain tokens needs vocab=: a list of token strings or your tokenizer")
    return True


def token_strings(vocab: Any, ids: Any) -> list[str]:
    """Token ids -> strings, with ``vocab`` a list of token strings or a HF tokenizer (``convert_ids_to_tokens``)."""
    ids = [int(i) for i in ids]
    if hasattr(vocab, "convert_ids_to_tokens"):
        return [str(t) for t in vocab.convert_ids_to_tokens(ids)]
    if max(ids, default=-1) >= len(vocab):
        raise ValueError(f"token id {max(ids)} is outside vocab (len {len(vocab)}); pass the model's full vocab")
    return [str(vocab[i]) for i in ids]


def n_layers(model: Any) -> int:
    return int(model.cfg.n_layers)


def run_cache(model: Any, tokens: torch.Tensor,
              suffixes: tuple[str, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(logits [n, seq, d_vocab], {hook_name: activation})`` for hooks whose name ends with a suffix
    (:func:`toolkit.activations.trace`, named for the explorer in its errors)."""
    check_bridge(model, "this explorer")
    return trace(model, tokens, suffixes)


def attention_patterns(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``[n_layers, n, n_heads, seq, seq]`` attention probabilities."""
    _, cache = run_cache(model, tokens, ("attn.hook_pattern",))
    return torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(n_layers(model))])


def residual_streams(model: Any, tokens: torch.Tensor) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """``(hook names, resid [n_layers + 1, n, seq, d_model], logits)``: the embedding, then every block's output."""
    logits, cache = run_cache(model, tokens, ("hook_resid_pre", "hook_resid_post"))
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers(model))]
    return names, torch.stack([cache[n] for n in names]), logits


def real_length(tokens: torch.Tensor, pad_id: int) -> int:
    """Positions up to and including the last non-pad token."""
    nonpad = torch.nonzero(tokens != pad_id)
    return int(nonpad[-1]) + 1 if len(nonpad) else len(tokens)
