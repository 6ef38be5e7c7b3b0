"""Resolve hook-name patterns against a TransformerBridge.

Names are the familiar TransformerLens ones (``hook_embed``, ``blocks.1.hook_resid_post``,
``blocks.0.attn.hook_pattern``). The bridge also serves each hook point under a second, "canonical" name
(``blocks.1.hook_out``); both resolve to the same point and results are keyed by the familiar name.

Patterns:

* an exact hook name: ``"blocks.1.attn.hook_pattern"``
* a suffix: ``"resid_post"`` or ``"hook_resid_post"`` -> every layer's ``blocks.{l}.hook_resid_post``
* a glob: ``"blocks.*.attn.hook_z"``
* a list of any of these, or a callable ``name -> bool``
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

HookSpec = str | Sequence[str] | Callable[[str], bool]

# hooks whose activation has the position axis at dim 2 ([n, head, q_pos, k_pos]); all others use dim 1
_QUERY_DIM2 = ("hook_pattern", "hook_attn_scores")


def _gated(model: Any, name: str) -> bool:
    reason = getattr(model, "_gated_hook_reason", None)
    try:
        return reason is not None and reason(name) is not None
    except Exception:  # noqa: BLE001 - a private helper; treat failure as "fires"
        return False


def _firing_order(model: Any) -> list[str]:
    """Canonical names of the hook points that fire, in execution order (one tiny forward pass, memoised)."""
    key = tuple(model.hook_dict)
    memo = getattr(model, "_searchlight_hook_order", None)
    if memo is not None and memo[0] == key:
        return memo[1]
    fired: list[str] = []
    points = {id(p): p for n, p in model.hook_dict.items() if not _gated(model, n)}
    handles = []

    def record(module: Any, inputs: Any, output: Any) -> None:
        fired.append(module.name)

    for p in points.values():
        handles.append(p.register_forward_hook(record))
    from toolkit.activations.batching import batch_rows

    try:
        with torch.no_grad(), batch_rows(0, 1):
            model(torch.zeros(1, 2, dtype=torch.long, device=_device(model)))
    finally:
        for h in handles:
            h.remove()
    order = list(dict.fromkeys(fired))
    try:
        model._searchlight_hook_order = (key, order)
    except Exception:  # noqa: BLE001 - memoising is optional
        pass
    return order


def _device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def hook_names(model: Any) -> list[str]:
    """Every hook point that fires on ``model``, one familiar name per point, in execution order."""
    try:
        from transformer_lens.model_bridge.bridge_core import build_alias_to_canonical_map

        legacy = set(build_alias_to_canonical_map(model.hook_dict))
    except Exception:  # noqa: BLE001 - other builds: every name is its own alias
        legacy = set()
    by_point: dict[int, list[str]] = {}
    for name, point in model.hook_dict.items():
        by_point.setdefault(id(point), []).append(name)
    canonical = {id(p): p.name for p in model.hook_dict.values()}
    names = []
    for cname in _firing_order(model):
        key = next((k for k, v in canonical.items() if v == cname), None)
        if key is None:
            continue
        group = by_point[key]
        name = ([n for n in group if n in legacy] or group)[0]
        if not name.endswith(("embed.hook_in", "unembed.hook_in")):
            names.append(name)
    return names


_BLOCK_HOOK = re.compile(r"blocks\.(\d+)\.(.*)$", re.DOTALL)


def parse_hook(name: str) -> tuple[int | None, str]:
    """The one hook-name parser: ``(block, site)``.

    ``"blocks.2.attn.hook_z"`` -> ``(2, "attn.hook_z")``; a hook outside the blocks (``"hook_embed"``,
    ``"ln_final.hook_normalized"``) -> ``(None, name)``.
    """
    m = _BLOCK_HOOK.match(name)
    return (int(m.group(1)), m.group(2)) if m else (None, name)


def layer_of(name: str, n_layers: int) -> int:
    """Block index of a hook: ``-1`` for embeddings, ``n_layers`` for ``ln_final`` / ``unembed``."""
    layer, _ = parse_hook(name)
    if layer is not None:
        return layer
    if "embed" in name and "unembed" not in name:
        return -1
    return n_layers


def position_dim(name: str) -> int:
    """Axis of the (query) position in the hook's activation."""
    return 2 if name.endswith(_QUERY_DIM2) else 1


def _matches(pattern: str, name: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    if name == pattern:
        return True
    bare = pattern[5:] if pattern.startswith("hook_") else pattern
    return name.endswith("." + pattern) or name.endswith(".hook_" + bare) or name == "hook_" + bare


def resolve(model: Any, hooks: HookSpec) -> list[str]:
    """Familiar hook names matching ``hooks``, in execution order, without duplicates.

    Raises ``ValueError`` listing close matches when a pattern matches nothing.
    """
    names = hook_names(model)
    fam_by_point = {id(model.hook_dict[n]): n for n in names}
    alias_of = {name: fam_by_point[id(p)] for name, p in model.hook_dict.items() if id(p) in fam_by_point}
    if callable(hooks) and not isinstance(hooks, str):
        chosen = [n for n in names if hooks(n)]
        if not chosen:
            raise ValueError("the hooks filter matched no hook point; see activations.hook_names(model)")
        return chosen
    patterns = [hooks] if isinstance(hooks, str) else list(hooks)
    if not patterns:
        raise ValueError("hooks is empty; pass e.g. hooks='resid_post' or a list of hook names")
    chosen_set: set[str] = set()
    for pat in patterns:
        if not isinstance(pat, str):
            raise TypeError(f"hook patterns are strings, got {pat!r}")
        if pat in alias_of:  # an exact name, possibly the canonical alias
            chosen_set.add(alias_of[pat])
            continue
        hit = [n for n in names if _matches(pat, n)]
        if not hit:
            close = difflib.get_close_matches(pat, list(alias_of), n=6, cutoff=0.5)
            hint = f"did you mean {close}?" if close else f"valid names include {names[:8]} ..."
            raise ValueError(f"unknown hook {pat!r}; {hint} (all names: activations.hook_names(model))")
        chosen_set.update(hit)
    return [n for n in names if n in chosen_set]


def stop_layer(names: Sequence[str], n_layers: int) -> int | None:
    """The ``stop_at_layer`` that still fires every hook in ``names`` (None: run the whole model)."""
    last = -1
    for name in names:
        layer = layer_of(name, n_layers)
        if layer >= n_layers:
            return None
        # blocks.L.hook_resid_pre fires at the entrance of block L, before the stop there takes effect
        last = max(last, layer - 1 if name == f"blocks.{layer}.hook_resid_pre" else layer)
    stop = last + 1
    return stop if stop < n_layers else None
