"""Direct logit attribution (DLA) and the logit lens.

    res = circuits.direct_logit_attribution(model, tokens, token=3, minus=4, positions=-1)
    res.table()                  # one row per (position, component): mean contribution over examples
    res.contributions            # [n, n_positions, n_components]; sums (over components) to res.logits
    lens = circuits.logit_lens(model, tokens, positions=-1, token=3)
    lens.prob                    # [n_layers, n, n_positions]: probability of token 3 read after each block

**DLA.** The final residual stream is a sum of what each part of the model wrote into it::

    resid_final = embed + pos_embed + sum_L (sum_h z[L, h] @ W_O[L, h] + b_O[L] + mlp_out[L])

(a parallel attention+MLP block such as GPT-NeoX's writes the same terms; rotary models have no ``pos_embed``).
The logit of token ``a`` is ``ln_final(resid_final) @ W_U[:, a] + b_U[a]``. ``ln_final`` is not linear, so the
LayerNorm scale is **frozen at its value in the clean run** (``ln_final.hook_scale``, one number per example and
position): with that scale fixed, ``ln_final(x) = center(x) / scale * w + b`` is affine in ``x`` (``center``
subtracts the mean over ``d_model`` for LayerNorm, nothing for RMSNorm), and the logit splits exactly into one
term per component, ``center(c) / scale * w @ W_U[:, a]``, plus one bias term ``b @ W_U[:, a] + b_U[a]``. The
terms sum to the model's logit up to float rounding (``res.remainder`` is what the decomposition missed; a warning
says when it is not ~0). With ``minus=b`` every term is the difference of the two logits' terms.

**Logit lens.** The residual stream after each block, read out through the model's own ``ln_final`` (with its
own, unfrozen scale) and unembedding. After the last block this is the model's output, so the last depth equals
the model's logits.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from toolkit._result import frame, plain
from toolkit.activations.hooks import hook_names
from toolkit.activations.positions import tokens_of
from toolkit.circuits.components import head_outputs, ln_final_affine, run_cache
from toolkit.interventions.core import logits as run_logits


def resolve_positions(positions: Any, seq: int) -> list[int]:
    """Positions as a list of indices in ``0..seq-1`` (an int, a list of ints, negatives from the end; None = all)."""
    if positions is None:
        return list(range(seq))
    idx = [positions] if isinstance(positions, int) else list(positions)
    bad = [p for p in idx if isinstance(p, bool) or not isinstance(p, int) or not -seq <= p < seq]
    if bad or not idx:
        raise ValueError(f"positions must be an int or a non-empty list of ints in -{seq}..{seq - 1}; "
                         f"got {positions!r}")
    return [p % seq for p in idx]


def token_ids(token: Any, n: int, n_pos: int, what: str = "token") -> torch.Tensor:
    """A token id (int), one per example ``[n]`` or one per example and position ``[n, n_pos]`` -> ``[n, n_pos]``."""
    t = torch.as_tensor(token, dtype=torch.long)
    if t.ndim == 0:
        return t.expand(n, n_pos)
    if t.ndim == 1 and len(t) == n:
        return t[:, None].expand(n, n_pos)
    if t.shape == (n, n_pos):
        return t
    raise ValueError(f"{what} must be an int, a LongTensor [n]={n} or [n, n_positions]=[{n}, {n_pos}]; "
                     f"got shape {tuple(t.shape)}")


@dataclass
class DLAResult:
    """Direct logit attribution of a logit (difference) at chosen positions.

    Attributes:
        contributions: ``[n, n_positions, n_components]``: each component's direct effect on the logit
            (difference), with ``ln_final``'s scale frozen from the clean run.
        components: column names: ``embed``, ``pos_embed`` (absolute-position models), ``L{l}H{h}`` (heads),
            ``L{l} b_O`` (a block's attention output bias), ``MLP{l}``, ``bias`` (``ln_final`` bias and ``b_U``).
        logits: ``[n, n_positions]``: the model's own logit (difference) there.
        remainder: ``[n, n_positions]``: ``logits - contributions.sum(-1)`` (float rounding when the model's
            residual stream is the sum above).
        positions: the positions (indices into ``seq``).
    """

    contributions: torch.Tensor
    components: list[str]
    logits: torch.Tensor
    remainder: torch.Tensor
    positions: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> torch.Tensor:
        """``[n_positions, n_components]``: contributions averaged over examples."""
        return self.contributions.mean(0)

    def top(self, k: int = 5, position: int | None = None) -> list[tuple[str, float]]:
        """The ``k`` components with the largest mean |contribution| (at one position, or summed over them)."""
        m = self.mean[self.positions.index(position)] if position is not None else self.mean.sum(0)
        order = m.abs().argsort(descending=True)[:k]
        return [(self.components[i], float(m[i])) for i in order]

    def table(self) -> Any:
        """One row per (position, component): mean and std of the contribution over examples (a DataFrame)."""
        mean = self.mean
        std = self.contributions.std(0) if len(self.contributions) > 1 else torch.zeros_like(mean)
        rows = [{"position": p, "component": c, "mean": float(mean[i, j]), "std": float(std[i, j])}
                for i, p in enumerate(self.positions) for j, c in enumerate(self.components)]
        return frame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Mean contributions ``[n_positions][n_components]`` and the mean logit per position (JSON-able)."""
        return plain({"components": self.components, "positions": self.positions, "mean": self.mean,
                      "logits": self.logits.mean(0), "max_abs_remainder": float(self.remainder.abs().max()),
                      "meta": self.meta})

    def __repr__(self) -> str:
        return (f"DLAResult({len(self.logits)} examples x positions {self.positions}, {len(self.components)} "
                f"components; top {self.top(3)})")


@torch.no_grad()
def direct_logit_attribution(model: Any, data: Any, token: Any, minus: Any = None, positions: Any = -1,
                             batch_size: int = 256) -> DLAResult:
    """Split the logit of ``token`` (minus the logit of ``minus``) at ``positions`` into per-component terms.

    Args:
        data: a SearchDataset or tokens ``[n, seq]``.
        token, minus: token ids: an int, ``[n]`` or ``[n, n_positions]``; ``minus=None`` attributes the logit itself.
        positions: an int, a list of ints (negative from the end) or None (all).
    """
    tokens = tokens_of(data)
    n, seq = tokens.shape
    pos = resolve_positions(positions, seq)
    L = model.cfg.n_layers
    fired = set(hook_names(model))
    hooks = ["ln_final.hook_in"] + [h for h in ("hook_embed", "hook_pos_embed", "ln_final.hook_scale") if h in fired]
    hooks += [f"blocks.{layer}.{s}" for layer in range(L) for s in ("attn.hook_z", "hook_mlp_out")]
    acts = {k: v[:, pos].float() for k, v in run_cache(model, data, hooks, batch_size).items()}  # [n, P, ...]

    parts: list[torch.Tensor] = []  # each [n, P, d_model]
    names: list[str] = []
    for h, label in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")):
        if h in acts:
            parts.append(acts[h])
            names.append(label)
    b_o = model.b_O.detach().float()  # [L, d_model]
    for layer in range(L):
        heads = head_outputs(model, layer, acts[f"blocks.{layer}.attn.hook_z"])  # [n, P, H, d_model]
        parts += list(heads.unbind(2))
        names += [f"L{layer}H{h}" for h in range(heads.shape[2])]
        parts.append(b_o[layer].expand(n, len(pos), -1))
        names.append(f"L{layer} b_O")
        parts.append(acts[f"blocks.{layer}.hook_mlp_out"])
        names.append(f"MLP{layer}")
    stack = torch.stack(parts, 2)  # [n, P, C, d_model]

    a = token_ids(token, n, len(pos))
    w_u, b_u = model.W_U.detach().float(), model.b_U.detach().float()  # [d_model, V], [V]
    u = w_u.T[a]  # [n, P, d_model]
    bias_u = b_u[a]
    if minus is not None:
        b = token_ids(minus, n, len(pos), "minus")
        u, bias_u = u - w_u.T[b], bias_u - b_u[b]
    centers, w, b_ln = ln_final_affine(model)
    scale = acts.get("ln_final.hook_scale", torch.ones(n, len(pos), 1))  # [n, P, 1], frozen from the clean run
    if centers:
        stack = stack - stack.mean(-1, keepdim=True)
    direction = u * (w.detach().float() if w is not None else 1.0)  # [n, P, d_model]
    contrib = torch.einsum("npcd,npd->npc", stack, direction) / scale
    bias = bias_u + ((u * b_ln.detach().float()).sum(-1) if b_ln is not None else 0.0)  # [n, P]
    contrib = torch.cat([contrib, bias[..., None]], -1)
    names.append("bias")

    lg = run_logits(model, tokens, batch_size)[:, pos]  # [n, P, V]
    own = lg.gather(-1, a[..., None])[..., 0]
    if minus is not None:
        own = own - lg.gather(-1, token_ids(minus, n, len(pos), "minus")[..., None])[..., 0]
    remainder = own - contrib.sum(-1)
    size = float(contrib.abs().sum(-1).max().clamp_min(1.0))
    if float(remainder.abs().max()) > 1e-3 * size:
        warnings.warn(f"the components miss {float(remainder.abs().max()):.3g} of the logit (of {size:.3g}): this "
                      "model's residual stream is not embed + heads + b_O + MLPs (see res.remainder)", stacklevel=2)
    return DLAResult(contrib, names, own, remainder, pos,
                     {"token": plain(token), "minus": plain(minus), "ln_scale": "frozen from the clean run"})


@dataclass
class LogitLensResult:
    """The logit lens at chosen positions.

    Attributes:
        logits: ``[n_layers, n, n_positions, d_vocab]``: ``unembed(ln_final(resid_post of block l)))``; the last
            depth is the model's output.
        positions: the positions read.
        token: the token whose probability :attr:`prob` gives (None if not asked).
    """

    logits: torch.Tensor
    positions: list[int]
    token: Any = None

    @property
    def top(self) -> torch.Tensor:
        """``[n_layers, n, n_positions]``: the decoded (argmax) token after each block."""
        return self.logits.argmax(-1)

    @property
    def prob(self) -> torch.Tensor:
        """``[n_layers, n, n_positions]``: probability of :attr:`token` after each block."""
        if self.token is None:
            raise ValueError("pass token= to logit_lens to get the probability of a token at each depth")
        t = token_ids(self.token, self.logits.shape[1], self.logits.shape[2])
        idx = t[None, ..., None].expand(len(self.logits), -1, -1, 1)
        return self.logits.softmax(-1).gather(-1, idx)[..., 0]

    def table(self) -> Any:
        """One row per (depth, position): agreement of the decoded token with the final prediction, and the
        mean probability of :attr:`token` when given (a DataFrame)."""
        agree = (self.top == self.top[-1]).float().mean(1)  # [L, P]
        prob = self.prob.mean(1) if self.token is not None else None
        rows = []
        for layer in range(len(self.logits)):
            for j, p in enumerate(self.positions):
                row = {"layer": layer, "position": p, "agrees_with_final": float(agree[layer, j])}
                if prob is not None:
                    row["prob"] = float(prob[layer, j])
                rows.append(row)
        return frame(rows)

    def to_dict(self) -> dict[str, Any]:
        """The table's numbers as plain Python."""
        rows = self.table()
        return plain({"positions": self.positions, "token": self.token,
                      "rows": rows.to_dict("records") if hasattr(rows, "to_dict") else rows})


@torch.no_grad()
def logit_lens(model: Any, data: Any, positions: Any = -1, token: Any = None, batch_size: int = 256
               ) -> LogitLensResult:
    """Decode the residual stream after every block through ``ln_final`` and the unembedding.

    Args:
        data: a SearchDataset or tokens ``[n, seq]``; positions: int / list / None (all).
        token: a token id (int, ``[n]`` or ``[n, n_positions]``) whose probability to follow, or None.
    """
    tokens = tokens_of(data)
    pos = resolve_positions(positions, tokens.shape[1])
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
    acts = run_cache(model, data, hooks, batch_size)
    resid = torch.stack([acts[h][:, pos] for h in hooks])  # [L, n, P, d_model]
    param = next(model.parameters())
    lg = model.unembed(model.ln_final(resid.to(param)))
    if token is not None:
        token_ids(token, tokens.shape[0], len(pos))
    return LogitLensResult(lg.float().cpu(), pos, plain(token) if isinstance(token, torch.Tensor) else token)
