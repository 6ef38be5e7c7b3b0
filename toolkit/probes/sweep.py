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

All layers (and the control / twin variants) of one label are fitted together in one batched solve
(:mod:`toolkit.probes.solvers`), not one scikit-learn fit per cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from toolkit.activations.hooks import _matches, layer_of
from toolkit.activations.threads import torch_threads
from toolkit.probes import solvers
from toolkit.probes.estimators import LogisticProbe, RidgeProbe
from toolkit.probes.metrics import Scorer, metric_name, predict, summary
from toolkit.probes.result import SweepResult

GroupSpec = None | str | Callable[[Any], torch.Tensor]


def split(acts: Any, test_frac: float = 0.25, seed: int = 0) -> torch.Tensor:
    """BoolTensor ``[n_rows]``: rows of the held-out *examples* (a seeded random ``test_frac`` of them)."""
    examples = torch.unique(acts.example_index)
    g = torch.Generator().manual_seed(seed)
    n_test = max(1, int(round(test_frac * len(examples))))
    test_ex = examples[torch.randperm(len(examples), generator=g)[:n_test]]
    return torch.isin(acts.example_index, test_ex)


def depth(hook: str, n_layers: int) -> int:
    """Blocks the residual has passed at a hook: 0 = embedding, ``l + 1`` after block ``l``."""
    layer = layer_of(hook, n_layers)
    if layer < 0:
        return 0
    return layer if hook.endswith("hook_resid_pre") else layer + 1


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


