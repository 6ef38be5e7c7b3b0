"""Components of a circuit (attention heads and MLPs) and the activations the circuit tools read.

A component is named by ``(layer, head)`` for attention head ``head`` of block ``layer`` and ``(layer, None)``
for the MLP of block ``layer``. Every circuit tool accepts any of these spellings:

* a tuple ``(1, 0)`` / ``(1, None)``
* a string ``"L1H0"`` / ``"MLP1"``
* a dict ``{"layer": 1, "head": 0, "positions": [5], "role": "..."}`` (the :class:`toolkit.circuits.Circuit`
  format; ``positions`` is any positions spec of :mod:`toolkit.interventions.core`, None = every position)

The hook a component writes through: a head's output is ``blocks.{L}.attn.hook_z[:, :, head]`` (``[n, seq,
d_head]``, before ``W_O``; the bridge's ``hook_result`` does not fire), an MLP's is ``blocks.{L}.hook_mlp_out``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from toolkit.activations.cache import cache
from toolkit.activations.positions import tokens_of

_NAME = re.compile(r"^(?:L(\d+)H(\d+)|MLP(\d+))$")


@dataclass(frozen=True)
class Component:
    """One head (``head`` an int) or one MLP (``head`` None) of block ``layer``, at ``positions`` (None = all)."""

    layer: int
    head: int | None = None
    positions: Any = None

    @property
    def name(self) -> str:
        """``"L1H0"`` or ``"MLP1"``."""
        return f"MLP{self.layer}" if self.head is None else f"L{self.layer}H{self.head}"

    @property
    def hook(self) -> str:
        """The hook its output passes through: ``blocks.L.attn.hook_z`` (per head) or ``blocks.L.hook_mlp_out``."""
        return f"blocks.{self.layer}.hook_mlp_out" if self.head is None else f"blocks.{self.layer}.attn.hook_z"

    @property
    def key(self) -> tuple[int, int | None]:
        """``(layer, head)`` without the positions."""
        return (self.layer, self.head)


def component(spec: Any, model: Any = None) -> Component:
    """One component from a tuple, a name or a dict (see the module docstring); checked against ``model``."""
    if isinstance(spec, Component):
        comp = spec
    elif isinstance(spec, str):
        m = _NAME.match(spec)
        if not m:
            raise ValueError(f"component name {spec!r} is not valid; use 'L<layer>H<head>' (e.g. 'L1H0') or "
                             "'MLP<layer>'")
        comp = Component(int(m.group(3))) if m.group(3) else Component(int(m.group(1)), int(m.group(2)))
    elif isinstance(spec, dict):
        if "layer" not in spec:
            raise ValueError(f"component {spec!r} has no 'layer'; write {{'layer': int, 'head': int or None}}")
        comp = Component(spec["layer"], spec.get("head"), spec.get("positions"))
    elif isinstance(spec, tuple | list) and len(spec) == 2:
        comp = Component(spec[0], spec[1])
    else:
        raise TypeError(f"a component is (layer, head), (layer, None) for the MLP, 'L1H0', 'MLP1' or a dict; "
                        f"got {spec!r}")
    if isinstance(comp.layer, bool) or not isinstance(comp.layer, int):
        raise TypeError(f"component layer must be an int, got {comp.layer!r}")
    if comp.head is not None and (isinstance(comp.head, bool) or not isinstance(comp.head, int)):
        raise TypeError(f"component head must be an int (None for the MLP), got {comp.head!r}")
    if model is not None:
        n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
        if not 0 <= comp.layer < n_layers:
            raise ValueError(f"component {comp.name}: layer must be in 0..{n_layers - 1} for this model")
        if comp.head is not None and not 0 <= comp.head < n_heads:
            raise ValueError(f"component {comp.name}: head must be in 0..{n_heads - 1} for this model")
    return comp


def components(specs: Any, model: Any = None) -> list[Component]:
    """A list of components from a list of specs or a :class:`toolkit.circuits.Circuit` (its ``components``)."""
    if hasattr(specs, "components") and not isinstance(specs, dict):
        specs = specs.components
    if isinstance(specs, str | tuple | dict | Component):
        specs = [specs]
    return [component(s, model) for s in specs]


def all_components(model: Any, mlps: bool = True) -> list[Component]:
    """Every head (and MLP) of ``model``, block by block: L0H0, L0H1, ..., MLP0, L1H0, ..."""
    out = []
    for layer in range(model.cfg.n_layers):
        out += [Component(layer, h) for h in range(model.cfg.n_heads)]
        if mlps:
            out.append(Component(layer))
    return out


def run_cache(model: Any, data: Any, hooks: list[str], batch_size: int = 256) -> dict[str, torch.Tensor]:
    """The activations of ``hooks`` at every position: ``{hook: [n, seq, ...]}`` (one pass through
    :func:`toolkit.activations.cache`, which runs with the interventions that are active)."""
    tokens = tokens_of(data)
    n, seq = tokens.shape
    acts = cache(model, tokens, hooks=hooks, positions=torch.ones(n, seq, dtype=torch.bool), batch_size=batch_size,
                 progress=False, fast=False)  # the bridge itself: the same float path as the model's own logits
    return {h: acts.get(h, flat=False).reshape(n, seq, *acts.row_shape(h)) for h in acts.hook_names}


def head_outputs(model: Any, layer: int, z: torch.Tensor) -> torch.Tensor:
    """What each head of block ``layer`` adds to the residual stream: ``z [..., head, d_head] @ W_O[layer]``
    -> ``[..., head, d_model]`` (without the block's output bias ``b_O``, which no head owns)."""
    w_o = model.W_O[layer].detach().to(z)  # [head, d_head, d_model]
    return torch.einsum("...hd,hdm->...hm", z, w_o)


def metric_name(metric: Any) -> str:
    """How a result names its metric: the name itself, or a callable's ``__name__``."""
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")


def ln_final_affine(model: Any) -> tuple[bool, torch.Tensor | None, torch.Tensor | None]:
    """``(centers, weight [d_model] | None, bias [d_model] | None)`` of ``ln_final``: ``centers`` is True for
    LayerNorm (the mean over ``d_model`` is subtracted), False for RMSNorm / no normalisation."""
    kind = model.cfg.normalization_type
    if kind is None:
        return False, None, None
    params = dict(model.ln_final.named_parameters())
    w = next((p for k, p in params.items() if k.endswith("weight")), None)
    b = next((p for k, p in params.items() if k.endswith("bias")), None)
    return kind in ("LN", "LNPre"), w, b
