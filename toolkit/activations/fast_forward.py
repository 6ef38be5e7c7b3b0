"""A hook-free forward pass for caching, used only where it computes what the bridge's hooks would see.

TransformerLens's bridge routes every submodule through hook points and computes attention unfused. On the tiny
models here that machinery costs about as much as the matrix products themselves, so :func:`cache` runs models
of the plain architecture through :class:`FastForward` instead: the same weights (read from the bridge when the
pass is set up, i.e. at every ``cache`` call), one fused QKV product, PyTorch's fused attention when no pattern is
asked for, chunks small enough to stay in the CPU cache, and a last block that computes only the query positions
it has to return. It is used only when

* the architecture is the plain one :mod:`toolkit.models` builds (LayerNorm, learned positions, dense MLP, one KV
  head per head, no soft-capping),
* nothing is hooked on the model (an intervention's hooks must run, so those passes go through the bridge), and
* every requested hook is one it produces (:data:`PRODUCED`).

:func:`choose` picks it (or says why not) and compares it with the bridge on a few examples before the first
batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from toolkit._compat import global_hooks_set, module_hooks
from toolkit.activations.hooks import layer_of, parse_hook

# per-block hooks the fast pass produces (``blocks.{l}.`` + suffix), plus the two embedding hooks
PRODUCED = ("hook_resid_pre", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
            "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post")
_EMBED = ("hook_embed", "hook_pos_embed")
_ROW_LOCAL = ("attn.hook_z", "hook_attn_out", "hook_resid_mid", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out",
              "hook_resid_post")  # per query position, so the last block may compute only the rows it returns
# How far the fast pass may be from the bridge, per hook. float32 differs only in rounding (max |diff| / max |value|:
# ~1e-5 on the trained models, up to ~3e-4 on sharp random ones after four blocks). bfloat16 products round their
# inputs to 8 significant bits (on tree-8: 0.3-0.7% RMS, single entries up to ~20% of the scale where two
# attention scores nearly tie), so it is held to an RMS bound.
TOLERANCE = {torch.float32: ("max", 1e-3), torch.bfloat16: ("rms", 2e-2)}

Emit = Callable[[str, torch.Tensor, int, int], None]  # (hook name, activation, first query position, first example)


def _hooked(model: Any) -> bool:
    """Whether anything but the bridge's own wiring is hooked on ``model`` (or globally on every module)."""
    if global_hooks_set():
        return True
    points = {id(p) for p in model.hook_dict.values()}
    for module in model.modules():
        for fn in module_hooks(module):
            # a hook point's hooks are always the user's; the bridge wires capture hooks onto its submodules
            if id(module) in points or not getattr(fn, "__module__", "").startswith("transformer_lens."):
                return True
    return False


def plan(model: Any, names: list[str], matmul_dtype: torch.dtype | None = None) -> tuple[FastForward | None, str]:
    """``(FastForward, "")`` when the fast pass applies to ``names`` on ``model``, else ``(None, why not)``."""
    cfg = model.cfg
    original = getattr(model, "original_model", None)
    arch = {
        "a TransformerLens-native model": type(original).__name__ == "NativeModel",
        "LayerNorm": getattr(cfg, "normalization_type", None) == "LN" and not getattr(cfg, "final_rms", False),
        "learned positional embeddings": getattr(cfg, "positional_embedding_type", "standard") == "standard",
        "attention and a dense MLP in every block": not cfg.attn_only and not getattr(cfg, "gated_mlp", False),
        "one key/value head per head": getattr(cfg, "n_key_value_heads", None) in (None, cfg.n_heads),
        "no soft-capping": float(getattr(cfg, "attn_scores_soft_cap", -1.0)) <= 0,
    }
    missing = [k for k, ok in arch.items() if not ok]
    if missing:
        return None, f"the model is not of the plain architecture (needs {', '.join(missing)})"
    try:
        from transformer_lens.model_bridge.sources.native.model import _ACTIVATIONS

        act = _ACTIVATIONS[(cfg.act_fn or "gelu").lower()]
    except (ImportError, KeyError):
        return None, f"activation {cfg.act_fn!r} is not one the fast pass knows"
    if (cfg.act_fn or "gelu").lower() == "solu_ln":
        return None, "SoLU-LN MLPs are not supported by the fast pass"
    sites = {n: parse_hook(n) for n in names}
    other = [n for n in names if n not in _EMBED and not (sites[n][0] is not None and sites[n][1] in PRODUCED)]
    if other:
        return None, f"hook(s) {other[:3]} are not produced by the fast pass (it produces {PRODUCED + _EMBED})"
    if _hooked(model):
        return None, "the model has hooks attached (e.g. an intervention), which only the bridge runs"
    return FastForward(model, names, act, matmul_dtype or torch.float32), ""


