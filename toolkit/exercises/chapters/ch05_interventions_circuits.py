"""Tutorial 05, section *Circuit tools by hand*: the learner writes what :mod:`toolkit.circuits` does.

Exercises: per-head outputs ``z @ W_O`` (as ``circuits.components.head_outputs``, without ``b_O``), direct logit
attribution of residual-stream components through the frozen ``ln_final`` scale (as
``circuits.direct_logit_attribution``), the logit lens (as ``circuits.logit_lens``) and mean ablation of a set of
heads at chosen positions (as ``circuits.ablate_components(..., method="mean")``). The module name sorts after
``ch05_interventions`` so these register after that chapter's exercises, in notebook order. Cases are seeded
random tensors; tests/test_exercises_05_circuits.py checks the references against the toolkit on the tree model.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit.exercises.compare import diff_tensor
from toolkit.exercises.core import Mistake, function_exercise

Tensor = torch.Tensor


# --- references -------------------------------------------------------------------------------------------


def head_outputs(z: Tensor, W_O: Tensor) -> Tensor:
    """What each head writes into the residual stream: ``z [n, seq, head, d_head]`` times its own
    ``W_O [head, d_head, d_model]`` -> ``[n, seq, head, d_model]`` (the block's bias ``b_O`` belongs to no head and
    is left out)."""
    return torch.einsum("nshd,hdm->nshm", z, W_O)


def dla(parts: Tensor, scale: Tensor, w_ln: Tensor, W_U: Tensor, good: Tensor, bad: Tensor) -> Tensor:
    """Direct logit attribution: each component's term of ``logit(good) - logit(bad)``: ``[n, C]``.

    ``parts [n, C, d_model]``: what each component wrote into the final residual stream (at the answer position);
    ``scale [n, 1]``: ``ln_final``'s scale in the clean run (frozen); ``w_ln [d_model]``: its weight;
    ``W_U [d_model, vocab]``; ``good`` / ``bad`` ``[n]`` token ids. LayerNorm centres each vector (subtracts its mean
    over ``d_model``), divides by the scale and multiplies by ``w_ln``; the logit difference reads the result along
    ``W_U[:, good] - W_U[:, bad]``.
    """
    centred = parts - parts.mean(-1, keepdim=True)
    u = (W_U[:, good] - W_U[:, bad]).T * w_ln  # [n, d_model]
    return torch.einsum("ncd,nd->nc", centred, u) / scale


def logit_lens(resid: Tensor, w_ln: Tensor, b_ln: Tensor, W_U: Tensor, b_U: Tensor, eps: float = 1e-5) -> Tensor:
    """Decode the residual stream after every block: ``[L, n, vocab]``.

    ``resid [L + 1, n, d_model]``: ``resid[0]`` is the input of block 0 (the embeddings), ``resid[l + 1]`` the
    output of block ``l``. Each is read through ``ln_final`` (LayerNorm with weight ``w_ln``, bias ``b_ln``, ``eps``)
    and the unembedding ``W_U [d_model, vocab]``, ``b_U [vocab]``.
    """
    x = resid[1:]
    x = x - x.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return (x * w_ln + b_ln) @ W_U + b_U


def mean_ablate(z: Tensor, z_ref: Tensor, heads: list[int], positions: list[int]) -> Tensor:
    """Mean-ablate ``heads`` at ``positions``: ``z [n, seq, head, d_head]`` with ``z[:, p, h]`` replaced by the mean
    of ``z_ref [m, seq, head, d_head]`` over its examples at the same position ``p`` and head ``h``. Other heads and
    positions are unchanged. Returns a new tensor."""
    out = z.clone()
    mean = z_ref.mean(0)  # [seq, head, d_head]
    for p in positions:
        for h in heads:
            out[:, p, h] = mean[p, h]
    return out


# --- plausible mistakes -----------------------------------------------------------------------------------


def _ho_summed(z, W_O):
    return head_outputs(z, W_O).sum(2)


def _ho_one_matrix(z, W_O):
    return torch.einsum("nshd,dm->nshm", z, W_O[0])


def _ho_swapped(z, W_O):
    return torch.einsum("nshd,dhm->nshm", z, W_O)


def _dla_no_scale(parts, scale, w_ln, W_U, good, bad):
    return dla(parts, torch.ones_like(scale), w_ln, W_U, good, bad)


def _dla_not_centred(parts, scale, w_ln, W_U, good, bad):
    u = (W_U[:, good] - W_U[:, bad]).T * w_ln
    return torch.einsum("ncd,nd->nc", parts, u) / scale


def _dla_good_only(parts, scale, w_ln, W_U, good, bad):
    centred = parts - parts.mean(-1, keepdim=True)
    return torch.einsum("ncd,nd->nc", centred, W_U[:, good].T * w_ln) / scale


def _dla_no_weight(parts, scale, w_ln, W_U, good, bad):
    return dla(parts, scale, torch.ones_like(w_ln), W_U, good, bad)


def _ll_no_ln(resid, w_ln, b_ln, W_U, b_U, eps=1e-5):
    return resid[1:] @ W_U + b_U


def _ll_before_block(resid, w_ln, b_ln, W_U, b_U, eps=1e-5):
    return logit_lens(torch.cat([resid[:1], resid[:-1]]), w_ln, b_ln, W_U, b_U, eps)


def _ll_not_centred(resid, w_ln, b_ln, W_U, b_U, eps=1e-5):
    x = resid[1:]
    x = x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return (x * w_ln + b_ln) @ W_U + b_U


def _ma_zero(z, z_ref, heads, positions):
    out = z.clone()
    for p in positions:
        for h in heads:
            out[:, p, h] = 0.0
    return out


def _ma_pooled_positions(z, z_ref, heads, positions):
    out = z.clone()
    mean = z_ref.mean((0, 1))  # [head, d_head]
    for p in positions:
        for h in heads:
            out[:, p, h] = mean[h]
    return out


def _ma_own_mean(z, z_ref, heads, positions):
    return mean_ablate(z, z, heads, positions)


def _ma_all_positions(z, z_ref, heads, positions):
    return mean_ablate(z, z_ref, heads, list(range(z.shape[1])))


# --- cases ------------------------------------------------------------------------------------------------


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ho_cases():
    out = []
    for k, (n, seq, heads, d_head, d_model) in enumerate(((3, 5, 3, 3, 6), (2, 4, 2, 2, 5), (1, 3, 4, 2, 8))):
        g = _g(570 + k)
        z = torch.randn(n, seq, heads, d_head, generator=g)
        out.append((f"{heads} heads, d_head {d_head}, d_model {d_model}",
                    (z, torch.randn(heads, d_head, d_model, generator=g))))
    return out


def _dla_cases():
    out = []
    for k, (n, C, d, V) in enumerate(((5, 4, 8, 10), (3, 6, 6, 7))):
        g = _g(580 + k)
        parts = torch.randn(n, C, d, generator=g) + torch.randn(n, C, 1, generator=g) * 2  # non-zero means
        scale = torch.rand(n, 1, generator=g) * 2.5 + 0.5
        w_ln = torch.rand(d, generator=g) + 0.5
        W_U = torch.randn(d, V, generator=g)
        good = torch.randint(0, V, (n,), generator=g)
        bad = (good + 1 + torch.randint(0, V - 1, (n,), generator=g)) % V
        out.append((f"{n} examples, {C} components, d_model {d}", (parts, scale, w_ln, W_U, good, bad)))
    return out


def _ll_cases():
    out = []
    for k, (L, n, d, V) in enumerate(((3, 4, 8, 6), (2, 5, 6, 9))):
        g = _g(590 + k)
        resid = torch.cumsum(torch.randn(L + 1, n, d, generator=g) + 0.5, 0)  # grows block by block, mean != 0
        out.append((f"{L} blocks, {n} examples, d_model {d}",
                    (resid, torch.rand(d, generator=g) + 0.5, torch.randn(d, generator=g) * 0.3,
                     torch.randn(d, V, generator=g), torch.randn(V, generator=g))))
    return out


def _ma_cases():
    g = _g(600)
    z = torch.randn(4, 6, 3, 2, generator=g)
    z_ref = torch.randn(10, 6, 3, 2, generator=g) + torch.arange(6.0)[None, :, None, None]  # means differ by position
    z2 = torch.randn(3, 5, 2, 4, generator=g) + 1.0
    z2_ref = torch.randn(8, 5, 2, 4, generator=g) - torch.arange(5.0)[None, :, None, None]
    return [("heads [0, 2] at positions [1, 4]", (z, z_ref, [0, 2], [1, 4])),
            ("head 1 at position 3", (z2, z2_ref, [1], [3])),
            ("every head at positions [0, 2]", (z2, z2_ref, [0, 1], [0, 2]))]


def _cmp(name: str, atol: float = 1e-4):
    def compare(got: Any, expected: Tensor, args: tuple) -> str | None:
        problem = diff_tensor(got, expected, name=name)
        if problem is None or not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return problem
        return None if torch.allclose(got.float(), expected.float(), atol=atol, rtol=1e-4) else problem

    return compare


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "05.head_outputs", title="Each head's output", difficulty=3, importance=5, minutes=10,
    reference=head_outputs, cases=_ho_cases, compare=_cmp("head outputs"),
    hints=["Each head multiplies its own `z` vector by its own output matrix; keep the head dimension in the result.",
           "Head `h` at every example and position: `z[:, :, h] @ W_O[h]`, a [n, seq, d_model] tensor; stack them on "
           "dim 2, or do all heads at once with one einsum that keeps `h`.",
           "`torch.einsum(\"nshd,hdm->nshm\", z, W_O)`"],
    mistakes=[Mistake("keep the heads apart: summing over them gives the attention output of the whole block "
                      "(less b_O), not one vector per head", _ho_summed),
              Mistake("every head has its own output matrix: use `W_O[h]` for head h, not `W_O[0]` for all",
                      _ho_one_matrix),
              Mistake("W_O is [head, d_head, d_model]: its first axis is the head, its second the d_head axis that "
                      "z's last axis is contracted with", _ho_swapped)],
)

function_exercise(
    "05.direct_logit_attribution", title="Direct logit attribution", difficulty=3, importance=5, minutes=15,
    reference=dla, cases=_dla_cases, compare=_cmp("attributions"),
    hints=["With the LayerNorm scale frozen, ln_final is linear in what each component wrote, so the logit difference "
           "splits into one term per component: apply the linear part of ln_final to each part, then read it along the "
           "direction that separates the two tokens.",
           "Three steps per part: subtract its mean over d_model, multiply by `w_ln` and divide by the example's "
           "`scale`; then take the dot product with `W_U[:, good] - W_U[:, bad]` (one column pair per example).",
           "`centred = parts - parts.mean(-1, keepdim=True)`, `u = (W_U[:, good] - W_U[:, bad]).T * w_ln`, "
           "`torch.einsum(\"ncd,nd->nc\", centred, u) / scale`"],
    mistakes=[Mistake("divide by ln_final's scale: the logits read the *normalised* residual stream", _dla_no_scale),
              Mistake("LayerNorm first subtracts each vector's mean over d_model: centre every part before reading "
                      "it", _dla_not_centred),
              Mistake("a logit *difference*: read along `W_U[:, good] - W_U[:, bad]`, not the good token's column "
                      "alone", _dla_good_only),
              Mistake("ln_final also multiplies by its weight `w_ln` before the unembedding", _dla_no_weight)],
)

function_exercise(
    "05.logit_lens", title="The logit lens", difficulty=2, importance=4, minutes=10,
    reference=logit_lens, cases=_ll_cases, compare=_cmp("lens logits"),
    hints=["Treat the residual stream after each block as if it were the last one: the model would apply ln_final "
           "and then unembed.",
           "After block l is `resid[l + 1]`; LayerNorm centres over d_model, divides by `sqrt(mean(x**2) + eps)` of "
           "the centred vector, then applies `w_ln` and `b_ln`.",
           "`x = resid[1:]`, `x = x - x.mean(-1, keepdim=True)`, `x = x / (x.pow(2).mean(-1, keepdim=True) + "
           "eps).sqrt()`, `(x * w_ln + b_ln) @ W_U + b_U`"],
    mistakes=[Mistake("apply ln_final before the unembedding: the unembedding was trained on normalised vectors",
                      _ll_no_ln),
              Mistake("off by one block: the residual *after* block l is `resid[l + 1]` (`resid[0]` is the "
                      "embeddings)", _ll_before_block),
              Mistake("the model's ln_final is a LayerNorm: subtract the mean over d_model before dividing by the "
                      "root mean square", _ll_not_centred)],
)

function_exercise(
    "05.mean_ablate", title="Mean-ablate a set of heads", difficulty=3, importance=4, minutes=10,
    reference=mean_ablate, cases=_ma_cases, compare=_cmp("ablated z"),
    hints=["Replace only the chosen heads at the chosen positions, each by the reference's average for that same "
           "head and position; leave the input tensor itself unchanged.",
           "Average `z_ref` over its examples only (dim 0), giving [seq, head, d_head]; copy `z` and overwrite "
           "`out[:, p, h]` for every p in positions and h in heads.",
           "`out = z.clone()`, `mean = z_ref.mean(0)`, then `for p in positions: for h in heads: "
           "out[:, p, h] = mean[p, h]`"],
    mistakes=[Mistake("mean ablation replaces with the *mean* activation, not zero (zero is off-distribution)",
                      _ma_zero),
              Mistake("average over the reference examples only, at the same position: positions have very "
                      "different typical activations", _ma_pooled_positions),
              Mistake("take the mean over the reference data `z_ref`, not over the inputs being ablated",
                      _ma_own_mean),
              Mistake("ablate only at `positions`; the other positions keep their activations", _ma_all_positions)],
)
