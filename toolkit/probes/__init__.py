"""Probes: decode search state from activations, with baselines, controls and error bars.

    from toolkit import activations, probes
    acts = activations.cache(model, data, hooks=["blocks.0.hook_resid_pre", "resid_post"], positions="all")
    res = probes.sweep(acts, labels=["parent", "goal"], random_acts=random_model)
    res.table()                               # score, chance, baseline, control, selectivity, random_init, found
    probe = probes.LogisticProbe().fit(X, y)  # one probe, scikit-learn style
    eraser = probes.LeaceEraser().fit(X, y)   # concept erasure (LEACE)
"""

from toolkit.probes.cells import depth
from toolkit.probes.erasure import LeaceEraser, direction, project_out
from toolkit.probes.estimators import LogisticProbe, MLPProbe, RidgeProbe
from toolkit.probes.result import SweepResult
from toolkit.probes.sweep import split, sweep

__all__ = ["LeaceEraser", "LogisticProbe", "MLPProbe", "RidgeProbe", "SweepResult", "depth", "direction",
           "project_out", "split", "sweep"]