def choose(model: Any, names: list[str], tokens: torch.Tensor, fast: bool = True,
           matmul_dtype: torch.dtype | None = None) -> tuple[FastForward | None, str]:
    """``(pass, "fast")`` when the fast pass applies and agrees with the bridge on ``tokens[:4]``, else
    ``(None, "bridge (why)")``. bfloat16 products without a usable fast pass are an error, not a fallback."""
    if matmul_dtype not in (None, torch.float32, torch.bfloat16):
        raise ValueError(f"matmul_dtype must be None, torch.float32 or torch.bfloat16, got {matmul_dtype!r}")
    low = matmul_dtype == torch.bfloat16
    why = "fast=False"
    if fast:
        runner, why = plan(model, names, matmul_dtype)
        if runner is not None:
            why = runner.check(tokens[:4].to(runner.embed[0].device))
            if not why:
                return runner, "fast"
            if low:
                raise ValueError(f"bfloat16 products are too inaccurate on this model ({why}); leave "
                                 "matmul_dtype=None")
            warnings.warn(f"activations.cache: the fast pass disagrees with the bridge ({why}); using the bridge",
                          RuntimeWarning, stacklevel=4)
    if low:
        raise ValueError(f"matmul_dtype={matmul_dtype} needs the fast pass, which cannot run here: {why}. "
                         "Leave matmul_dtype=None")
    return None, f"bridge ({why})"


