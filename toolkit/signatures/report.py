"""What :func:`toolkit.signatures.run` returns: one :class:`Evidence` per criterion, in a :class:`SignatureReport`.

Every criterion compares a score on the model against the same score on a trivial baseline and on the
random-init twin (and, for selection, on random steering directions). ``margin`` is the score minus the best
of those comparisons; the verdict is ``margin >= threshold`` (and, for selection, a True evaluation verdict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit._result import frame, plain

CRITERIA = ("candidates", "evaluation", "selection")

# Fixed from the margins on development data seeds 100 and 101 (test split, 400 examples, run() defaults), then
# checked on fresh seeds 0-4. Development margins: candidates: tree-8 +0.48/+0.49, maze-4x4 +0.21/+0.23, their
# twins -0.01..+0.00, tree-lookup-8 +0.04; evaluation: trained +0.20..+0.21, twins -0.12..-0.02, lookup 0.00;
# selection: trained +0.34..+0.59, twins -0.09..+0.03 (lookup +0.90 raw, blocked by its False evaluation).
# Fresh seeds 0-4 (400 examples each): tree-8 and maze-4x4 3/3 on every seed (smallest margins +0.45/+0.19/+0.49
# and +0.20/+0.16/+0.37), their twins and tree-lookup-8 0/3 on every seed (largest margins: twins +0.03/-0.01/+0.05,
# lookup +0.04/0.00, its selection +0.97 raw, blocked by its evaluation).
THRESHOLDS = {"candidates": 0.10, "evaluation": 0.10, "selection": 0.15}


@dataclass
class Evidence:
    """One criterion's evidence.

    Attributes:
        criterion: ``"candidates"``, ``"evaluation"`` or ``"selection"``.
        verdict: the criterion holds (its controls are beaten by at least ``threshold``).
        metric: what ``score`` measures.
        score: the model's score (best hook).
        baseline: the same measurement on the trivial baseline features (None where it does not apply).
        twin: the same measurement on the random-init twin (best hook).
        control: the control's value (selection: the best random-direction switch rate).
        control_name: what the control is.
        margin: ``score - max(baseline, twin, control)`` over those that apply.
        threshold: the margin needed for a True verdict.
        hook: where the model's score was measured.
        failure: what failure looks like (the docstring's sentence).
        details: further numbers (per hook, per seed, counts).
    """

    criterion: str
    verdict: bool
    metric: str
    score: float
    baseline: float | None
    twin: float | None
    control: float | None
    control_name: str
    margin: float
    threshold: float
    hook: str
    failure: str
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "verdict": self.verdict, "metric": self.metric, "score": self.score,
                "baseline": self.baseline, "twin": self.twin, "control": self.control, "margin": self.margin,
                "threshold": self.threshold, "hook": self.hook, "control_name": self.control_name}


def margin_over(score: float, *others: float | None) -> float:
    """``score`` minus the largest of ``others`` that is not None."""
    vals = [o for o in others if o is not None]
    return score - max(vals) if vals else score


@dataclass
class SignatureReport:
    """The battery's answer for one model on one dataset.

    Attributes:
        verdicts: criterion -> bool.
        evidence: criterion -> :class:`Evidence`.
        model, twin: names of the model and of the random-init twin that was compared (and how it was made).
        n_examples, n_rows: examples and decision points used; ``seed`` seeded the split and random directions.
    """

    verdicts: dict[str, bool]
    evidence: dict[str, Evidence]
    model: str
    twin: str
    n_examples: int
    n_rows: int
    seed: int

    @property
    def n_yes(self) -> int:
        return sum(bool(v) for v in self.verdicts.values())

    @property
    def searches(self) -> bool:
        """At least 2 of the 3 criteria hold."""
        return self.n_yes >= 2

    def table(self) -> Any:
        return frame([e.row() for e in self.evidence.values()])

    def to_dict(self) -> dict[str, Any]:
        return plain({"model": self.model, "twin": self.twin, "n_examples": self.n_examples, "n_rows": self.n_rows,
                      "seed": self.seed, "verdicts": self.verdicts, "n_yes": self.n_yes,
                      "evidence": {k: {**e.row(), "failure": e.failure, "details": e.details}
                                   for k, e in self.evidence.items()}})

    def plot(self, ax: Any = None) -> Any:
        """Bars per criterion: model vs baseline, twin and control (the margin needed is drawn above the best)."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 3))
        else:
            fig = ax.figure
        names = ["score", "baseline", "twin", "control"]
        width = 0.2
        for j, name in enumerate(names):
            vals = [getattr(e, name) for e in self.evidence.values()]
            xs = [i + (j - 1.5) * width for i in range(len(vals))]
            ax.bar(xs, [float("nan") if v is None else v for v in vals], width, label=name)
        for i, e in enumerate(self.evidence.values()):
            best = e.score - e.margin
            ax.plot([i - 2 * width, i + 2 * width], [best + e.threshold] * 2, "k--", lw=1)
        ax.set_xticks(range(len(self.evidence)))
        ax.set_xticklabels([f"{k}\n{'YES' if e.verdict else 'no'}" for k, e in self.evidence.items()])
        ax.set_title(f"{self.model}: {self.n_yes}/3 signatures (twin: {self.twin})", fontsize=9)
        ax.legend(fontsize=7, ncol=4)
        return fig

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={'YES' if v else 'no'} ({self.evidence[k].margin:+.3f})"
                          for k, v in self.verdicts.items())
        return f"SignatureReport({self.model}: {self.n_yes}/3; {parts}; twin={self.twin})"
