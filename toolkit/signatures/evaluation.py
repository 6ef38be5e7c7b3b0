"""Signature 2, evaluation: is a per-candidate score (e.g. the distance to the goal after the move) linearly decodable
per candidate?

Per candidate token v, a :class:`toolkit.probes.RidgeProbe` maps the decision-point residual to v's score relative
to the best candidate of that decision point (``score - min score``: the distance a move loses), fitted on the train
rows where v is a candidate. (Absolute distances failed: on maze-4x4, data seed 100, the probes' errors in the
current distance swamped the +-1 between candidates; pair accuracy 0.77.) On the held-out examples, each decision
point with two or more candidates of different scores contributes its candidate pairs; the metric is the fraction of
pairs the probes order correctly (0.5 = chance). The same per-candidate probes are fitted on the trivial baseline
features and on the random-init twin's residual.

In the shipped tasks the paths are unique, so the scores of a decision point's candidates differ only between the
chosen move and the others: the metric then asks whether the residual ranks the right move first *per candidate*,
through a probe for each candidate's score. A model that memorised the answer also knows which move is right; the
baseline holds a full lookup table of (goal token, position), so such a model does not beat it. What this test
cannot separate is a model that scores candidates from one that computes the answer some other way and carries it
per candidate: that is what the selection test is for.

Failure looks like: the pairs are ordered no better by the model's probes than by the baseline's or the twin's.
"""

from __future__ import annotations

import torch

from toolkit.probes import RidgeProbe
from toolkit.signatures.report import Evidence, margin_over
from toolkit.signatures.rows import DecisionRows

FAILURE = ("per-candidate score probes on the model's residual order the candidates of a decision point no "
           "better than the same probes on the trivial baseline (a (goal, position) lookup table) or on the twin")


def fit_scores(X: torch.Tensor, rows: DecisionRows, alpha: float = 1.0, min_rows: int = 8
               ) -> dict[int, RidgeProbe]:
    """Token id -> a ridge probe ``X -> score of that candidate``, fitted on the train rows where it is one."""
    train = ~rows.test
    probes: dict[int, RidgeProbe] = {}
    for v in torch.unique(rows.ids[rows.ids >= 0]).tolist():
        at = (rows.ids == v) & train[:, None]  # [R, K]
        r = at.any(1)
        if int(r.sum()) < min_rows:
            continue
        rel = rows.score - torch.nan_to_num(rows.score, nan=float("inf")).min(1, keepdim=True).values
        y = torch.where(at, rel, torch.zeros(())).sum(1)[r]
        if float(y.std()) == 0.0:
            continue
        probes[v] = RidgeProbe(alpha=alpha).fit(X[r], y)
    return probes


def predict_scores(X: torch.Tensor, rows: DecisionRows, probes: dict[int, RidgeProbe]) -> torch.Tensor:
    """Predicted score ``[R, K]`` of every candidate slot (NaN where no candidate or no probe)."""
    pred = torch.full(rows.ids.shape, float("nan"))
    for v, probe in probes.items():
        at = rows.ids == v
        r = at.any(1)
        if bool(r.any()):
            p = torch.as_tensor(probe.predict(X[r])).float()
            pred[r] = torch.where(at[r], p[:, None], pred[r])
    return pred


def pair_accuracy(pred: torch.Tensor, true: torch.Tensor) -> tuple[float, int]:
    """Fraction of within-row candidate pairs with different true scores that ``pred`` orders the same way
    (ties in ``pred`` count half), and the number of pairs. ``pred`` / ``true``: ``[R, K]`` with NaN gaps."""
    K = true.shape[1]
    right, total = 0.0, 0
    for a in range(K):
        for b in range(a + 1, K):
            ok = ~(pred[:, a].isnan() | pred[:, b].isnan() | true[:, a].isnan() | true[:, b].isnan())
            ok &= true[:, a] != true[:, b]
            if not bool(ok.any()):
                continue
            s_true = torch.sign(true[ok, a] - true[ok, b])
            s_pred = torch.sign(pred[ok, a] - pred[ok, b])
            right += float((s_true == s_pred).sum()) + 0.5 * float((s_pred == 0).sum())
            total += int(ok.sum())
    return (right / total if total else float("nan")), total


def ranking(X: torch.Tensor, rows: DecisionRows, alpha: float = 1.0) -> tuple[float, int, dict[int, RidgeProbe]]:
    """Held-out pair accuracy of per-candidate score probes on ``X [R, d]`` (and the probes)."""
    probes = fit_scores(X, rows, alpha)
    test = rows.test
    acc, n = pair_accuracy(predict_scores(X[test], _subset(rows, test), probes), rows.score[test])
    return acc, n, probes


def _subset(rows: DecisionRows, sel: torch.Tensor) -> DecisionRows:
    return DecisionRows({}, None, rows.ids[sel], rows.score[sel], rows.chosen[sel], rows.current[sel],
                        rows.baseline[sel], rows.baseline_name, rows.example[sel], rows.position[sel],
                        rows.test[sel], rows.n_vocab)


def evaluation_test(rows: DecisionRows, threshold: float, alpha: float = 1.0
                    ) -> tuple[Evidence, dict[str, dict[int, RidgeProbe]]]:
    """Run signature 2 on every hook. Returns the evidence and the model's probes per hook (for selection)."""
    per_hook, probes, n_pairs = {}, {}, 0
    for h in rows.hooks:
        per_hook[h], n_pairs, probes[h] = ranking(rows.acts[h], rows, alpha)
    if n_pairs == 0:
        raise ValueError("no held-out decision point has two candidates with different scores; use more examples")
    twin_per_hook = ({h: ranking(rows.twin_acts[h], rows, alpha)[0] for h in rows.hooks}
                     if rows.twin_acts is not None else {})
    twin = max(twin_per_hook.values()) if twin_per_hook else None
    base = ranking(rows.baseline, rows, alpha)[0]
    hook = max(per_hook, key=lambda h: per_hook[h])
    margin = margin_over(per_hook[hook], base, twin)
    ev = Evidence("evaluation", bool(margin >= threshold), "held-out pair accuracy of per-candidate score probes",
                  per_hook[hook], base, twin, None, "trivial baseline and random-init twin", margin, threshold, hook,
                  FAILURE, {"per_hook": per_hook, "twin_per_hook": twin_per_hook, "n_pairs_test": n_pairs})
    return ev, probes
