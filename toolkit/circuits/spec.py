"""A circuit as data: which model, which task, which metric, which components, how faithful and complete.

    c = circuits.Circuit(model="tree-8", task=task.spec(), metric="token_acc",
                         components=[{"layer": 0, "head": 1, "role": "goal mover", "positions": "query"},
                                     {"layer": 2, "head": None, "role": "answer MLP", "positions": None}])
    c.to_json("docs/circuits/tree-8.json")          # atomic write
    c = circuits.Circuit.from_json("docs/circuits/tree-8.json")
    circuits.faithfulness(models.pretrained(c.model), c, data, metric=c.metric)

JSON layout (every field required; ``faithfulness`` / ``completeness`` may be null until measured)::

    {"model": str, "task": {...}, "metric": str,
     "components": [{"layer": int >= 0, "head": int >= 0 | null (the MLP), "role": str,
                     "positions": null | int | [int, ...] | str}, ...],
     "faithfulness": float | null, "completeness": float | null, "notes": str (optional)}

:meth:`Circuit.from_json` / :meth:`Circuit.from_dict` check every field and raise one ``ValueError`` naming the
bad one (``components[1].head``...).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit._io import atomic_write
from toolkit._result import frame

FIELDS = ("model", "task", "metric", "components", "faithfulness", "completeness")
COMPONENT_FIELDS = ("layer", "head", "role", "positions")


def _fail(where: str, why: str) -> None:
    raise ValueError(f"circuit field {where!r} {why}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_component(i: int, c: Any) -> dict[str, Any]:
    where = f"components[{i}]"
    if not isinstance(c, dict):
        _fail(where, f"must be a dict with keys {list(COMPONENT_FIELDS)}, got {c!r}")
    missing = [k for k in COMPONENT_FIELDS if k not in c]
    if missing:
        _fail(f"{where}.{missing[0]}", f"is missing (a component has keys {list(COMPONENT_FIELDS)})")
    unknown = sorted(set(c) - set(COMPONENT_FIELDS))
    if unknown:
        _fail(f"{where}.{unknown[0]}", f"is not a component field; valid: {list(COMPONENT_FIELDS)}")
    if not _is_int(c["layer"]) or c["layer"] < 0:
        _fail(f"{where}.layer", f"must be an int >= 0, got {c['layer']!r}")
    if c["head"] is not None and (not _is_int(c["head"]) or c["head"] < 0):
        _fail(f"{where}.head", f"must be an int >= 0 or null (the MLP), got {c['head']!r}")
    if not isinstance(c["role"], str):
        _fail(f"{where}.role", f"must be a string, got {c['role']!r}")
    pos = c["positions"]
    ok = pos is None or isinstance(pos, str) or _is_int(pos) or (
        isinstance(pos, list) and all(_is_int(p) for p in pos))
    if not ok:
        _fail(f"{where}.positions", f"must be null, an int, a list of ints or a position name, got {pos!r}")
    return dict(c)


def _check_score(name: str, x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        _fail(name, f"must be a finite number or null, got {x!r}")
    return float(x)


@dataclass
class Circuit:
    """A circuit in a named model for a task (see the module docstring for the fields)."""

    model: str
    task: dict[str, Any]
    metric: str
    components: list[dict[str, Any]]
    faithfulness: float | None = None
    completeness: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            _fail("model", f"must be a model name (models.pretrained), got {self.model!r}")
        if not isinstance(self.task, dict):
            _fail("task", f"must be a task spec dict (task.spec()), got {type(self.task).__name__}")
        if not isinstance(self.metric, str) or not self.metric:
            _fail("metric", f"must be a metric name, got {self.metric!r}")
        if not isinstance(self.components, list):
            _fail("components", f"must be a list of component dicts, got {type(self.components).__name__}")
        self.components = [_check_component(i, c) for i, c in enumerate(self.components)]
        self.faithfulness = _check_score("faithfulness", self.faithfulness)
        self.completeness = _check_score("completeness", self.completeness)
        if not isinstance(self.notes, str):
            _fail("notes", f"must be a string, got {self.notes!r}")

    @property
    def names(self) -> list[str]:
        """Component names (``"L0H1"``, ``"MLP2"``)."""
        return [f"MLP{c['layer']}" if c["head"] is None else f"L{c['layer']}H{c['head']}" for c in self.components]

    def check_model(self, model: Any) -> None:
        """Raise a ValueError naming the component that ``model`` (a TransformerBridge) does not have."""
        for i, c in enumerate(self.components):
            if c["layer"] >= model.cfg.n_layers:
                _fail(f"components[{i}].layer", f"is {c['layer']} but the model has {model.cfg.n_layers} layers")
            if c["head"] is not None and c["head"] >= model.cfg.n_heads:
                _fail(f"components[{i}].head", f"is {c['head']} but the model has {model.cfg.n_heads} heads")

    def load_model(self) -> Any:
        """``models.pretrained(self.model)``, checked to have every component."""
        from toolkit.models.pretrained import pretrained

        model = pretrained(self.model)
        self.check_model(model)
        return model

    def measure(self, model: Any, data: Any, metric: Any = None, **kwargs: Any) -> dict[str, Any]:
        """``{"faithfulness": CircuitScore, "completeness": CircuitScore}`` of this circuit in ``model`` on ``data``
        with ``self.metric`` (or ``metric=``, e.g. a callable for plain tokens); ``kwargs`` go to
        :func:`toolkit.circuits.faithfulness` / :func:`toolkit.circuits.completeness` (reference, method,
        n_random, seed...). Store the values with ``circuit.faithfulness = scores["faithfulness"].value``."""
        from toolkit.circuits.metrics import completeness, faithfulness

        self.check_model(model)
        m = self.metric if metric is None else metric
        return {"faithfulness": faithfulness(model, self, data, m, **kwargs),
                "completeness": completeness(model, self, data, m, **kwargs)}

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in FIELDS}
        if self.notes:
            out["notes"] = self.notes
        if self.extra:
            out["extra"] = self.extra
        return json.loads(json.dumps(out))

    def table(self) -> Any:
        """One row per component: ``name``, ``layer``, ``head``, ``role``, ``positions`` (a DataFrame)."""
        return frame([{"name": n, **c} for n, c in zip(self.names, self.components, strict=True)])

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the circuit as JSON, atomically (:func:`toolkit._io.atomic_write`)."""
        return atomic_write(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: Any) -> Circuit:
        if not isinstance(d, dict):
            raise ValueError(f"a circuit is a JSON object with fields {list(FIELDS)}, got {type(d).__name__}")
        missing = [k for k in FIELDS if k not in d]
        if missing:
            _fail(missing[0], f"is missing; a circuit has fields {list(FIELDS)} (+ optional notes, extra)")
        unknown = sorted(set(d) - set(FIELDS) - {"notes", "extra"})
        if unknown:
            _fail(unknown[0], f"is not a circuit field; valid: {list(FIELDS)} + notes, extra")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Circuit:
        """Read and validate a circuit written by :meth:`to_json`."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        return cls.from_dict(d)
