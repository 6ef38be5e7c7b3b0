"""``signatures.run``: the three search signatures for one model on one dataset, with their controls."""

from __future__ import annotations

from typing import Any

from toolkit._threads import torch_threads
from toolkit.models.build import check_bridge, meta
from toolkit.signatures.candidates import candidates_test
from toolkit.signatures.evaluation import evaluation_test
from toolkit.signatures.report import CRITERIA, THRESHOLDS, SignatureReport
from toolkit.signatures.rows import decision_rows, default_hooks
from toolkit.signatures.selection import selection_test


def make_twin(model: Any) -> tuple[Any, str]:
    """The random-init twin of ``model`` and how it was made: the shipped checkpoint's initial weights
    (``models.pretrained(name, random_init=True)``), else a fresh ``models.build`` of the same task and
    architecture (same init seed). A model that is itself untrained gets a twin of the next init seed (comparing
    a model with itself would be a control that cannot lose)."""
    from toolkit import models

    info = meta(model)
    name = info.get("name")
    arch = dict(info["arch"])
    seed = int(arch.get("seed", 0))
    untrained = bool(info.get("random_init"))
    if untrained:
        seed += 1
    if name and name in models.available():
        twin = models.pretrained(name, random_init=True, seed=seed if untrained else None)
        how = f"models.pretrained({name!r}, random_init=True" + (f", seed={seed})" if untrained else ")")
        return twin, how
    keep = {k: arch[k] for k in ("d_model", "n_layers", "n_heads", "d_mlp", "d_head", "act_fn",
                                 "normalization_type", "n_ctx") if k in arch}
    return models.build(models.task_of(model), seed=seed, **keep), \
        f"models.build(task, seed={seed}) of the same architecture"


def run(model: Any, data: Any, *, twin: Any = None, layers: list[str] | None = None, seed: int = 0,
        thresholds: dict[str, float] | None = None, scale: float = 3.0, n_random: int = 3, max_pairs: int = 300,
        test_frac: float = 0.3, progress: bool = True) -> SignatureReport:
    """Test a model for the three signatures of search: candidates, evaluation, selection.

    Args:
        model: a TransformerBridge trained on ``data``'s task.
        data: a SearchDataset whose task implements ``candidates(data)`` (TreeSearch, MazeSearch, TreeLookup).
            Use data seeds the thresholds were not fixed on (development used seeds 100 and 101).
        twin: the random-init control model; None builds it (:func:`make_twin`); ``False`` skips it (then the
            verdicts rest on the baseline and random directions only).
        layers: hook names to read and steer (default: ``blocks.L.hook_resid_pre`` for every layer L).
        seed: seeds the train/test split of examples and the random directions.
        thresholds: margins per criterion (default :data:`toolkit.signatures.report.THRESHOLDS`).
        scale: steering norm as a multiple of the mean residual norm at the decision points.
        n_random, max_pairs: random directions per steered pair; steered pairs at most.
        test_frac: fraction of examples held out for scoring probes.

    Returns:
        a :class:`SignatureReport`; ``report.verdicts`` maps each criterion to True / False.
    """
    check_bridge(model, "signatures.run")
    if not hasattr(data, "task") or not hasattr(data, "labels"):
        raise TypeError("signatures.run needs a SearchDataset (task.generate(n, seed=...)), not bare tokens")
    if not hasattr(data.task, "candidates"):
        raise TypeError(f"the data's task {type(data.task).__name__} has no candidates(data) method")
    cands = data.task.candidates(data)
    th = {**THRESHOLDS, **(thresholds or {})}
    if set(th) != set(CRITERIA):
        raise ValueError(f"thresholds must name only {CRITERIA}, got {sorted(th)}")
    twin_name = "none (twin=False)"
    if twin is None:
        twin, twin_name = make_twin(model)
    elif twin is False:
        twin = None
    else:
        check_bridge(twin, "signatures.run (twin)")
        twin_name = str((getattr(twin, "searchlight", None) or {}).get("name") or "the twin passed in")
    hooks = list(layers) if layers is not None else default_hooks(model)
    with torch_threads(1):
        rows = decision_rows(model, data, cands, hooks, twin, test_frac=test_frac, seed=seed, progress=progress)
        ev_c = candidates_test(rows, th["candidates"])
        ev_e, probes = evaluation_test(rows, th["evaluation"])
        ev_s = selection_test(model, data, rows, probes, th["selection"], ev_e.verdict, twin=twin,
                              scale=scale, n_random=n_random, max_pairs=max_pairs, seed=seed, progress=progress)
    evidence = {"candidates": ev_c, "evaluation": ev_e, "selection": ev_s}
    name = str((getattr(model, "searchlight", None) or {}).get("name") or "model")
    return SignatureReport({k: e.verdict for k, e in evidence.items()}, evidence, name, twin_name, len(data),
                           len(rows), seed)
