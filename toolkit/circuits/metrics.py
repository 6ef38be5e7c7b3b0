"""How good is a circuit? Faithfulness and completeness, each next to random circuits of the same size.

    f = circuits.faithfulness(model, ["L0H1", "L2H0", "MLP2"], data, metric="token_acc")
    f.value, f.random_mean, f.random_std, f.percentile
    c = circuits.completeness(model, ["L0H1", "L2H0", "MLP2"], data, metric="token_acc")

Let ``M`` be every component (all heads, and all MLPs unless ``mlps=False``; embeddings and unembedding are never
ablated), ``F(S)`` the metric when only the components in ``S`` run and every other component is ablated
(mean-ablated by default, means over ``reference``, see :func:`toolkit.circuits.ablate_components`):

* **faithfulness** (Wang et al. 2022, IOI, sec. 4; Conmy et al. 2023, ACDC)::

      faithfulness(C) = (F(C) - F({})) / (F(M) - F({}))

  ``F(M)`` is the full model, ``F({})`` the model with every component ablated. 1 = the circuit alone does
  what the model does, 0 = no better than everything ablated. By definition the full model scores 1 and the
  empty circuit 0.
* **completeness**: the metric with the circuit removed (ablated) and everything else running,
  ``F(M \\ C)`` (``.value``), and the same normalised as above (``.normalized``). Removing nothing gives the full
  metric; a complete circuit's removal should bring it down to about ``F({})``.

A circuit component that carries ``positions`` is in the circuit at those positions only: for faithfulness it is
ablated at every other position, for completeness at those positions.

Each score is also computed for ``n_random`` random circuits with the same number of heads and the same number
of MLPs (drawn with ``torch.Generator().manual_seed(seed)``); ``.percentile`` is the share (in %) of random
circuits whose score is <= the circuit's (for faithfulness high is good; for completeness low is good).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from toolkit._result import frame, plain
from toolkit.activations.positions import tokens_of
from toolkit.circuits.ablation import ablate_components, reference_activations
from toolkit.circuits.components import Component, all_components, components, metric_name
from toolkit.interventions.core import batch_mask, resolve_positions, run


@dataclass
class CircuitScore:
    """A circuit's faithfulness or completeness next to random circuits of the same size.

    Attributes:
        kind: ``"faithfulness"`` or ``"completeness"``.
        value: faithfulness (normalised) or completeness (the raw metric with the circuit removed).
        normalized: ``(raw - ablated) / (full - ablated)``; raw: the metric of the run that defines the score.
        full, ablated: ``F(M)`` and ``F({})``.
        random: ``[n_random]`` the same score (``value``) for each random circuit.
    """

    kind: str
    value: float
    normalized: float
    raw: float
    full: float
    ablated: float
    random: torch.Tensor
    n_heads: int
    n_mlps: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def random_mean(self) -> float:
        return float(self.random.mean()) if len(self.random) else math.nan

    @property
    def random_std(self) -> float:
        return float(self.random.std()) if len(self.random) > 1 else math.nan

    @property
    def percentile(self) -> float:
        """Share (%) of random circuits that score <= this circuit."""
        return float((self.random <= self.value).float().mean() * 100) if len(self.random) else math.nan

    def table(self) -> Any:
        """One row: the score, the random mean / std / min / max and the percentile (a DataFrame)."""
        r = self.random
        return frame([{"score": self.kind, "value": self.value, "normalized": self.normalized, "full": self.full,
                       "ablated": self.ablated, "random_mean": self.random_mean, "random_std": self.random_std,
                       "random_min": float(r.min()) if len(r) else math.nan,
                       "random_max": float(r.max()) if len(r) else math.nan, "percentile": self.percentile,
                       "n_random": len(r), "n_heads": self.n_heads, "n_mlps": self.n_mlps}])

    def to_dict(self) -> dict[str, Any]:
        return plain({"kind": self.kind, "value": self.value, "normalized": self.normalized, "raw": self.raw,
                      "full": self.full, "ablated": self.ablated, "random": self.random,
                      "random_mean": self.random_mean, "random_std": self.random_std,
                      "percentile": self.percentile, "n_heads": self.n_heads, "n_mlps": self.n_mlps,
                      "meta": self.meta})

    def __repr__(self) -> str:
        return (f"CircuitScore({self.kind} {self.value:.3f}; random {self.random_mean:.3f} +- {self.random_std:.3f}, "
                f"percentile {self.percentile:.0f}; {self.n_heads} heads, {self.n_mlps} MLPs)")


def random_circuits(model: Any, n_heads: int, n_mlps: int, n: int, seed: int = 0) -> list[list[Component]]:
    """``n`` random sets of ``n_heads`` heads and ``n_mlps`` MLPs (whole components), seeded."""
    heads = all_components(model, mlps=False)
    mlps = [Component(layer) for layer in range(model.cfg.n_layers)]
    if n_heads > len(heads) or n_mlps > len(mlps):
        raise ValueError(f"cannot draw {n_heads} heads / {n_mlps} MLPs from {len(heads)} / {len(mlps)}")
    g = torch.Generator().manual_seed(seed)
    return [[heads[i] for i in sorted(torch.randperm(len(heads), generator=g)[:n_heads].tolist())]
            + [mlps[i] for i in sorted(torch.randperm(len(mlps), generator=g)[:n_mlps].tolist())] for _ in range(n)]


class _Evaluator:
    """``F(S)`` for ablated sets ``S`` with one set of reference activations."""

    def __init__(self, model: Any, data: Any, metric: str | Callable, reference: Any, method: str, positions: Any,
                 mlps: bool, seed: int, batch_size: int):
        self.model, self.data, self.metric, self.method = model, data, metric, method
        self.positions, self.mlps, self.seed, self.batch_size = positions, mlps, seed, batch_size
        ref = reference if reference is not None else data
        self.sources = None if method == "zero" else reference_activations(model, ref, batch_size=batch_size)
        self.everything = all_components(model, mlps)

    def metric_with(self, ablated: list[Component]) -> float:
        with ablate_components(self.model, ablated, self.method, self.positions, self.data, seed=self.seed,
                               sources=self.sources):
            return run(self.model, self.data, self.metric, batch_size=self.batch_size)

    def complement(self, circuit: list[Component]) -> list[Component]:
        """Everything outside ``circuit``; a circuit component with positions is ablated at the other positions."""
        tokens = tokens_of(self.data)
        keys = {c.key for c in circuit}
        out = [c for c in self.everything if c.key not in keys]
        for c in circuit:
            if c.positions is not None:
                mask = batch_mask(resolve_positions(c.positions, self.data), *tokens.shape, torch.device("cpu"))
                out.append(Component(c.layer, c.head, ~mask))
        return out


def _score(kind: str, model: Any, circuit: Any, data: Any, metric: str | Callable, reference: Any, method: str,
           positions: Any, n_random: int, seed: int, mlps: bool, batch_size: int, progress: bool) -> CircuitScore:
    comps = components(circuit, model)
    if not mlps and any(c.head is None for c in comps):
        raise ValueError("the circuit has MLPs but mlps=False (MLPs always run); pass mlps=True")
    ev = _Evaluator(model, data, metric, reference, method, positions, mlps, seed, batch_size)
    full = ev.metric_with([])
    ablated = ev.metric_with(ev.everything)
    gap = full - ablated
    if abs(gap) < 1e-12:
        warnings.warn("the metric is the same with every component ablated as in the full model; normalised "
                      "scores are NaN", stacklevel=3)

    def norm(x: float) -> float:
        return (x - ablated) / gap if abs(gap) >= 1e-12 else math.nan

    def one(c: list[Component]) -> tuple[float, float]:  # (raw, value)
        raw = ev.metric_with(ev.complement(c) if kind == "faithfulness" else c)
        return raw, norm(raw) if kind == "faithfulness" else raw

    raw, value = one(comps)
    n_heads = len({c.key for c in comps if c.head is not None})
    n_mlps = len({c.key for c in comps if c.head is None})
    rand = random_circuits(model, n_heads, n_mlps, n_random, seed)
    scores = [one(r)[1] for r in tqdm(rand, desc=f"random circuits ({kind})", disable=not progress)]
    label = metric_name(metric)
    return CircuitScore(kind, value, norm(raw), raw, full, ablated, torch.tensor(scores, dtype=torch.float64),
                        n_heads, n_mlps, {"metric": label, "method": method, "seed": seed, "mlps": mlps,
                                          "random_circuits": [[c.name for c in r] for r in rand]})


def faithfulness(model: Any, circuit: Any, data: Any, metric: str | Callable = "exact_path", reference: Any = None,
                 method: str = "mean", positions: Any = None, n_random: int = 20, seed: int = 0, mlps: bool = True,
                 batch_size: int = 256, progress: bool = True) -> CircuitScore:
    """``(F(C) - F({})) / (F(M) - F({}))`` next to ``n_random`` random circuits (see the module docstring).

    Args:
        circuit: components or a :class:`toolkit.circuits.Circuit`.
        data: a SearchDataset or tokens ``[n, seq]``; metric: a name of :data:`toolkit.interventions.METRICS`
            (needs a SearchDataset) or a callable ``(logits [n, seq, V], data) -> float``.
        reference: where the ablation means come from (default ``data``); method: ``"mean"``, ``"resample"``,
            ``"zero"``; positions: where components outside the circuit are ablated (None = all).
        mlps: MLPs are components (ablated unless in the circuit); False keeps every MLP running.
    """
    return _score("faithfulness", model, circuit, data, metric, reference, method, positions, n_random, seed, mlps,
                  batch_size, progress)


def completeness(model: Any, circuit: Any, data: Any, metric: str | Callable = "exact_path", reference: Any = None,
                 method: str = "mean", positions: Any = None, n_random: int = 20, seed: int = 0, mlps: bool = True,
                 batch_size: int = 256, progress: bool = True) -> CircuitScore:
    """``F(M \\ C)``: the metric with the circuit ablated, next to ``n_random`` random removals of the same size
    (arguments as :func:`faithfulness`)."""
    return _score("completeness", model, circuit, data, metric, reference, method, positions, n_random, seed, mlps,
                  batch_size, progress)