def _targets(kind: str, values: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Label values of the kept rows -> solver targets and the number of outputs."""
    if kind == "multiclass":
        return values.long(), -1
    v = values.float().reshape(len(values), -1)
    return v, v.shape[1]


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


def _control_targets(y: torch.Tensor, types: torch.Tensor, train: torch.Tensor, seed: int) -> torch.Tensor:
    """Hewitt & Liang control task: each type gets the label of one random training row."""
    g = torch.Generator().manual_seed(seed)
    types, inv = torch.unique(types, return_inverse=True)
    train_idx = train.nonzero().flatten()
    pick = train_idx[torch.randint(0, len(train_idx), (len(types),), generator=g)]
    return y[pick][inv]


def _fit(kind: str, X: torch.Tensor, Y: torch.Tensor, K: int, probe: str, C: float, alpha: float, max_iter: int,
         seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Fit ``G`` standardised problems; returns ``outputs(X_test [G, m, d]) -> [G, m, K]`` and stores weights."""
    if probe == "mlp":
        p = solvers.fit_mlp(X, Y, K, regression=kind == "regression", seed=seed)
        return lambda Xt: solvers.mlp_forward(p, Xt)
    if kind == "regression":
        W, b = solvers.fit_ridge(X, Y, alpha)
    else:
        W, b = solvers.fit_logistic(X, Y, K, C=C, max_iter=max_iter)

    def out(Xt: torch.Tensor) -> torch.Tensor:
        return solvers.logits(Xt, W, b)

    out.weights = (W, b)  # type: ignore[attr-defined]
    return out


def sweep(acts: Any, labels: Sequence[str] | str | None = None, layers: Any = None, *, control: Any = "token+position",
          random_acts: Any = None, baseline: bool = True, group_by: GroupSpec = None, probe: str = "linear",
          test_frac: float = 0.25, C: float = 1.0, alpha: float = 1.0, n_boot: int = 200, margin: float = 0.02,
          min_rows: int = 40, max_iter: int = 200, seed: int = 0, progress: bool = True,
          threads: int | None = 1) -> SweepResult:
    """Probe every (label x layer) - optionally x position - with baselines, controls and error bars.

    Args:
        acts: :class:`~toolkit.activations.Activations` of a SearchDataset (labels come from ``acts.data``).
        labels: label names (default: every label with valid rows in ``acts``).
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
        seed: seeds the split, the control task and the bootstrap.
        threads: torch threads (default 1; see :mod:`toolkit.activations.threads`).

    Returns:
        :class:`SweepResult`: ``.table()`` (one row per cell), ``.probes``, ``.probe(...)``, ``.direction(...)``.
    """
    if probe not in ("linear", "mlp"):
        raise ValueError(f"probe={probe!r} is not valid; use 'linear' or 'mlp'")
    if not 0 < test_frac < 1:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac!r}")
    if not getattr(acts, "label_names", None):
        raise ValueError("acts has no labels: cache a SearchDataset (task.generate(n)) with activations.cache")
    names = acts.label_names if labels is None else ([labels] if isinstance(labels, str) else list(labels))
    for name in names:
        acts.label(name)  # clear error for unknown labels
    hooks = _pick_hooks(acts, layers)
    with torch_threads(threads):
        twin, twin_rows = _twin(acts, random_acts, hooks)
        groups = _groups(acts, group_by)
        types = control_types(acts, control)
        is_test = split(acts, test_frac, seed)
        n_layers = int(acts.meta.get("n_layers", 10**6))
        result = SweepResult(hooks=hooks, meta={"probe": probe, "margin": margin, "test_frac": test_frac,
                                                "seed": seed, "n_boot": n_boot, "group_by": str(group_by)})
        cache_x: dict[str, torch.Tensor] = {h: acts[h].float() for h in hooks}
        cache_t: dict[str, torch.Tensor] = {h: twin[h].float()[twin_rows] for h in hooks} if twin is not None else {}
        jobs = []
        for name in names:
            values, valid = acts.labels(name)
            lab = acts.label(name)
            if lab.kind == "multiclass":
                valid = valid & (values >= 0)
            keys = [None] if groups is None else torch.unique(groups[valid]).tolist()
            jobs += [(name, key) for key in keys]
        for name, key in tqdm(jobs, desc="probing", disable=not progress):
            lab = acts.label(name)
            values, valid = acts.labels(name)
            if lab.kind == "multiclass":
                valid = valid & (values >= 0)
            rows = valid if key is None else valid & (groups == key)
            train, test = rows & ~is_test, rows & is_test
            if int(train.sum()) < min_rows or int(test.sum()) < max(2, min_rows // 4):
                result.skipped.append((name, key, f"{int(train.sum())} train / {int(test.sum())} test rows"))
                continue
            _fit_cell(result, acts, lab, name, key, hooks, cache_x, cache_t, values, train, test, types,
                      baseline, probe, C, alpha, max_iter, n_boot, margin, seed, n_layers)
    return result


def _squeeze(kind: str, t: torch.Tensor) -> torch.Tensor:
    return t[:, 0] if kind == "binary" else t


def _fit_cell(result: SweepResult, acts: Any, lab: Any, name: str, key: Any, hooks: list[str],
              cache_x: dict[str, torch.Tensor], cache_t: dict[str, torch.Tensor], values: torch.Tensor,
              train: torch.Tensor, test: torch.Tensor, types: torch.Tensor | None, baseline: bool, probe: str, C: float,
              alpha: float, max_iter: int, n_boot: int, margin: float, seed: int, n_layers: int) -> None:
    kind = lab.kind
    tr, te = train.nonzero().flatten(), test.nonzero().flatten()
    y_all, K = _targets(kind, values)
    if kind == "multiclass":
        K = int(lab.n_classes or int(values[train | test].max()) + 1)
    y_tr, y_te = y_all[tr], y_all[te]
    scorer = Scorer(kind, _squeeze(kind, y_te if kind == "regression" else y_te.long()), acts.example_index[te],
                    n_boot, seed)

    def score(outputs: torch.Tensor) -> torch.Tensor:
        return scorer.scores(_squeeze(kind, predict(kind, outputs)))

    # chance: majority class per output / training mean
    if kind == "regression":
        chance_pred = y_tr.mean(0, keepdim=True).expand(len(te), -1)
    elif kind == "multiclass":
        chance_pred = torch.bincount(y_tr, minlength=K).argmax().expand(len(te))
    else:
        chance_pred = (y_tr.mean(0, keepdim=True) > 0.5).long().expand(len(te), -1)
    s_chance = scorer.scores(_squeeze(kind, chance_pred))
    # stack: real layers, control layers, twin layers (grouped by feature width)
    variants = [("real", h) for h in hooks]
    control = types is not None
    if control:
        variants += [("control", h) for h in hooks]
    if cache_t:
        variants += [("twin", h) for h in hooks]
    y_ctrl = _control_targets(y_all, types, train, seed + 1) if control else None
    if control:  # the control probe is scored on the control task's own test labels
        ctrl_scorer = Scorer(kind, _squeeze(kind, y_ctrl[te].long() if kind != "regression" else y_ctrl[te]),
                             acts.example_index[te], n_boot, seed)
    outs: dict[tuple[str, str], torch.Tensor] = {}
    fitted: dict[str, tuple] = {}
    widths = sorted({cache_x[h].shape[1] for h in hooks})
    for w in widths:
        vs = [v for v in variants if cache_x[v[1]].shape[1] == w]
        src = {"real": cache_x, "control": cache_x, "twin": cache_t}
        Xtr = torch.stack([src[v][h][tr] for v, h in vs])
        Xte = torch.stack([src[v][h][te] for v, h in vs])
        mean, std = solvers.standardize(Xtr)
        Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
        Y = torch.stack([(y_ctrl if v == "control" else y_all)[tr] for v, _ in vs])
        fn = _fit(kind, Xtr, Y, K, probe, C, alpha, max_iter, seed)
        with torch.no_grad():
            z = fn(Xte)
        for i, v in enumerate(vs):
            outs[v] = z[i]
            if v[0] == "real" and hasattr(fn, "weights"):
                fitted[v[1]] = (fn.weights[0][i], fn.weights[1][i], mean[i, 0], std[i, 0])
    s_base = None
    bf = acts.baseline_features(name) if baseline else None
    if bf is not None:
        B = bf[None]
        Btr, Bte = B[:, tr], B[:, te]
        mean, std = solvers.standardize(Btr)
        fn = _fit(kind, (Btr - mean) / std, y_tr[None], K, probe, C, alpha, max_iter, seed)
        with torch.no_grad():
            s_base = score(fn((Bte - mean) / std)[0])
    metric = metric_name(kind)
    for h in hooks:
        s = score(outs[("real", h)])
        row: dict[str, Any] = {"label": name, "kind": kind, "metric": metric, "group": key,
                               "layer": depth(h, n_layers), "hook": h, "n_train": len(tr), "n_test": len(te)}
        sm = summary(s)
        row.update({"score": sm["score"], "score_std": sm["std"], "score_lo": sm["lo"], "score_hi": sm["hi"],
                    "chance": float(s_chance[0])})
        row["baseline"] = float(s_base[0]) if s_base is not None else math.nan
        row["baseline_name"] = lab.baseline_name if s_base is not None else ""
        if control:
            s_c = ctrl_scorer.scores(_squeeze(kind, predict(kind, outs[("control", h)])))
            row["control"] = float(s_c[0])
            row["selectivity"] = float(s[0] - s_c[0])
        s_t = score(outs[("twin", h)]) if cache_t else None
        row["random_init"] = float(s_t[0]) if s_t is not None else math.nan
        beats = []
        for ref, col in ((s_base, "vs_baseline_lo"), (s_t, "vs_random_lo")):
            if ref is None:
                row[col] = math.nan
                continue
            diff = s - ref
            lo = float(diff[1:].quantile(0.025)) if len(diff) > 2 else float(diff[0])
            row[col] = lo
            beats.append(lo > margin)
        row["found"] = bool(beats) and all(beats)
        result.rows.append(row)
        if h in fitted:
            W, b, mean, std = fitted[h]
            if kind == "regression":
                est: Any = RidgeProbe.from_weights(W, b, mean, std, alpha, scalar=values.ndim == 1)
            else:
                est = LogisticProbe.from_weights(kind, W, b, mean, std, C)
            result.fitted[(name, h, key)] = est
    if probe == "mlp":
        result.meta["note"] = "MLP probes: weights are not kept; refit MLPProbe on a cell to inspect it"
