"""Interventions as context managers over TransformerLens hooks (``model.hooks(fwd_hooks=...)``)::

    with interventions.ablate(model, "blocks.1.attn.hook_z", heads=0, method="mean", data=ref):
        acc = interventions.run(model, data, "exact_path")
    with interventions.knockout(model, layer=0, query="target", key="source", data=data):
        ...
    with interventions.steer(model, "blocks.2.hook_resid_post", direction, alpha=4.0, positions="query", data=data):
        ...
    with interventions.erase(model, "blocks.1.hook_resid_post", eraser):   # a fitted probes.LeaceEraser
        ...
    with interventions.patch(model, "blocks.1.hook_resid_post", clean_acts, positions=[16]):
        ...

They stack (nest several ``with`` blocks) and also apply inside ``activations.cache``, so you can cache the
activations of an edited model. ``positions`` / ``heads`` as described in :mod:`toolkit.interventions.core`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from toolkit.activations.full import full
from toolkit.activations.hooks import resolve
from toolkit.interventions.core import batch_mask, edit, resolve_positions, source_rows


def _one_hook(model: Any, hook: str) -> str:
    names = resolve(model, hook)
    if len(names) != 1:
        raise ValueError(f"{hook!r} matches {len(names)} hooks {names[:6]}; name exactly one (e.g. {names[0]!r})")
    return names[0]


@contextmanager
def edit_hook(model: Any, hook: str, fn: Callable[[torch.Tensor], torch.Tensor], positions: Any = None,
              heads: Any = None, data: Any = None, source: torch.Tensor | None = None) -> Iterator[Any]:
    """The general form: replace the selected entries ``x`` of ``hook`` by ``fn(x)``; with ``source`` (a full
    activation ``[n, seq, ...]`` of the same layout) by the matching entries of ``fn(source)``."""
    name = _one_hook(model, hook)
    _warn_resid_mid(name)
    pos = resolve_positions(positions, data)

    def hook_fn(t: torch.Tensor, hook: Any) -> torch.Tensor:
        seq_dim = 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1
        mask = batch_mask(pos, t.shape[0], t.shape[seq_dim], t.device)
        if source is None:
            return edit(t, name, mask, heads, fn)
        src = source_rows(source, t.shape[0]).to(t.device)
        if src.shape[1:] != t.shape[1:]:
            idx = [slice(None)] * src.ndim
            idx[seq_dim] = slice(0, t.shape[seq_dim])
            src = src[tuple(idx)]
            if name.endswith(("hook_pattern", "hook_attn_scores")):
                src = src[..., : t.shape[-1]]
        if src.shape != t.shape:
            raise ValueError(f"source activations for {name} have shape {tuple(src.shape)}, the run has "
                             f"{tuple(t.shape)}")
        picked = edit(torch.zeros_like(t), name, mask, heads, lambda _: torch.ones(()))  # 1 where edited
        return torch.where(picked.bool(), fn(src), t)

    with model.hooks(fwd_hooks=[(name, hook_fn)]):
        yield model


def _warn_resid_mid(name: str) -> None:
    if name.endswith("hook_resid_mid"):
        warnings.warn(f"{name} is the input of ln2 in a TransformerBridge: editing it changes what the MLP reads, "
                      "but the residual stream that skips the MLP keeps the old value. Edit hook_resid_pre / "
                      "hook_resid_post (or hook_attn_out / hook_mlp_out) to change the residual stream itself.",
                      stacklevel=4)


def capture(model: Any, hook: str, data: Any, batch_size: int = 256, threads: int | None = 1) -> torch.Tensor:
    """The full activation ``[n, seq, ...]`` of one hook over a dataset (no edits of our own); see
    :func:`toolkit.activations.full.full`, which runs the model."""
    return full(model, _one_hook(model, hook), data, batch_size=batch_size, threads=threads)


def ablate(model: Any, hook: str, method: str = "zero", positions: Any = None, heads: Any = None,
           data: Any = None, reference: Any = None, seed: int = 0) -> Any:
    """Zero / mean / resample ablation of ``hook`` at ``positions`` (and ``heads``).

    Args:
        method: ``"zero"``; ``"mean"`` (the activation's mean over ``reference`` at the same position);
            ``"resample"`` (the activation of a random ``reference`` example at the same position).
        reference: the dataset (or tokens) the mean / resamples come from (default: ``data``), or its
            activations of ``hook`` (a float tensor ``[n_ref, seq, ...]`` from :func:`capture`), which skips the
            capture when you ablate many times with the same reference.
    """
    if method not in ("zero", "mean", "resample"):
        raise ValueError(f"method={method!r} is not valid; use 'zero', 'mean' or 'resample'")
    if method == "zero":
        return edit_hook(model, hook, torch.zeros_like, positions, heads, data)
    ref = reference if reference is not None else data
    if ref is None:
        raise ValueError(f"method={method!r} needs reference= (a dataset to take means / resamples from)")
    is_acts = isinstance(ref, torch.Tensor) and ref.is_floating_point()
    acts = ref if is_acts else capture(model, hook, ref)  # [n_ref, seq, ...]
    if method == "mean":
        return _mean_ctx(model, hook, acts.mean(0, keepdim=True), positions, heads, data)
    g = torch.Generator().manual_seed(seed)
    return _resample_ctx(model, hook, acts, positions, heads, data, g)


@contextmanager
def _mean_ctx(model: Any, hook: str, mean: torch.Tensor, positions: Any, heads: Any, data: Any) -> Iterator[Any]:
    name = _one_hook(model, hook)
    _warn_resid_mid(name)
    pos = resolve_positions(positions, data)
    seq_dim = 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1

    def hook_fn(t: torch.Tensor, hook: Any) -> torch.Tensor:
        m = _crop(mean, t, seq_dim).to(t.device).expand_as(t)
        mask = batch_mask(pos, t.shape[0], t.shape[seq_dim], t.device)
        picked = edit(torch.zeros_like(t), name, mask, heads, lambda _: torch.ones(())).bool()
        return torch.where(picked, m, t)

    with model.hooks(fwd_hooks=[(name, hook_fn)]):
        yield model


@contextmanager
def _resample_ctx(model: Any, hook: str, acts: torch.Tensor, positions: Any, heads: Any, data: Any,
                  g: torch.Generator) -> Iterator[Any]:
    name = _one_hook(model, hook)
    _warn_resid_mid(name)
    pos = resolve_positions(positions, data)
    seq_dim = 2 if name.endswith(("hook_pattern", "hook_attn_scores")) else 1

    def hook_fn(t: torch.Tensor, hook: Any) -> torch.Tensor:
        pick = torch.randint(0, len(acts), (t.shape[0],), generator=g)
        src = _crop(acts[pick], t, seq_dim).to(t.device)
        mask = batch_mask(pos, t.shape[0], t.shape[seq_dim], t.device)
        picked = edit(torch.zeros_like(t), name, mask, heads, lambda _: torch.ones(())).bool()
        return torch.where(picked, src, t)

    with model.hooks(fwd_hooks=[(name, hook_fn)]):
        yield model


def _crop(src: torch.Tensor, t: torch.Tensor, seq_dim: int) -> torch.Tensor:
    """Cut a full-length source down to a (possibly shorter) run."""
    idx = [slice(None)] * src.ndim
    idx[seq_dim] = slice(0, t.shape[seq_dim])
    if seq_dim == 2:
        idx[-1] = slice(0, t.shape[-1])
    return src[tuple(idx)]


def patch(model: Any, hook: str, source: Any, positions: Any = None, heads: Any = None, data: Any = None) -> Any:
    """Activation patching: use ``source`` activations at ``positions`` / ``heads`` of ``hook``.

    ``source`` is an activation tensor ``[n, seq, ...]`` (e.g. from :func:`capture` on the clean inputs) or a
    dataset / token tensor, whose activations are captured first.
    """
    if not isinstance(source, torch.Tensor) or source.dtype == torch.long:
        source = capture(model, hook, source)
    return edit_hook(model, hook, lambda s: s, positions, heads, data, source=source)


def steer(model: Any, hook: str, direction: torch.Tensor, alpha: float = 1.0, positions: Any = None,
          heads: Any = None, data: Any = None) -> Any:
    """Add ``alpha * direction`` to ``hook`` at ``positions`` (e.g. a direction from ``probes.direction``)."""
    v = torch.as_tensor(direction, dtype=torch.float32)
    return edit_hook(model, hook, lambda x: x + alpha * v.to(x), positions, heads, data)


def erase(model: Any, hook: str, eraser: Any, positions: Any = None, data: Any = None) -> Any:
    """Erase a concept from ``hook`` at ``positions``.

    ``eraser``: a fitted :class:`toolkit.probes.LeaceEraser` (anything with ``transform``), a callable
    ``[rows, d] -> [rows, d]``, or directions ``[k, d]`` / ``[d]`` to project out.
    """
    if hasattr(eraser, "transform"):
        fn = eraser.transform
    elif callable(eraser):
        fn = eraser
    elif isinstance(eraser, torch.Tensor):
        from toolkit.probes.erasure import project_out

        dirs = eraser.float()

        def fn(x: torch.Tensor) -> torch.Tensor:
            return project_out(x, dirs)
    else:
        raise TypeError("eraser must be a fitted LeaceEraser, a callable or a tensor of directions [k, d]")
    return edit_hook(model, hook, fn, positions, None, data)


@contextmanager
def knockout(model: Any, layer: int, query: Any = None, key: Any = None, heads: Any = None, data: Any = None,
             renormalize: bool = True) -> Iterator[Any]:
    """Attention knockout: in block ``layer``, positions ``query`` may not attend to positions ``key``.

    The blocked entries of the attention pattern are set to 0; with ``renormalize`` each query's remaining
    weights are rescaled to sum to 1 (the same as setting the blocked scores to -inf before the softmax).
    ``query`` / ``key`` take any positions spec (None = all).
    """
    name = _one_hook(model, f"blocks.{layer}.attn.hook_pattern")
    q_pos, k_pos = resolve_positions(query, data), resolve_positions(key, data)

    def hook_fn(t: torch.Tensor, hook: Any) -> torch.Tensor:  # [b, head, q, k]
        b, _, sq, sk = t.shape
        qm = batch_mask(q_pos, b, sq, t.device)
        km = batch_mask(k_pos, b, sk, t.device)
        block = qm[:, :, None] & km[:, None, :]  # [b, q, k]
        hsel = torch.zeros(t.shape[1], dtype=torch.bool, device=t.device)
        hsel[heads if heads is not None else slice(None)] = True
        block = block[:, None] & hsel[None, :, None, None]
        out = t.masked_fill(block, 0.0)
        if renormalize:  # only the rows that lost weight; the others stay bit-identical
            total = out.sum(-1, keepdim=True)
            hit = block.any(-1, keepdim=True) & (total > 0)
            out = torch.where(hit, out / total.clamp_min(1e-12), out)
        return out

    with model.hooks(fwd_hooks=[(name, hook_fn)]):
        yield model
