"""Causal interventions on TransformerBridge models, built on TransformerLens hooks.

    from toolkit import interventions
    with interventions.knockout(model, layer=0, query="target", key="source", data=data):
        print(interventions.run(model, data, "exact_path"))
    res = interventions.patching(model, clean, corrupt, hooks="resid_pre", per="position")

Context managers: :func:`ablate` (zero / mean / resample), :func:`knockout` (attention from query to key
positions), :func:`patch` (activation patching), :func:`steer` (add a direction), :func:`erase` (LEACE or
projection), :func:`edit_hook` (any function). Functions: :func:`run` / :func:`logits` / :func:`score` (metrics
``exact_path``, ``token_acc``, ``loss``, ``kl``), :func:`patching` (clean -> corrupted sweeps), :func:`capture`.
"""

from toolkit.interventions.core import METRICS, batch_rows, logits, run, score
from toolkit.interventions.edits import ablate, capture, edit_hook, erase, knockout, patch, steer
from toolkit.interventions.patching import PatchingResult, answer_sites, patching

__all__ = ["METRICS", "PatchingResult", "ablate", "answer_sites", "batch_rows", "capture", "edit_hook", "erase",
           "knockout", "logits", "patch", "patching", "run", "score", "steer"]
