"""Signature 3, selection: does making one candidate's score look better change which move the model picks?

At every hook, for held-out decision points with a non-chosen candidate v,
add ``norm * u_v`` at the decision position, where ``u_v`` is the unit direction that LOWERS v's decoded score
(minus the normalised coefficient of v's ridge probe from :mod:`toolkit.signatures.evaluation`) and ``norm`` is
``scale`` times the mean residual norm there (default 3: on tree-8, data seed 100, a norm of 1x switched
almost nothing at any layer, 3x switched most picks at blocks 1-2). The metric is the fraction of those
decision points at which the model's pick (argmax next token) becomes v. Controls, each on the same decision
points and candidates:

* random directions of the same norm (``n_random`` seeds; the control is the largest of their switch rates),
* no steering at all (how often the model picks v anyway),
* the random-init twin steered along its own probes' directions.

The verdict also needs the evaluation verdict: without a per-candidate score beyond the (goal, position)
lookup baseline there is no score to steer, and a probe direction that only encodes "this is the output" moves
the output in any model that has one (the raw switch rates are reported either way).

Failure looks like: steering along the score direction switches the pick to v no more often than an equal-norm
random direction does.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from toolkit import interventions
from toolkit.activations.batching import current_rows
from toolkit.signatures.evaluation import fit_scores
from toolkit.signatures.report import Evidence, margin_over
from toolkit.signatures.rows import DecisionRows

FAILURE = ("steering a non-chosen candidate's score direction switches the model's pick to that candidate no "
           "more often than an equal-norm random direction (or no steering) does")


def steer_rows(model: Any, hook: str, data: Any, example: torch.Tensor, position: torch.Tensor,
               delta: torch.Tensor) -> torch.Tensor:
    """The model's pick (argmax token ``[m]``) at ``position[i]`` of example ``example[i]`` when ``delta[i]``
    (``[m, d]``) is added to ``hook`` at that position only."""
    tokens = data.tokens[example][:, : int(position.max()) + 1]  # causal: later tokens cannot change the pick
    mask = torch.zeros(tokens.shape, dtype=torch.bool)
    mask[torch.arange(len(example)), position] = True

    def add(x: torch.Tensor) -> torch.Tensor:  # x: the masked rows of this batch, one per example, in order
        rows = current_rows()
        d = delta if rows is None else delta[rows[0]:rows[1]]
        return x + d.to(x)

    with interventions.edit_hook(model, hook, add, positions=mask):
        lg = interventions.logits(model, tokens)
    return lg[torch.arange(len(example)), position].argmax(-1)


def _pairs(rows: DecisionRows, probes: dict[int, Any], max_pairs: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Held-out (row, non-chosen candidate token) pairs whose token has a probe; at most ``max_pairs``."""
    nc = rows.nonchosen() & rows.test[:, None]
    has = torch.zeros_like(nc)
    for v in probes:
        has |= rows.ids == v
    r, k = torch.nonzero(nc & has, as_tuple=True)
    if len(r) > max_pairs:
        keep = torch.randperm(len(r), generator=torch.Generator().manual_seed(seed))[:max_pairs]
        r, k = r[keep.sort().values], k[keep.sort().values]
    return r, rows.ids[r, k]


def _directions(probes: dict[int, Any], tokens: torch.Tensor) -> torch.Tensor:
    """Unit directions ``[m, d]`` that lower each token's decoded score."""
    W = {v: -p.coef_.reshape(-1) / p.coef_.norm().clamp_min(1e-12) for v, p in probes.items()}
    return torch.stack([W[int(v)] for v in tokens])


def switch_rate(model: Any, data: Any, rows: DecisionRows, X: torch.Tensor, hook: str, probes: dict[int, Any],
                scale: float, r: torch.Tensor, target: torch.Tensor, n_random: int, seed: int
                ) -> dict[str, Any]:
    """Switch rates to ``target`` under probe, random and no steering at rows ``r``."""
    norm = scale * float(X.norm(dim=1).mean())
    ex, pos = rows.example[r], rows.position[r]
    probe_pick = steer_rows(model, hook, data, ex, pos, norm * _directions(probes, target))
    none_pick = steer_rows(model, hook, data, ex, pos, torch.zeros(len(r), X.shape[1]))
    rand = []
    for s in range(n_random):
        g = torch.Generator().manual_seed(10_000 * seed + s)
        u = torch.randn(len(r), X.shape[1], generator=g)
        rand.append(float((steer_rows(model, hook, data, ex, pos, norm * u / u.norm(dim=1, keepdim=True))
                           == target).float().mean()))
    return {"probe": float((probe_pick == target).float().mean()), "random": rand,
            "unsteered": float((none_pick == target).float().mean()), "norm": norm, "n": len(r)}


def selection_test(model: Any, data: Any, rows: DecisionRows, probes: dict[str, dict[int, Any]],
                   threshold: float, evaluation_ok: bool, twin: Any = None, scale: float = 3.0, n_random: int = 3,
                   max_pairs: int = 300, seed: int = 0, alpha: float = 1.0, progress: bool = True) -> Evidence:
    """Run signature 3 at every hook with the model's evaluation ``probes[hook]``; the model's margin (probe
    rate minus the best random direction and no steering, at the same hook) is taken at its best hook, and the
    twin's rate (its own probes) at its best hook."""
    per_hook, twin_per_hook, n = {}, {}, 0
    for hook in tqdm(rows.hooks, desc="selection: steering", disable=not progress):
        r, target = _pairs(rows, probes[hook], max_pairs, seed)
        if len(r) == 0:
            continue
        n = max(n, len(r))
        per_hook[hook] = switch_rate(model, data, rows, rows.acts[hook], hook, probes[hook], scale, r, target,
                                     n_random, seed)
        if twin is not None and rows.twin_acts is not None:
            tp = fit_scores(rows.twin_acts[hook], rows, alpha)
            ok = torch.tensor([int(v) in tp for v in target], dtype=torch.bool)
            if bool(ok.any()):
                twin_per_hook[hook] = switch_rate(twin, data, rows, rows.twin_acts[hook], hook, tp, scale, r[ok],
                                                  target[ok], n_random, seed)["probe"]
    if not per_hook:
        raise ValueError("no held-out decision point has a non-chosen candidate with a fitted score probe; use "
                         "more examples")

    def own_margin(h: str) -> float:
        return margin_over(per_hook[h]["probe"], max(per_hook[h]["random"], default=None), per_hook[h]["unsteered"])

    hook = max(per_hook, key=own_margin)
    res = per_hook[hook]
    twin_rate = max(twin_per_hook.values()) if twin_per_hook else None
    control = max(res["random"]) if res["random"] else None
    margin = margin_over(res["probe"], control, res["unsteered"], twin_rate)
    verdict = bool(margin >= threshold and evaluation_ok)
    return Evidence("selection", verdict, "switch rate to the steered non-chosen candidate", res["probe"], None,
                    twin_rate, control, f"equal-norm random directions (best of {n_random}), no steering, twin",
                    margin, threshold, hook, FAILURE,
                    {"per_hook": per_hook, "twin_per_hook": twin_per_hook, "scale": scale, "n_pairs": n,
                     "needs_evaluation": True, "evaluation_ok": evaluation_ok,
                     "margin_alone_passes": bool(margin >= threshold)})
