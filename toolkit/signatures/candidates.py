"""Signature 1, candidates: are several candidate moves represented at once, beyond what is trivially known?

Per token v, a logistic probe (one multilabel :class:`toolkit.probes.LogisticProbe`) decodes "v is a candidate move
here" from the decision-point residual, fitted on the train examples. It is scored on the held-out examples only on
the NON-chosen candidates (the chosen one is simply the output, which any model that solves the task carries): AUC
of non-chosen candidates (positives) against *possible* moves that are not candidates here (negatives: tokens that
are a candidate at some train decision point with the same current token, e.g. the grid neighbours behind a wall in
a maze), leaving out the chosen token. Without that restriction the current token alone tells most non-candidates
apart (measured on maze-4x4, data seed 100: baseline AUC 0.95). The same probe is fitted on the trivial baseline
features (the current token and a lookup table of (goal, position)) and on the random-init twin's residual.

Failure looks like: the model's AUC is no better than the baseline's or the twin's (a model that memorised the
answer, or never looks at the alternatives, leaves the siblings of its move undecodable beyond what the goal and
position already say).
"""

from __future__ import annotations

import torch

from toolkit.probes import LogisticProbe
from toolkit.signatures.report import Evidence, margin_over
from toolkit.signatures.rows import DecisionRows

FAILURE = ("the non-chosen candidates are no more decodable from the model's residual than from the trivial "
           "baseline (current token + goal x position lookup) or from the random-init twin")


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores [m]`` for 0/1 ``labels [m]`` (ties count half); NaN if one class
    is missing."""
    pos, neg = scores[labels > 0], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = torch.cat([pos, neg]).double()
    order = torch.argsort(allv, stable=True)
    ranks = torch.empty_like(allv)
    ranks[order] = torch.arange(1, len(allv) + 1, dtype=torch.double)
    # average ranks over ties
    uniq, inv = torch.unique(allv, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inv, ranks)
    counts = torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inv, torch.ones_like(ranks))
    ranks = (sums / counts)[inv]
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def candidate_auc(X: torch.Tensor, rows: DecisionRows, C: float = 1.0) -> float:
    """Fit "is v a candidate" on the train rows of ``X [R, d]``; AUC on the held-out non-chosen candidates."""
    Y = rows.membership()  # [R, V]
    train, test = ~rows.test, rows.test
    items = torch.nonzero((Y[train].sum(0) > 0) & (Y[train].sum(0) < int(train.sum()))).flatten()
    if len(items) == 0:
        raise ValueError("no token is a candidate at some train rows and not at others; use more examples")
    probe = LogisticProbe(C=C, kind="multilabel").fit(X[train], Y[train][:, items])
    z = probe.decision_function(X[test])  # [R_test, I]
    yt = Y[test][:, items]
    chosen_tok = torch.gather(rows.ids[test], 1, rows.chosen[test].clamp(min=0)[:, None])[:, 0]
    keep = (items[None, :] != chosen_tok[:, None]) & possible_moves(rows)[test][:, items]
    return auc(z[keep], yt[keep])


def possible_moves(rows: DecisionRows) -> torch.Tensor:
    """``[R, V]`` bool: token v is a candidate at some TRAIN decision point with the same current token."""
    Y = rows.membership()
    train = ~rows.test
    seen = torch.zeros(rows.n_vocab, rows.n_vocab)  # [current token, candidate token]
    seen.index_add_(0, rows.current[train], Y[train])
    return seen[rows.current] > 0


def candidates_test(rows: DecisionRows, threshold: float, C: float = 1.0) -> Evidence:
    """Run signature 1 on every hook; the model's best hook is compared with the twin's best hook."""
    if int(rows.nonchosen()[rows.test].sum()) == 0:
        raise ValueError("no held-out decision point has a non-chosen candidate; use more examples (or a task "
                         "with branching choices)")
    per_hook = {h: candidate_auc(rows.acts[h], rows, C) for h in rows.hooks}
    hook = max(per_hook, key=lambda h: per_hook[h])
    twin_per_hook = ({h: candidate_auc(rows.twin_acts[h], rows, C) for h in rows.hooks}
                     if rows.twin_acts is not None else {})
    twin = max(twin_per_hook.values()) if twin_per_hook else None
    base = candidate_auc(rows.baseline, rows, C)
    score = per_hook[hook]
    margin = margin_over(score, base, twin)
    return Evidence("candidates", bool(margin >= threshold), "AUC of non-chosen candidates vs non-candidates",
                    score, base, twin, None, "trivial baseline and random-init twin", margin, threshold, hook,
                    FAILURE, {"per_hook": per_hook, "twin_per_hook": twin_per_hook,
                              "n_nonchosen_test": int(rows.nonchosen()[rows.test].sum())})
