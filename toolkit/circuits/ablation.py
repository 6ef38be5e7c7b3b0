"""Mean / resample / zero ablation of a SET of components, as one context manager.

    with circuits.ablate_components(model, ["L1H0", (2, None)], method="mean", reference=data):
        acc = interventions.run(model, data, "exact_path")

Built on :func:`toolkit.interventions.ablate`: the heads of one block are ablated through one
``blocks.L.attn.hook_z`` edit (``heads=[...]``), an MLP through ``blocks.L.hook_mlp_out``. The mean / resample
source is the activation over ``reference`` of the **unablated** model: every source is captured before any of the
ablations is switched on (so ablating block 0 does not change the mean used for block 1). Pass ``sources=``
(from :func:`reference_activations`) to skip those captures when you ablate many sets with one reference.

Positions: ``positions=`` (any positions spec of :mod:`toolkit.interventions.core`, None = all) applies to every
component that does not carry its own ``positions`` (a dict component ``{"layer", "head", "positions"}``).
An empty set changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from toolkit.circuits.components import Component, components
from toolkit.interventions.edits import ablate, capture


def reference_activations(model: Any, reference: Any, comps: Any = None, batch_size: int = 256
                          ) -> dict[str, torch.Tensor]:
    """``{hook: [n_ref, seq, ...]}``: the unablated activations of the hooks ``comps`` write through (default: every
    block's ``attn.hook_z`` and ``hook_mlp_out``), for ``sources=`` of :func:`ablate_components`."""
    if comps is None:
        hooks = [h for layer in range(model.cfg.n_layers)
                 for h in (f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out")]
    else:
        hooks = list(dict.fromkeys(c.hook for c in components(comps, model)))
    return {h: capture(model, h, reference, batch_size) for h in hooks}


def _groups(comps: list[Component], positions: Any) -> dict[tuple[str, str], tuple[Any, list[int] | None]]:
    """``{(hook, positions key): (positions, heads)}``: one edit per hook and positions spec."""
    out: dict[tuple[str, str], tuple[Any, list[int] | None]] = {}
    for c in comps:
        pos = c.positions if c.positions is not None else positions
        key = (c.hook, repr(pos) if not isinstance(pos, torch.Tensor) else f"tensor@{id(pos)}")
        if key not in out:
            out[key] = (pos, None if c.head is None else [])
        if c.head is not None and c.head not in out[key][1]:
            out[key][1].append(c.head)
    return out


@contextmanager
def ablate_components(model: Any, comps: Any, method: str = "mean", positions: Any = None, data: Any = None,
                      reference: Any = None, seed: int = 0, sources: dict[str, torch.Tensor] | None = None
                      ) -> Iterator[Any]:
    """Ablate every component of ``comps`` (heads and MLPs) at once.

    Args:
        comps: a list of components (``(layer, head)``, ``(layer, None)``, ``"L1H0"``, ``"MLP1"``, dicts) or a
            :class:`toolkit.circuits.Circuit`.
        method: ``"mean"`` (the reference mean at the same position), ``"resample"`` (a random reference
            example's activation, seeded by ``seed``) or ``"zero"``.
        positions: where to ablate (see the module docstring); a name needs ``data=``.
        reference: the dataset / tokens the means / resamples come from (default ``data``).
        sources: precomputed ``{hook: activations}`` from :func:`reference_activations` (overrides
            ``reference``).
    """
    comps = components(comps, model)
    ref = reference if reference is not None else data
    if method != "zero" and ref is None and sources is None:
        raise ValueError(f"method={method!r} needs reference= (or data=): the dataset the means / resamples come "
                         "from")
    edits = []  # build them all first: the captures run on the unablated model
    for (hook, _), (pos, heads) in _groups(comps, positions).items():
        src = sources[hook] if sources is not None and hook in sources else ref
        edits.append(ablate(model, hook, method=method, positions=pos, heads=heads, data=data, reference=src,
                            seed=seed))
    with ExitStack() as stack:
        for e in edits:
            stack.enter_context(e)
        yield model
