"""Tutorial 06, *Superposition and sparse autoencoders on toy data*.

Exercises: interference in a Toy Model of Superposition, the MMCS recovery score, an SAE forward pass and
loss, dead latents, and choosing a dictionary size without ground truth (agreement with a 2x dictionary).
Every case is built from seeded random tensors, small enough to check in milliseconds.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit.exercises.compare import diff, diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise

Tensor = torch.Tensor


def _unit_rows(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


# --- references -------------------------------------------------------------------------------------------


def interference(W: Tensor) -> Tensor:
    """Per feature ``i``: ``sum_{j != i} (W_i_hat . W_j)^2`` for the columns ``W_i`` of ``W [d_hidden, n_features]``.

    ``W_i_hat`` is column ``i`` scaled to unit length (Elhage et al. 2022's superposition measure).
    Returns ``[n_features]``.
    """
    cols = W.T  # [n_features, d_hidden]
    dots = _unit_rows(cols) @ cols.T  # [i, j] = W_i_hat . W_j
    dots = dots - torch.diag(torch.diagonal(dots))
    return dots.pow(2).sum(1)


def mmcs(learned: Tensor, true: Tensor) -> float:
    """Mean max cosine similarity: for each true feature (row of ``true [n_true, d]``), the largest absolute
    cosine with any learned direction (row of ``learned [n_learned, d]``), averaged over the true features.

    Same argument order and convention (``|cos|``: PCA/ICA directions have arbitrary sign) as
    ``toolkit.unsupervised.mmcs``."""
    cos = (_unit_rows(true) @ _unit_rows(learned).T).abs()  # [n_true, n_learned]
    return float(cos.max(dim=1).values.mean())


def sae_forward(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor) -> tuple[Tensor, Tensor]:
    """A ReLU sparse autoencoder: ``latents = ReLU((x - b_dec) @ W_enc + b_enc)``, ``x_hat = latents @ W_dec + b_dec``.

    Shapes: ``x [n, d]``, ``W_enc [d, m]``, ``b_enc [m]``, ``W_dec [m, d]``, ``b_dec [d]`` ->
    ``(latents [n, m], x_hat [n, d])``.
    """
    latents = torch.relu((x - b_dec) @ W_enc + b_enc)
    return latents, latents @ W_dec + b_dec


def sae_loss(x: Tensor, x_hat: Tensor, latents: Tensor, l1_coeff: float) -> Tensor:
    """Squared reconstruction error summed over dimensions plus ``l1_coeff`` times the L1 norm of the latents,
    both averaged over the batch: a scalar tensor."""
    mse = (x - x_hat).pow(2).sum(-1).mean()
    l1 = latents.abs().sum(-1).mean()
    return mse + l1_coeff * l1


def dead_latents(latents: Tensor, threshold: float = 0.0) -> Tensor:
    """BoolTensor ``[m]``: True for each latent that never exceeds ``threshold`` on any of the ``n`` samples of
    ``latents [n, m]``."""
    return (latents <= threshold).all(dim=0)


def size_agreement(decoders: dict[int, Tensor], alive: dict[int, Tensor]) -> dict[int, float]:
    """For each dictionary size ``m`` whose ``2 * m`` partner is in ``decoders``: the MMCS of the alive rows of
    ``decoders[m]`` against the alive rows of ``decoders[2 * m]`` (each small-dictionary direction looks for its
    best match in the larger one). ``decoders[m]`` is ``[m, d]``; ``alive[m]`` is a BoolTensor ``[m]``."""
    out = {}
    for m in sorted(decoders):
        if 2 * m in decoders:
            out[m] = mmcs(decoders[2 * m][alive[2 * m]], decoders[m][alive[m]])
    return out


# --- plausible mistakes -----------------------------------------------------------------------------------


def _interference_with_self(W):
    cols = W.T
    return (_unit_rows(cols) @ cols.T).pow(2).sum(1)


def _interference_unnormalised(W):
    dots = W.T @ W
    return (dots - torch.diag(torch.diagonal(dots))).pow(2).sum(1)


def _interference_other_axis(W):
    cols = W.T
    dots = _unit_rows(cols) @ cols.T
    return (dots - torch.diag(torch.diagonal(dots))).pow(2).sum(0)


def _interference_abs(W):
    cols = W.T
    dots = _unit_rows(cols) @ cols.T
    return (dots - torch.diag(torch.diagonal(dots))).abs().sum(1)


def _mmcs_other_axis(l, t):
    return float((_unit_rows(t) @ _unit_rows(l).T).abs().max(dim=0).values.mean())


def _mmcs_unnormalised(l, t):
    return float((t @ l.T).abs().max(dim=1).values.mean())


def _mmcs_signed(l, t):
    return float((_unit_rows(t) @ _unit_rows(l).T).max(dim=1).values.mean())


def _mmcs_mean_cos(l, t):
    return float((_unit_rows(t) @ _unit_rows(l).T).abs().mean())


def _fwd_no_pre_bias(x, W_enc, b_enc, W_dec, b_dec):
    latents = torch.relu(x @ W_enc + b_enc)
    return latents, latents @ W_dec + b_dec


def _fwd_no_relu(x, W_enc, b_enc, W_dec, b_dec):
    latents = (x - b_dec) @ W_enc + b_enc
    return latents, latents @ W_dec + b_dec


def _fwd_no_dec_bias(x, W_enc, b_enc, W_dec, b_dec):
    latents = torch.relu((x - b_dec) @ W_enc + b_enc)
    return latents, latents @ W_dec


def _loss_elementwise_mean(x, x_hat, latents, l1_coeff):
    return (x - x_hat).pow(2).mean() + l1_coeff * latents.abs().mean()


def _loss_mse_elementwise(x, x_hat, latents, l1_coeff):
    return (x - x_hat).pow(2).mean() + l1_coeff * latents.abs().sum(-1).mean()


def _loss_l2_penalty(x, x_hat, latents, l1_coeff):
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coeff * latents.pow(2).sum(-1).mean()


def _loss_batch_sum(x, x_hat, latents, l1_coeff):
    return (x - x_hat).pow(2).sum() + l1_coeff * latents.abs().sum()


def _loss_no_coeff(x, x_hat, latents, l1_coeff):
    return (x - x_hat).pow(2).sum(-1).mean() + latents.abs().sum(-1).mean()


def _dead_any(latents, threshold=0.0):
    return (latents <= threshold).any(dim=0)


def _dead_alive(latents, threshold=0.0):
    return (latents > threshold).any(dim=0)


def _dead_fraction(latents, threshold=0.0):
    return float((latents <= threshold).all(dim=0).float().mean())


def _dead_ignores_threshold(latents, threshold=0.0):
    return (latents <= 0).all(dim=0)


def _agree_with_dead(decoders, alive):
    return {m: mmcs(decoders[2 * m], decoders[m]) for m in sorted(decoders) if 2 * m in decoders}


def _agree_reversed(decoders, alive):
    return {m: mmcs(decoders[m][alive[m]], decoders[2 * m][alive[2 * m]]) for m in sorted(decoders)
            if 2 * m in decoders}


def _agree_every_size(decoders, alive):
    out = size_agreement(decoders, alive)
    for m in decoders:
        out.setdefault(m, float("nan"))
    return out


# --- cases ------------------------------------------------------------------------------------------------


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _interference_cases():
    g = _g(601)
    pentagon = torch.stack([torch.cos(torch.arange(5) * 2 * torch.pi / 5),
                            torch.sin(torch.arange(5) * 2 * torch.pi / 5)])  # 5 features in 2-d
    ortho = torch.zeros(3, 5)
    ortho[0, 0], ortho[1, 1], ortho[2, 2] = 1.0, 0.7, 1.3  # 3 features on their own axes, 2 switched off
    return [("random W [5, 20]", (torch.randn(5, 20, generator=g),)),
            ("pentagon: 5 features in 2 dimensions", (pentagon * 0.9,)),
            ("3 orthogonal features and 2 absent ones", (ortho + 1e-3 * torch.randn(3, 5, generator=g),)),
            ("random W [3, 6] with unequal column norms", (torch.randn(3, 6, generator=g) * torch.arange(1, 7),))]


def _mmcs_cases():
    g = _g(602)
    true = _unit_rows(torch.randn(12, 8, generator=g))
    noisy = torch.cat([true[:9] + 0.3 * torch.randn(9, 8, generator=g), torch.randn(11, 8, generator=g)])
    noisy = noisy * torch.rand(20, 1, generator=g).add(0.5)  # learned directions of unequal norm
    flipped = -true[:6] * 2.0
    return [("20 learned directions (9 near-copies), 12 true features", (noisy, true)),
            ("5 random learned directions, unnormalised true features",
             (torch.randn(5, 8, generator=g), 3 * torch.randn(7, 8, generator=g))),
            ("learned directions that point the opposite way",
             (torch.cat([flipped, torch.randn(3, 8, generator=g)]), true[:6])),
            ("a perfect dictionary (scaled, shuffled)", (2.5 * true[torch.randperm(12, generator=g)], true))]


def _sae_params(d: int, m: int, seed: int) -> tuple[Tensor, ...]:
    g = _g(seed)
    x = torch.randn(10, d, generator=g) + 0.5
    return (x, torch.randn(d, m, generator=g) / d**0.5, 0.1 * torch.randn(m, generator=g),
            torch.randn(m, d, generator=g) / m**0.5, 0.5 + 0.2 * torch.randn(d, generator=g))


def _forward_cases():
    return [("d=6, m=12", _sae_params(6, 12, 603)), ("d=4, m=4", _sae_params(4, 4, 604)),
            ("d=8, m=24", _sae_params(8, 24, 605))]


def _loss_cases():
    out = []
    for name, (x, W_enc, b_enc, W_dec, b_dec), coeff in zip(
            ("d=6, m=12, l1_coeff=0.1", "d=4, m=4, l1_coeff=1.0", "d=8, m=24, l1_coeff=0.03"),
            (_sae_params(6, 12, 606), _sae_params(4, 4, 607), _sae_params(8, 24, 608)), (0.1, 1.0, 0.03)):
        latents, x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
        out.append((name, (x, x_hat, latents, coeff)))
    return out


def _dead_cases():
    g = _g(609)
    a = torch.relu(torch.randn(50, 10, generator=g))
    a[:, [2, 7]] = 0.0  # never active
    a[3:, 4] = 0.0  # active on the first 3 samples only: alive
    a[:, 5] = torch.where(torch.arange(50) == 17, 0.8, 0.0)  # fires once: alive
    b = torch.relu(torch.randn(30, 6, generator=g)) * 0.05
    b[0, 1] = 0.5
    return [("50 samples, 10 latents", (a,)), ("threshold 0.1: small activations do not count", (b,),
                                               {"threshold": 0.1}),
            ("nothing is dead", (torch.rand(20, 5, generator=g) + 0.1,))]


def _agreement_cases():
    g = _g(610)
    base = _unit_rows(torch.randn(8, 6, generator=g))
    decs, alive = {}, {}
    for m in (4, 8, 16):
        rows = [base[i % 8] + 0.05 * torch.randn(6, generator=g) for i in range(m)]
        dec = torch.stack(rows)
        keep = torch.ones(m, dtype=torch.bool)
        if m == 16:
            dec[12:] = torch.randn(4, 6, generator=g)  # dead latents keep their random init
            keep[12:] = False
        decs[m], alive[m] = dec, keep
    decs2 = {m: torch.randn(m, 5, generator=g) for m in (3, 6, 12, 24)}
    alive2 = {m: torch.rand(m, generator=g) > 0.2 for m in decs2}
    return [("sizes 4, 8, 16 (16 has dead latents)", (decs, alive)),
            ("sizes 3, 6, 12, 24, random directions", (decs2, alive2))]


# --- comparisons ------------------------------------------------------------------------------------------


def _compare_forward(got: Any, expected: tuple[Tensor, Tensor], args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(latents, x_hat)`"
    return diff_tensor(got[0], expected[0], name="latents") or diff_tensor(got[1], expected[1], name="x_hat")


def _compare_scalar(got: Any, expected: Tensor, args: tuple) -> str | None:
    if isinstance(got, torch.Tensor) and got.ndim == 0 and not got.dtype.is_floating_point:
        return "the loss should be a float tensor"
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.reshape(())
    return diff_tensor(got, expected, name="loss")


def _compare_float(got: Any, expected: float, args: tuple) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = float(got)
    return diff_value(got, expected, name="MMCS", tol=1e-5)


def _compare_default(got: Any, expected: Any, args: tuple) -> str | None:
    return diff(got, expected)


def _compare_agreement(got: Any, expected: dict, args: tuple) -> str | None:
    return diff_value(got, expected, name="agreement", tol=1e-5)


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "06.interference", title="How much does each feature interfere?", difficulty=2, importance=3, minutes=10,
    reference=interference, cases=_interference_cases, compare=_compare_default,
    hints=["Feature i interferes with feature j by how much j's direction points along i's: sum the squared overlaps "
           "with every *other* feature, using i's direction at unit length and j's at its full length.",
           "Feature i's direction is column i of `W`, so work with the rows of `W.T` ([n_features, d_hidden]); "
           "normalise only the first factor, and drop the diagonal (a feature does not interfere with itself).",
           "`cols = W.T`, `dots = (cols / cols.norm(dim=1, keepdim=True)) @ cols.T`, zero the diagonal with `dots - "
           "torch.diag(torch.diagonal(dots))`, then `.pow(2).sum(1)`."],
    mistakes=[Mistake("you counted each feature's overlap with itself: leave out j == i (zero the diagonal)",
                      _interference_with_self),
              Mistake("normalise W_i (the feature whose interference you measure) to unit length first",
                      _interference_unnormalised),
              Mistake("you summed over the wrong index: for feature i, sum over the *other* features j (dim=1 of "
                      "a matrix whose [i, j] entry is W_i_hat . W_j)", _interference_other_axis),
              Mistake("square the dot products (not their absolute values)", _interference_abs)],
)

function_exercise(
    "06.mmcs", title="Mean max cosine similarity", difficulty=2, importance=5, minutes=10,
    reference=mmcs, cases=_mmcs_cases, compare=_compare_float,
    hints=["For each true feature, find the learned direction most aligned with it (sign does not matter), then "
           "average those best alignments.",
           "Cosine similarity is the dot product of unit vectors: divide every row by its norm; the absolute cosines "
           "form an [n_true, n_learned] matrix.",
           "`cos = (true_unit @ learned_unit.T).abs()`, then `float(cos.max(dim=1).values.mean())`."],
    mistakes=[Mistake("you averaged over the learned directions: MMCS asks, for each *true* feature, how well "
                      "its best learned match fits (take the max over dim=1 of a [n_true, n_learned] matrix)",
                      _mmcs_other_axis),
              Mistake("normalise both sets of directions to unit length: a cosine ignores the norms",
                      _mmcs_unnormalised),
              Mistake("take the absolute value of the cosine: a PCA or ICA direction has an arbitrary sign, so "
                      "a direction pointing the opposite way still finds the feature", _mmcs_signed),
              Mistake("take the *max* cosine for each true feature, not the mean over all pairs", _mmcs_mean_cos)],
)

function_exercise(
    "06.sae_forward", title="An SAE forward pass", difficulty=2, importance=5, minutes=10,
    reference=sae_forward, cases=_forward_cases, compare=_compare_forward,
    hints=["Encode, rectify, decode: the encoder sees the input with the decoder bias removed, and the decoder adds "
           "that bias back.",
           "The latents are a ReLU of an affine map of `x - b_dec` ([n, m]); the reconstruction is an affine map of "
           "the latents ([n, d]). Return both as a tuple.",
           "`latents = torch.relu((x - b_dec) @ W_enc + b_enc)` and `x_hat = latents @ W_dec + b_dec`."],
    mistakes=[Mistake("subtract the decoder bias before encoding: `(x - b_dec) @ W_enc + b_enc`",
                      _fwd_no_pre_bias),
              Mistake("the latents must be non-negative: apply a ReLU to the encoder output", _fwd_no_relu),
              Mistake("the reconstruction adds the decoder bias back: `latents @ W_dec + b_dec`", _fwd_no_dec_bias)],
)

function_exercise(
    "06.sae_loss", title="The SAE loss", difficulty=1, importance=4, minutes=5,
    reference=sae_loss, cases=_loss_cases, compare=_compare_scalar,
    hints=["Two terms: reconstruction error and a sparsity penalty weighted by `l1_coeff`.",
           "Sum the squared error over the d dimensions of each sample, and the absolute latents over the m latents "
           "of each sample; then average both over the batch.",
           "`(x - x_hat).pow(2).sum(-1).mean() + l1_coeff * latents.abs().sum(-1).mean()`"],
    mistakes=[Mistake("sum over the feature dimension (dim=-1) and average only over the batch; you averaged "
                      "over every element", _loss_elementwise_mean),
              Mistake("the reconstruction term should sum the squared error over the d dimensions of a sample "
                      "before averaging over the batch", _loss_mse_elementwise),
              Mistake("the sparsity penalty is the L1 norm (absolute values), not the squared L2 norm",
                      _loss_l2_penalty),
              Mistake("average over the batch (`.mean()` after summing over dim=-1), do not sum over it",
                      _loss_batch_sum),
              Mistake("multiply the sparsity penalty by `l1_coeff`", _loss_no_coeff)],
)
