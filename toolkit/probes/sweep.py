"""``probes.sweep``: every (label x layer [x position]) probe at once, with the comparisons that make it mean
something.

For every label and every cached hook the sweep fits a probe on held-out-split rows and reports, on the
test examples:

* ``score`` (accuracy or R^2) with example-bootstrap error bars (``score_std``, ``score_lo`` / ``score_hi``)
* ``chance``: the majority class (per output) / the training mean
* ``baseline``: the same probe fitted on the label's trivial features (``Label.baseline_features``, e.g. the
  current token and position); a label that only matches this was *not* found
* ``control`` and ``selectivity = score - control`` (Hewitt & Liang 2019): the same probe on a control task
  that gives every *type* a fixed random label drawn from the label's distribution - how much a probe of this
  capacity can memorise. A type is the current token (``control="token"``, Hewitt & Liang's word type) or,
  by default, the (token, position) pair: with the tiny vocabularies here any linear probe memorises a
  per-token control perfectly (measured on tree-8: control accuracy 1.00 at every layer, 21 token types),
  which makes selectivity uninformative; (token, position) types are hundreds and need real capacity
* ``random_init``: the same probe on the random-init twin model's activations at the same rows
* ``found``: the probe beats both the trivial baseline and the random-init twin by more than ``margin``,
  with the lower end of the paired 95% bootstrap interval of each difference above ``margin``

All probes of the same shape - every label, group, layer and variant (control, twin, baseline) - are fitted
together in one batched solve (:mod:`toolkit.probes.logistic`, :mod:`toolkit.probes.solvers`), not one
scikit-learn fit per cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from toolkit._estimator import nonfinite_rows
from toolkit._threads import torch_threads
from toolkit.activations.hooks import _matches
from toolkit.probes.cells import Cell, Options, fit_cells
from toolkit.probes.result import SweepResult
from toolkit.tasks.base import Label

GroupSpec = None | str | Callable[[Any], torch.Tensor]
MAX_BATCH_FLOATS = 1 << 26  # training features in one batched solve (256 MB as float32): bounds peak memory


def split(acts: Any, test_frac: float = 0.25, seed: int = 0) -> torch.Tensor:
    """BoolTensor ``[n_rows]``: rows of the held-out *examples* (a seeded random ``test_frac`` of them)."""
    examples = torch.unique(acts.example_index)
    g = torch.Generator().manual_seed(seed)
    n_test = max(1, int(round(test_frac * len(examples))))
    test_ex = examples[torch.randperm(len(examples), generator=g)[:n_test]]
    return torch.isin(acts.example_index, test_ex)


def _finite(x: torch.Tensor, what: str, fix: str) -> torch.Tensor:
    """``x`` unchanged if every value is finite, else one ValueError: how many rows hold NaN / inf, and ``fix``."""
    rows = nonfinite_rows(x)
    if rows is not None:
        raise ValueError(f"{what} has {rows}; {fix}")
    return x


def _pick_hooks(acts: Any, layers: Any) -> list[str]:
    if layers is None:
        return list(acts.hook_names)
    items = [layers] if isinstance(layers, str | int) else list(layers)
    out: list[str] = []
    for item in items:
        if isinstance(item, int):
            name = "blocks.0.hook_resid_pre" if item < 0 else f"blocks.{item}.hook_resid_post"
            hits = [name] if name in acts else []
        else:
            hits = [h for h in acts.hook_names if _matches(item, h)]
        if not hits:
            raise ValueError(f"layer {item!r} is not among the cached hooks {acts.hook_names}; cache it first "
                             "or pass hook names / block numbers from that list")
        out += [h for h in hits if h not in out]
    return [h for h in acts.hook_names if h in out]


def _groups(acts: Any, group_by: GroupSpec) -> torch.Tensor | None:
    if group_by is None:
        return None
    if group_by == "position":
        return acts.position
    if group_by == "token":
        return acts.token
    if callable(group_by):
        g = torch.as_tensor(group_by(acts))
        if g.shape != (len(acts),):
            raise ValueError(f"group_by must give one integer per row ({len(acts)}), got shape {tuple(g.shape)}")
        return g
    raise ValueError(f"group_by={group_by!r} is not valid; use None, 'position', 'token' or a callable "
                     "acts -> [n_rows]")


def _align(acts: Any, other: Any, what: str) -> torch.Tensor:
    """Row indices into ``other`` that match ``acts`` row by row (same example and position)."""
    seq = int(max(int(acts.position.max()), int(other.position.max()))) + 1
    key_a = acts.example_index * seq + acts.position
    key_b = other.example_index * seq + other.position
    if torch.equal(key_a, key_b):
        return torch.arange(len(acts))
    order = torch.argsort(key_b)
    pos = torch.searchsorted(key_b[order], key_a).clamp_max(len(key_b) - 1)
    idx = order[pos]
    if not torch.equal(key_b[idx], key_a):
        raise ValueError(f"{what} does not hold the same (example, position) rows as acts; cache it with the same "
                         "data and positions, or pass the model itself")
    return idx


def _twin(acts: Any, random_acts: Any, hooks: list[str]) -> tuple[Any, torch.Tensor] | tuple[None, None]:
    if random_acts is None:
        return None, None
    if hasattr(random_acts, "hook_dict"):  # a model: cache its activations at exactly these rows
        from toolkit.activations import cache

        if acts.data is None:
            raise ValueError("to cache the random-init twin the sweep needs acts.data; pass random_acts as Activations")
        n, seq = acts.data.tokens.shape if hasattr(acts.data, "tokens") else acts.data.shape
        mask = torch.zeros(n, seq, dtype=torch.bool)
        mask[acts.example_index, acts.position] = True
        random_acts = cache(random_acts, acts.data, hooks=hooks, positions=mask, progress=False)
    missing = [h for h in hooks if h not in random_acts]
    if missing:
        raise ValueError(f"random_acts lacks hooks {missing}; cache the random-init model with the same hooks")
    return random_acts, _align(acts, random_acts, "random_acts")


def _batches(cells: list[Cell], probe: str, per_row: int) -> list[list[Cell]]:
    """Consecutive cells fitted together: linear probes of every label and group share batched solves (up to
    ``MAX_BATCH_FLOATS`` training features, ``per_row`` per training row); MLP probes go one cell at a time."""
    if probe != "linear":
        return [[cell] for cell in cells]
    out: list[list[Cell]] = []
    size = 0
    for cell in cells:
        cost = len(cell.tr) * per_row
        if not out or size + cost > MAX_BATCH_FLOATS:
            out.append([])
            size = 0
        out[-1].append(cell)
        size += cost
    return out


def control_types(acts: Any, control: Any) -> torch.Tensor | None:
    """Type id of every row for the control task (None: no control)."""
    if control is False or control is None:
        return None
    if control is True or control == "token+position":
        return acts.token * (int(acts.position.max()) + 1) + acts.position
    if control == "token":
        return acts.token
    if callable(control):
        t = torch.as_tensor(control(acts))
        if t.shape != (len(acts),):
            raise ValueError(f"control must give one type id per row ({len(acts)}), got shape {tuple(t.shape)}")
        return t
    raise ValueError(f"control={control!r} is not valid; use 'token+position', 'token', False or a callable "
                     "acts -> [n_rows] type ids")


class OwnLabels:
    """``acts`` seen with labels given as a dict instead of a SearchDataset's (everything else delegated)."""

    def __init__(self, acts: Any, labels: dict[str, Label]):
        self._acts, self._labels = acts, labels
        uniq, inv = torch.unique(acts.token, return_inverse=True)
        self._token_ids, self._width = inv, len(uniq)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._acts, name)

    def __getitem__(self, hook: str) -> torch.Tensor:
        return self._acts[hook]

    def __contains__(self, hook: str) -> bool:
        return hook in self._acts

    def __len__(self) -> int:
        return len(self._acts)

    @property
    def label_names(self) -> list[str]:
        return list(self._labels)

    def label(self, name: str) -> Label:
        if name not in self._labels:
            raise KeyError(f"no label {name!r}; labels: {list(self._labels)}")
        return self._labels[name]

    def labels(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        lab = self.label(name)
        return lab.values[self.example_index, self.position], lab.mask[self.example_index, self.position]

    def baseline_features(self, name: str) -> torch.Tensor:
        """The current token, one-hot over the token ids present in the rows: ``[n_rows, n_distinct]``."""
        return torch.nn.functional.one_hot(self._token_ids, self._width).float()


def _kind(values: torch.Tensor) -> tuple[str, int | None]:
    """Label kind from values ``[n, seq]`` / ``[n, seq, k]``: bool or 0/1 ids -> binary, ids -> multiclass,
    floats -> regression; ``[n, seq, k]`` of 0/1 -> multilabel, of floats -> regression."""
    if values.is_floating_point():
        return "regression", None
    if values.ndim == 3:
        return "multilabel", int(values.shape[2])
    if values.numel() and int(values.max()) > 1:
        return "multiclass", int(values.max()) + 1
    return "binary", None


def own_labels(acts: Any, labels: dict[str, Any]) -> OwnLabels:
    """``acts`` with labels ``{name: values}`` or ``{name: (values, mask)}``: values ``[n, seq]`` (bool / class
    ids / floats) or ``[n, seq, k]`` over the token tensor the activations were cached from, mask BoolTensor
    ``[n, seq]`` (where the label is defined; default everywhere). The trivial baseline is the current token."""
    n = int(acts.example_index.max()) + 1 if len(acts) else 0
    seq = int(acts.position.max()) + 1 if len(acts) else 0
    if isinstance(getattr(acts, "data", None), torch.Tensor):
        n, seq = acts.data.shape
    out: dict[str, Label] = {}
    for name, spec in labels.items():
        values, mask = spec if isinstance(spec, tuple) else (spec, None)
        values = torch.as_tensor(values)
        exact = isinstance(getattr(acts, "data", None), torch.Tensor)
        if values.ndim not in (2, 3) or (tuple(values.shape[:2]) != (n, seq) if exact else
                                         values.shape[0] < n or values.shape[1] < seq):
            raise ValueError(f"label {name!r}: values have shape {tuple(values.shape)}; give [n, seq] or "
                             f"[n, seq, k] over the tokens the activations were cached from ([{n}, {seq}])")
        mask = torch.ones(values.shape[:2], dtype=torch.bool) if mask is None else torch.as_tensor(mask)
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(values.shape[:2]):
            raise ValueError(f"label {name!r}: mask must be a BoolTensor of shape {tuple(values.shape[:2])} (True "
                             f"where the label is defined); got {mask.dtype} {tuple(mask.shape)}")
        kind, n_classes = _kind(values)
        out[name] = Label(name, kind, values.float() if kind != "multiclass" else values.long(), mask, n_classes)
    return OwnLabels(acts, out)


def sweep(acts: Any, labels: Sequence[str] | str | dict[str, Any] | None = None, layers: Any = None, *,
          control: Any = "token+position", random_acts: Any = None, baseline: bool = True,
          group_by: GroupSpec = None, probe: str = "linear", test_frac: float = 0.25, C: float = 1.0,
          alpha: float = 1.0, n_boot: int = 200, margin: float = 0.02, min_rows: int = 40, max_iter: int = 200,
          tol: float = 1e-4, seed: int = 0, progress: bool = True, threads: int | None = 1) -> SweepResult:
    """Probe every (label x layer) - optionally x position - with baselines, controls and error bars.

    Args:
        acts: :class:`~toolkit.activations.Activations` of a SearchDataset (labels come from ``acts.data``), or
            of plain tokens ``[n, seq]`` with ``labels`` given as a dict.
        labels: label names (default: every label with valid rows in ``acts``), or your own labels
            ``{name: values}`` / ``{name: (values, mask)}``: values ``[n, seq]`` (bool or 0/1 -> binary, class
            ids -> multiclass, floats -> regression) or ``[n, seq, k]`` (0/1 -> multilabel, floats ->
            regression), mask BoolTensor ``[n, seq]``, True where the label is defined. Their trivial
            baseline is the current token.
        layers: hooks to probe: names / patterns from ``acts.hook_names`` or block numbers (``l`` ->
            ``blocks.l.hook_resid_post``, ``-1`` -> ``blocks.0.hook_resid_pre``); default all cached hooks.
        control: the Hewitt & Liang control task behind ``selectivity``: types are ``"token+position"``
            (default), ``"token"``, or a callable ``acts -> [n_rows]``; False skips it.
        random_acts: the random-init twin: its Activations at the same rows, or the model itself (cached here).
        baseline: also fit the probe on the label's trivial ``baseline_features``.
        group_by: ``"position"`` (one probe per absolute position: a layer x position map), ``"token"``, or a
            callable ``acts -> [n_rows]`` of group ids; None pools all rows.
        probe: ``"linear"`` (logistic / ridge) or ``"mlp"`` (a stronger reporter, one hidden layer).
        test_frac: fraction of *examples* held out for scoring.
        C, alpha: L2 strengths of the logistic (scikit-learn ``C``) and ridge (``alpha``) probes.
        n_boot: bootstrap resamples of test examples for the error bars (0: none).
        margin: how far (accuracy / R^2 points) a probe must beat baseline and twin to count as ``found``.
        min_rows: skip cells with fewer training rows.
        max_iter, tol: L-BFGS limits of the logistic probes (``tol``: max |gradient|, as scikit-learn).
        seed: seeds the split, the control task and the bootstrap.
        threads: torch threads (default 1; see :mod:`toolkit._threads`).

    Returns:
        :class:`SweepResult`: ``.table()`` (one row per cell), ``.probes``, ``.probe(...)``, ``.direction(...)``;
        with labels given as a dict, ``.own_labels`` holds them as ``{name: Label}``.
    """
    if probe not in ("linear", "mlp"):
        raise ValueError(f"probe={probe!r} is not valid; use 'linear' or 'mlp'")
    if not 0 < test_frac < 1:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac!r}")
    model_acts = acts
    if isinstance(labels, dict):
        acts = own_labels(acts, labels)
        labels = None
    if not getattr(acts, "label_names", None):
        raise ValueError("acts has no labels: pass your own, labels={name: values [n, seq]} or {name: (values, "
                         "mask)}, or cache a SearchDataset (task.generate(n)) with activations.cache")
    names = acts.label_names if labels is None else ([labels] if isinstance(labels, str) else list(labels))
    for name in names:
        acts.label(name)  # clear error for unknown labels
    hooks = _pick_hooks(acts, layers)
    with torch_threads(threads):
        twin, twin_rows = _twin(model_acts, random_acts, hooks)
        groups = _groups(acts, group_by)
        types = control_types(acts, control)
        is_test = split(acts, test_frac, seed)
        n_layers = int(acts.meta.get("n_layers", 10**6))
        result = SweepResult(hooks=hooks, meta={"probe": probe, "margin": margin, "test_frac": test_frac,
                                                "seed": seed, "n_boot": n_boot, "group_by": str(group_by)})
        if isinstance(acts, OwnLabels):  # kept out of meta (JSON-able); ProbeExplorer(result, acts) reads them
            result.own_labels = acts._labels
        drop = ("drop those rows with acts.select(keep), keep = torch.isfinite(acts[hook]).all(1), or recache from a "
                "model whose activations are finite (NaN / inf usually mean diverged weights)")
        cache_x = {h: _finite(acts[h].float(), f"acts[{h!r}]", drop) for h in hooks}
        cache_t = ({h: _finite(twin[h].float()[twin_rows], f"random_acts[{h!r}]", drop) for h in hooks}
                   if twin is not None else {})
        opts = Options(hooks, probe, C, alpha, max_iter, tol, n_boot, margin, seed, n_layers, baseline)
        cells: list[Cell] = []
        for name in names:
            lab = acts.label(name)
            values, valid = acts.labels(name)
            _finite(values[valid], f"label {name!r} (at its valid rows)", "mark those rows invalid in the label's "
                    "mask or fix the label's definition; a probe cannot fit NaN / inf targets")
            if lab.kind == "multiclass":
                valid = valid & (values >= 0)
            for key in [None] if groups is None else torch.unique(groups[valid]).tolist():
                rows = valid if key is None else valid & (groups == key)
                train, test = rows & ~is_test, rows & is_test
                if int(train.sum()) < min_rows or int(test.sum()) < max(2, min_rows // 4):
                    result.skipped.append((name, key, f"{int(train.sum())} train / {int(test.sum())} test rows"))
                    continue
                cells.append(Cell.prepare(acts, lab, values, key, train, test, types, opts))
        n_variants = 1 + (types is not None) + (twin is not None)
        per_row = n_variants * sum(cache_x[h].shape[1] for h in hooks)
        bar = tqdm(total=len(cells), desc="probing", unit="cell", disable=not progress)
        for batch in _batches(cells, probe, per_row):
            fit_cells(result, acts, batch, cache_x, cache_t, opts)
            bar.update(len(batch))
        bar.close()
    return result
