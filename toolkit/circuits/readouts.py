"""What one attention head computes, read out in token space from its weights alone (no data).

    qk = circuits.qk_readout(model, layer=1, head=0)          # [d_vocab, d_vocab]: query token x key token
    ov = circuits.ov_readout(model, layer=1, head=0)          # [d_vocab, d_vocab]: attended token x output logit
    ov.diagonal()  # large where the head copies the token it attends to

**QK** (query token ``i``, key token ``j``)::

    scores[i, j] = (e(i, query_position) @ W_Q + b_Q) . (e(j, key_position) @ W_K + b_K) / sqrt(d_head)

**OV** (attended token ``i``, output token ``j``)::

    out[i, j] = (e(i) @ W_V + b_V) @ W_O @ W_U'[:, j]

``e(t, p)`` is the token embedding ``W_E[t]`` (plus ``W_pos[p]`` when a position is given; only models with
learned absolute positions have ``W_pos``). LayerNorm (``ln=``):

* ``ln=True`` (default): ``e`` passes through the block's own ``ln1`` module, as if the token (and position)
  were the whole residual stream (exact for a layer-0 head reading the embeddings, an approximation later, where
  other components have written to the stream too); for OV, the head's output ``x`` passes through the final
  LayerNorm's centering and weight but not its scale, ``W_U' = diag(w) W_U`` after centering (the scale is a
  positive number per example and position, which changes the size of a logit, never which token is larger),
  and ``ln_final``'s bias and ``b_U``, which do not depend on the token, are left out.
* ``ln=False``: raw weights, ``e = W_E[t] (+ W_pos[p])``, ``W_U' = W_U``.

Rotary models (GPT-NeoX...): the rotation of ``q`` and ``k`` is not applied, so QK is the score of a query and key
at the same position (relative distance 0). ``*_readout`` never run the model.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from toolkit.circuits.components import ln_final_affine


def _check(model: Any, layer: int, head: int) -> None:
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if not 0 <= layer < L or not 0 <= head < H:
        raise ValueError(f"layer {layer}, head {head} is not a head of this model (layers 0..{L - 1}, heads "
                         f"0..{H - 1})")


def _embed(model: Any, layer: int, position: int | None, ln: bool) -> torch.Tensor:
    """``[d_vocab, d_model]``: every token's embedding (+ the position's), through ``ln1`` of ``layer`` if ``ln``."""
    e = model.W_E.detach().float()
    if position is not None:
        try:
            w_pos = model.W_pos
        except (AttributeError, ValueError, NotImplementedError) as err:
            raise ValueError(f"this model has no learned position embedding ({model.cfg.positional_embedding_type}); "
                             "leave query_position / key_position as None") from err
        e = e + w_pos.detach().float()[position]
    if ln:
        param = next(model.parameters())
        e = model.blocks[layer].ln1(e.to(param)).float()
    return e


@torch.no_grad()
def qk_readout(model: Any, layer: int, head: int, ln: bool = True, query_position: int | None = None,
               key_position: int | None = None) -> torch.Tensor:
    """``[d_vocab, d_vocab]`` attention scores of head ``(layer, head)``: row = query token, column = key token.

    Scaled by ``1/sqrt(d_head)`` as in the model, before the causal mask and softmax (see the module docstring).
    """
    _check(model, layer, head)
    q = _embed(model, layer, query_position, ln) @ model.W_Q[layer, head].detach().float() \
        + model.b_Q[layer, head].detach().float()  # [V, d_head]
    k = _embed(model, layer, key_position, ln) @ model.W_K[layer, head].detach().float() \
        + model.b_K[layer, head].detach().float()
    return q @ k.T / math.sqrt(q.shape[-1])


@torch.no_grad()
def ov_readout(model: Any, layer: int, head: int, ln: bool = True) -> torch.Tensor:
    """``[d_vocab, d_vocab]``: the logits head ``(layer, head)`` adds when it attends fully to a token (row) ->
    output token (column); see the module docstring for the LayerNorm handling."""
    _check(model, layer, head)
    v = _embed(model, layer, None, ln) @ model.W_V[layer, head].detach().float() \
        + model.b_V[layer, head].detach().float()  # [V, d_head]
    out = v @ model.W_O[layer, head].detach().float()  # [V, d_model]
    if ln:
        centers, w, _ = ln_final_affine(model)
        if centers:
            out = out - out.mean(-1, keepdim=True)
        if w is not None:
            out = out * w.detach().float()
    return out @ model.W_U.detach().float()