class FastForward:
    """Computes the requested hooks of a plain TransformerBridge without running its hook points.

    Call it with tokens ``[batch, seq]``, the kept-position mask ``[batch, seq]`` (only to know where the last
    block may start) and ``emit(name, tensor, start, first)``: every requested hook's activation is passed to
    ``emit`` in the bridge's layout (``[chunk, seq, ...]``, patterns ``[chunk, head, q, k]``) for the chunk of
    examples starting at ``first``, covering query positions ``start..seq-1``.
    """

    def __init__(self, model: Any, names: list[str], act: Callable, matmul_dtype: torch.dtype = torch.float32):
        self.model, self.names, self.act, self.matmul_dtype = model, set(names), act, matmul_dtype
        cfg = model.cfg
        self.n_heads, self.d_head, self.d_model, self.eps = cfg.n_heads, cfg.d_head, cfg.d_model, cfg.eps
        self.scale = cfg.attn_scale if cfg.use_attn_scale and cfg.attn_scale > 0 else math.sqrt(cfg.d_head)
        # the last block that runs (-1: embeddings only); resid_pre of block l needs only blocks < l
        self.last = max(layer_of(n, cfg.n_layers) - n.endswith(".hook_resid_pre") for n in names)
        self.chunk = max(1, 2048 // max(1, cfg.n_ctx))  # examples per chunk: ~2k positions stay in cache
        self.embed, self.blocks = self._weights()

    def _weights(self) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, ...]]]:
        """Embeddings and, per block that runs, its weights (matrix products' operands in ``matmul_dtype``)."""
        sd = {k: v.detach() for k, v in self.model.state_dict().items()}
        md = self.matmul_dtype
        blocks = []
        for l in range(self.last + 1):
            b = f"blocks.{l}."
            qkv = [b + f"attn.{x}" for x in ("q", "k", "v")]
            blocks.append((
                sd[b + "ln1.weight"], sd[b + "ln1.bias"],
                torch.cat([sd[k + ".weight"] for k in qkv]).to(md), torch.cat([sd[k + ".bias"] for k in qkv]).to(md),
                sd[b + "attn.o.weight"].to(md), sd[b + "attn.o.bias"].to(md), sd[b + "ln2.weight"], sd[b + "ln2.bias"],
                sd[b + "mlp.in.weight"].to(md), sd[b + "mlp.in.bias"].to(md),
                sd[b + "mlp.out.weight"].to(md), sd[b + "mlp.out.bias"].to(md)))
        return [sd["embed.weight"], sd["pos_embed.weight"]], blocks

    def _linear(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if w.dtype == x.dtype:
            return F.linear(x, w, b)
        return F.linear(x.to(w.dtype), w, b).to(x.dtype)

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, keep: torch.Tensor, emit: Emit) -> None:
        for a in range(0, tokens.shape[0], self.chunk):
            self._chunk(tokens[a:a + self.chunk], keep[a:a + self.chunk],
                        lambda name, t, start, a=a: emit(name, t, start, a))

    def _chunk(self, tokens: torch.Tensor, keep: torch.Tensor, emit: Callable) -> None:
        if not keep.any():
            return
        B, S = tokens.shape
        H, dh, d, want = self.n_heads, self.d_head, self.d_model, self.names
        embed, pos = self.embed
        tok_e, pos_e = embed[tokens], pos[:S].expand(B, S, d)
        if "hook_embed" in want:
            emit("hook_embed", tok_e, 0)
        if "hook_pos_embed" in want:
            emit("hook_pos_embed", pos_e, 0)
        x = tok_e + pos_e
        for l, (w1, b1, wqkv, bqkv, wo, bo, w2, b2, wi, bi, wout, bout) in enumerate(self.blocks):
            name = f"blocks.{l}."
            if name + "hook_resid_pre" in want:
                emit(name + "hook_resid_pre", x, 0)
            pattern = name + "attn.hook_pattern" in want
            # the last block computes query rows from the first kept position on (keys still cover every position)
            start = int(keep.any(0).nonzero()[0]) if l == self.last and not pattern else 0
            h = F.layer_norm(x, (d,), w1, b1, self.eps)
            qkv = self._linear(h, wqkv, bqkv).view(B, S, 3, H, dh).permute(2, 0, 3, 1, 4)
            pat, z = self._attend(qkv[0][:, :, start:], qkv[1], qkv[2], start)
            if pattern:
                emit(name + "attn.hook_pattern", pat, 0)
            z = z.transpose(1, 2)  # [B, q, H, dh]
            if name + "attn.hook_z" in want:
                emit(name + "attn.hook_z", z, start)
            attn_out = self._linear(z.reshape(B, S - start, H * dh), wo, bo)
            if name + "hook_attn_out" in want:
                emit(name + "hook_attn_out", attn_out, start)
            x = x[:, start:] + attn_out
            if name + "hook_resid_mid" in want:
                emit(name + "hook_resid_mid", x, start)
            pre = self._linear(F.layer_norm(x, (d,), w2, b2, self.eps), wi, bi)
            if name + "mlp.hook_pre" in want:
                emit(name + "mlp.hook_pre", pre, start)
            post = self.act(pre)
            if name + "mlp.hook_post" in want:
                emit(name + "mlp.hook_post", post, start)
            mlp_out = self._linear(post, wout, bout)
            if name + "hook_mlp_out" in want:
                emit(name + "hook_mlp_out", mlp_out, start)
            x = x + mlp_out
            if name + "hook_resid_post" in want:
                emit(name + "hook_resid_post", x, start)
        after = f"blocks.{len(self.blocks)}.hook_resid_pre"  # the stream after the last block that ran
        if after in want:
            emit(after, x, start if self.blocks else 0)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal attention of queries at positions ``start..S-1`` over keys ``0..S-1``.

        q ``[B, H, S - start, d_head]``, k and v ``[B, H, S, d_head]`` -> pattern ``[B, H, S - start, S]`` and
        z ``[B, H, S - start, d_head]``. Batched matrix products with the mask as an added bias: on these short
        sequences that measured ~1.5x faster on CPU than ``scaled_dot_product_attention``.
        """
        B, H, Sq, dh = q.shape
        S = k.shape[2]
        bias = torch.zeros(Sq, S, device=q.device).masked_fill(
            torch.ones(Sq, S, dtype=torch.bool, device=q.device).triu(start + 1), -math.inf)
        scores = torch.baddbmm(bias.expand(B * H, Sq, S), q.reshape(B * H, Sq, dh),
                               k.reshape(B * H, S, dh).transpose(1, 2), alpha=1 / self.scale)
        pattern = scores.softmax(-1)
        z = torch.bmm(pattern, v.reshape(B * H, S, dh))
        return pattern.view(B, H, Sq, S), z.view(B, H, Sq, dh)

    def check(self, tokens: torch.Tensor) -> str:
        """Compare with the bridge's hooks on ``tokens`` (a few examples); ``""`` if they agree, else what differs."""
        got: dict[str, torch.Tensor] = {}

        def keep(name: str, t: torch.Tensor, start: int, first: int) -> None:
            got[name] = t.detach().clone()

        self(tokens, torch.ones_like(tokens, dtype=torch.bool), keep)
        with torch.no_grad():
            _, ref = self.model.run_with_cache(tokens, names_filter=lambda n: n in self.names)
        kind, tol = TOLERANCE[self.matmul_dtype]
        for name in sorted(self.names):
            want = ref[name]
            if name not in got or got[name].shape != want.shape:
                return f"{name}: shape {tuple(got[name].shape) if name in got else None} vs {tuple(want.shape)}"
            diff = got[name] - want
            if kind == "max":
                err = float(diff.abs().max()) / max(float(want.abs().max()), 1e-6)
            else:
                err = float(diff.norm()) / max(float(want.norm()), 1e-6)
            if err > tol:
                return f"{name}: {kind} relative difference {err:.2e} > {tol:.0e}"
        return ""

