"""Tutorial 07, *Unsupervised discovery in the search model*.

Exercises: matching latents to ground-truth labels (|Pearson r|, as ``toolkit.viz.label_match_matrix``), naming
each latent's best match or "nothing", planting a known feature for a recall test, and the two halves of CCS
(per-side normalisation of contrast pairs and the CCS loss, as ``toolkit.unsupervised.CCS``). Cases are seeded
random tensors with planted structure.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise

Tensor = torch.Tensor


# --- references -------------------------------------------------------------------------------------------


def label_corr(latents: Tensor, targets: Tensor) -> Tensor:
    """|Pearson correlation| of every latent (column of ``latents [n, L]``) with every target (column of
    ``targets [n, C]``): ``[L, C]``. A constant column (e.g. a latent that never fires) correlates 0."""
    a = latents.double() - latents.double().mean(0)
    t = targets.double() - targets.double().mean(0)
    denom = a.norm(dim=0)[:, None] * t.norm(dim=0)[None, :]
    r = (a.T @ t) / denom.clamp_min(1e-12)
    return torch.where(denom > 0, r.abs(), torch.zeros_like(r)).float()


def best_matches(corr: Tensor, names: list[str], threshold: float) -> list[str | None]:
    """For each latent (row of ``corr [L, C]``), the name of its best-matching target if that |r| is at least
    ``threshold``, else None (the latent "matches nothing")."""
    best, idx = corr.max(dim=1)
    return [names[int(i)] if float(b) >= threshold else None for b, i in zip(best, idx)]


def plant_feature(acts: Tensor, direction: Tensor, on: Tensor, strength: float) -> Tensor:
    """Add ``strength`` times the *unit* vector along ``direction [d]`` to the rows of ``acts [n, d]`` where
    ``on [n]`` is True; other rows are unchanged. Returns a new tensor."""
    unit = direction / direction.norm()
    return acts + strength * on[:, None].to(acts.dtype) * unit


def normalise_pairs(x_pos: Tensor, x_neg: Tensor) -> tuple[Tensor, Tensor]:
    """CCS's per-side normalisation: centre each side by its own mean and divide by its own standard deviation
    (per dimension, ``torch.std`` defaults). Removes whatever separates the sides on average (e.g. the answer
    token itself). Returns ``(x_pos_normalised, x_neg_normalised)``, both ``[n, d]``."""
    return ((x_pos - x_pos.mean(0)) / x_pos.std(0).clamp_min(1e-6),
            (x_neg - x_neg.mean(0)) / x_neg.std(0).clamp_min(1e-6))


def ccs_loss(p_pos: Tensor, p_neg: Tensor) -> Tensor:
    """The CCS loss of probabilities ``p_pos, p_neg [n]``: consistency ``mean((p+ - (1 - p-))^2)`` plus
    confidence ``mean(min(p+, p-)^2)``. A scalar tensor."""
    consistency = (p_pos - (1 - p_neg)).pow(2).mean()
    confidence = torch.minimum(p_pos, p_neg).pow(2).mean()
    return consistency + confidence


# --- plausible mistakes -----------------------------------------------------------------------------------


def _corr_signed(latents, targets):
    a = latents.double() - latents.double().mean(0)
    t = targets.double() - targets.double().mean(0)
    denom = a.norm(dim=0)[:, None] * t.norm(dim=0)[None, :]
    r = (a.T @ t) / denom.clamp_min(1e-12)
    return torch.where(denom > 0, r, torch.zeros_like(r)).float()


def _corr_cosine(latents, targets):
    a, t = latents.double(), targets.double()
    denom = a.norm(dim=0)[:, None] * t.norm(dim=0)[None, :]
    r = (a.T @ t) / denom.clamp_min(1e-12)
    return torch.where(denom > 0, r.abs(), torch.zeros_like(r)).float()


def _corr_transposed(latents, targets):
    return label_corr(latents, targets).T


def _corr_nan(latents, targets):
    a = latents.double() - latents.double().mean(0)
    t = targets.double() - targets.double().mean(0)
    return ((a.T @ t) / (a.norm(dim=0)[:, None] * t.norm(dim=0)[None, :])).abs().float()


def _match_no_threshold(corr, names, threshold):
    return [names[int(i)] for i in corr.argmax(dim=1)]


def _match_per_target(corr, names, threshold):
    best, idx = corr.max(dim=0)
    return [f"latent {int(i)}" if float(b) >= threshold else None for b, i in zip(best, idx)]


def _match_strict(corr, names, threshold):
    best, idx = corr.max(dim=1)
    return [names[int(i)] if float(b) > threshold else None for b, i in zip(best, idx)]


def _match_index(corr, names, threshold):
    best, idx = corr.max(dim=1)
    return [int(i) if float(b) >= threshold else None for b, i in zip(best, idx)]


def _plant_unnormalised(acts, direction, on, strength):
    return acts + strength * on[:, None].to(acts.dtype) * direction


def _plant_everywhere(acts, direction, on, strength):
    return acts + strength * direction / direction.norm()


def _plant_replace(acts, direction, on, strength):
    unit = direction / direction.norm()
    return torch.where(on[:, None], strength * unit.expand_as(acts), acts)


def _pairs_joint(x_pos, x_neg):
    both = torch.cat([x_pos, x_neg])
    mean, std = both.mean(0), both.std(0).clamp_min(1e-6)
    return (x_pos - mean) / std, (x_neg - mean) / std


def _pairs_centre_only(x_pos, x_neg):
    return x_pos - x_pos.mean(0), x_neg - x_neg.mean(0)


def _pairs_rows(x_pos, x_neg):
    return ((x_pos - x_pos.mean(1, keepdim=True)) / x_pos.std(1, keepdim=True),
            (x_neg - x_neg.mean(1, keepdim=True)) / x_neg.std(1, keepdim=True))


def _ccs_difference(p_pos, p_neg):
    return (p_pos - p_neg).pow(2).mean() + torch.minimum(p_pos, p_neg).pow(2).mean()


def _ccs_max(p_pos, p_neg):
    return (p_pos - (1 - p_neg)).pow(2).mean() + torch.maximum(p_pos, p_neg).pow(2).mean()


def _ccs_consistency_only(p_pos, p_neg):
    return (p_pos - (1 - p_neg)).pow(2).mean()


def _ccs_unsquared(p_pos, p_neg):
    return (p_pos - (1 - p_neg)).abs().mean() + torch.minimum(p_pos, p_neg).mean()


# --- cases ------------------------------------------------------------------------------------------------


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _corr_cases():
    g = _g(700)
    n = 60
    targets = (torch.rand(n, 4, generator=g) < 0.3).float()
    latents = torch.relu(torch.randn(n, 6, generator=g))
    latents[:, 0] = 2 * targets[:, 1] + 0.1 * torch.rand(n, generator=g)  # latent 0 tracks target 1
    latents[:, 1] = 1 - targets[:, 2] + 0.1 * torch.rand(n, generator=g)  # latent 1 anti-tracks target 2
    latents[:, 5] = 0.0  # a dead latent
    latents2 = torch.relu(torch.randn(40, 3, generator=g)) + 5.0  # far from zero: centring matters
    targets2 = torch.randn(40, 2, generator=g)
    targets2[:, 0] += latents2[:, 2]
    return [("6 latents (one dead, one anti-correlated) x 4 binary targets", (latents, targets)),
            ("3 latents with a large offset x 2 real-valued targets", (latents2, targets2))]


def _match_cases():
    names = ["goal=3", "parent=1", "depth[2]", "token=S5"]
    corr = torch.tensor([[0.91, 0.10, 0.05, 0.20],
                         [0.12, 0.30, 0.64, 0.05],
                         [0.05, 0.08, 0.10, 0.11],
                         [0.40, 0.40, 0.41, 0.02],
                         [0.50, 0.02, 0.03, 0.30]])
    return [("5 latents, 4 targets, threshold 0.5 (one latent exactly at it)", (corr, names, 0.5)),
            ("the same, threshold 0.3", (corr, names, 0.3)),
            ("a 3 x 2 matrix, threshold 0.6", (torch.tensor([[0.7, 0.1], [0.2, 0.65], [0.59, 0.1]]),
                                               ["a", "b"], 0.6))]


def _plant_cases():
    g = _g(710)
    acts = torch.randn(12, 5, generator=g)
    on = torch.rand(12, generator=g) < 0.4
    on[0], on[1] = True, False
    return [("12 rows, a direction of length 3, strength 2", (acts, 3 * torch.randn(5, generator=g), on, 2.0)),
            ("8 rows, strength 0.5", (torch.randn(8, 4, generator=g), torch.randn(4, generator=g),
                                      torch.arange(8) % 3 == 0, 0.5))]


def _pair_cases():
    g = _g(720)
    base = torch.randn(30, 6, generator=g) * torch.linspace(0.5, 3, 6)
    x_pos = base + torch.tensor([4.0, 0, 0, 0, 1, 0]) + 0.3 * torch.randn(30, 6, generator=g)
    x_neg = base - torch.tensor([4.0, 0, 0, 0, 1, 0]) + 0.3 * torch.randn(30, 6, generator=g) * 2
    return [("30 pairs, 6 dimensions, the sides differ by an offset and a scale", (x_pos, x_neg)),
            ("10 random pairs", (torch.randn(10, 4, generator=g), 3 + torch.randn(10, 4, generator=g)))]


def _ccs_cases():
    g = _g(730)
    p = torch.rand(20, generator=g)
    q = torch.rand(20, generator=g)
    return [("20 random probability pairs", (p, q)),
            ("consistent but unconfident (p+ = p- = 0.5)", (torch.full((5,), 0.5), torch.full((5,), 0.5))),
            ("confident and consistent", (torch.tensor([0.95, 0.02, 0.9]), torch.tensor([0.04, 0.97, 0.1])))]


# --- comparisons ------------------------------------------------------------------------------------------


def _cmp_tensor(name: str):
    def compare(got: Any, expected: Tensor, args: tuple) -> str | None:
        return diff_tensor(got, expected, name=name, atol=1e-4)

    return compare


def _cmp_pairs(got: Any, expected: tuple[Tensor, Tensor], args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(x_pos_normalised, x_neg_normalised)`"
    return (diff_tensor(got[0], expected[0], name="x_pos_normalised", atol=1e-4)
            or diff_tensor(got[1], expected[1], name="x_neg_normalised", atol=1e-4))


def _cmp_matches(got: Any, expected: list, args: tuple) -> str | None:
    return diff_value(got, expected, name="matches")


def _cmp_loss(got: Any, expected: Tensor, args: tuple) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.reshape(())
    return diff_tensor(got, expected, name="loss")


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "07.label_corr", title="Match latents to labels", difficulty=2, importance=5, minutes=10,
    reference=label_corr, cases=_corr_cases, compare=_cmp_tensor("correlations"),
    hints=["Pearson r is the cosine similarity of *centred* columns: subtract each column's mean first.",
           "With centred `a [n, L]` and `t [n, C]`: `r = (a.T @ t) / (a.norm(dim=0)[:, None] * t.norm(dim=0))`.",
           "Take `abs()` (a latent that is *off* whenever a label is on matches it too), and put 0 where the "
           "denominator is 0 (`torch.where(denom > 0, r.abs(), torch.zeros_like(r))`)."],
    mistakes=[Mistake("take the absolute value: a latent that fires exactly when the label is *off* is just as "
                      "informative", _corr_signed),
              Mistake("centre the columns first (subtract each column's mean): without centring you computed a "
                      "cosine, which a constant offset inflates", _corr_cosine),
              Mistake("the result should be [L, C]: one row per latent, one column per target", _corr_transposed),
              Mistake("a constant column (a dead latent) has zero variance: return 0 there instead of dividing "
                      "by zero", _corr_nan)],
)

function_exercise(
    "07.best_matches", title="Name what each latent found", difficulty=1, importance=3, minutes=5,
    reference=best_matches, cases=_match_cases, compare=_cmp_matches,
    hints=["For each latent, find its best-matching target; the latent matches it only if that |r| reaches the "
           "threshold, otherwise it matches nothing (None).",
           "Take the maximum over the targets (one row per latent), keep the index of the best target, and compare "
           "with the threshold using `>=`.",
           "`best, idx = corr.max(dim=1)`, then `[names[int(i)] if float(b) >= threshold else None for b, i in "
           "zip(best, idx)]`."],
    mistakes=[Mistake("apply the threshold: a latent whose best |r| is below it matches nothing (None)",
                      _match_no_threshold),
              Mistake("one entry per *latent* (row of corr): take the max over the targets, dim=1",
                      _match_per_target),
              Mistake("a latent exactly at the threshold counts as a match (use `>=`)", _match_strict),
              Mistake("return the target's *name* (`names[i]`), not its index", _match_index)],
)
