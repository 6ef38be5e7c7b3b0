"""Search signatures: does a model explore candidates, evaluate them and select among them?

The research notes define search as "explores and evaluates a set of candidates and selects among them".
:func:`run` tests the three parts separately, each against controls that can win:

* ``candidates``: are the NON-chosen candidate moves decodable at the decision point, beyond a trivial baseline
  (current token + a (goal, position) lookup table) and the random-init twin?
* ``evaluation``: do per-candidate score probes (distance to the goal after the move) rank a decision point's
  candidates correctly, beyond the same baseline and twin?
* ``selection``: does steering one non-chosen candidate's score direction switch the pick to it, beyond
  equal-norm random directions, no steering, and the twin (and given a True evaluation)?

Tasks supply the candidates (``task.candidates(data)``, see :class:`toolkit.tasks.base.Candidates`)::

    from toolkit import models, signatures, tasks
    model = models.pretrained("tree-8")
    data = models.task_of(model).generate(1500, seed=5, split="test")   # a data seed not used to set thresholds
    report = signatures.run(model, data)          # builds the random-init twin itself; or twin=...
    report.verdicts                               # {"candidates": ..., "evaluation": ..., "selection": ...}
    report.table()                                # score, baseline, twin, control, margin, threshold, hook
    report.plot()

What the battery cannot do alone: on ``tree-lookup-8`` steering the score probes' directions switches the pick
(the raw selection margin is as large as a searcher's: the probes there encode "this is the output"), so the
selection verdict needs a True evaluation verdict; read ``report.evidence["selection"].details`` for the raw
rates. In tasks with unique paths the per-candidate scores only separate the chosen move from the others.

The negative control is ``tree-lookup-8`` (:class:`toolkit.tasks.TreeLookup`: tree prompts whose path is a fixed
function of the goal token). Thresholds (:data:`toolkit.signatures.report.THRESHOLDS`) were fixed on data seeds
100 and 101 and checked on seeds 0-4.
"""

from toolkit.signatures.report import CRITERIA, THRESHOLDS, Evidence, SignatureReport
from toolkit.signatures.run import make_twin, run

__all__ = ["CRITERIA", "THRESHOLDS", "Evidence", "SignatureReport", "make_twin", "run"]
