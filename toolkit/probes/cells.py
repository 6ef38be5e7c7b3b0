"""The cells of a probe sweep: prepare each (label, group) cell, fit the cells' probes in batched solves,
and turn held-out predictions into table rows.

A cell has its own rows (train / test), targets, chance level, control-task targets and bootstrap scorer.
Its problems - one per (variant, hook), variants being ``real``, ``control`` and ``twin``, plus the trivial
``baseline`` - are padded to a common row count and stacked with every other cell's problems of the same
shape (label kind, outputs, feature width), so a whole sweep of layer x position maps is a handful of solves
instead of one per cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from toolkit.activations.hooks import layer_of
from toolkit.probes import logistic, solvers
from toolkit.probes.estimators import LogisticProbe, RidgeProbe
from toolkit.probes.metrics import Scorer, metric_name, predict, summary
from toolkit.probes.result import SweepResult


def depth(hook: str, n_layers: int) -> int:
    """Blocks the residual has passed at a hook: 0 = embedding, ``l + 1`` after block ``l``."""
    layer = layer_of(hook, n_layers)
    if layer < 0:
        return 0
    return layer if hook.endswith("hook_resid_pre") else layer + 1


@dataclass
class Options:
    hooks: list[str]
    probe: str
    C: float
    alpha: float
    max_iter: int
    tol: float
    n_boot: int
    margin: float
    seed: int
    n_layers: int
    baseline: bool


def _squeeze(kind: str, t: torch.Tensor) -> torch.Tensor:
    return t[:, 0] if kind == "binary" else t


def _targets(kind: str, values: torch.Tensor) -> torch.Tensor:
    """Label values -> solver targets: class ids ``[n]`` or float ``[n, K]``."""
    if kind == "multiclass":
        return values.long()
    return values.float().reshape(len(values), -1)


def _control_targets(y: torch.Tensor, types: torch.Tensor, train: torch.Tensor, seed: int) -> torch.Tensor:
    """Hewitt & Liang control task: each type gets the label of one random training row."""
    g = torch.Generator().manual_seed(seed)
    uniq, inv = torch.unique(types, return_inverse=True)
    train_idx = train.nonzero().flatten()
    pick = train_idx[torch.randint(0, len(train_idx), (len(uniq),), generator=g)]
    return y[pick][inv]


@dataclass
class Cell:
    name: str
    key: Any
    lab: Any
    kind: str
    K: int
    tr: torch.Tensor
    te: torch.Tensor
    y: torch.Tensor  # targets of every row of acts
    y_ctrl: torch.Tensor | None
    scorer: Scorer
    ctrl_scorer: Scorer | None
    s_chance: torch.Tensor
    scalar: bool

    @classmethod
    def prepare(cls, acts: Any, lab: Any, values: torch.Tensor, key: Any, train: torch.Tensor,
                test: torch.Tensor, types: torch.Tensor | None, o: Options) -> Cell:
        kind = lab.kind
        tr, te = train.nonzero().flatten(), test.nonzero().flatten()
        y = _targets(kind, values)
        K = int(lab.n_classes or int(values[train | test].max()) + 1) if kind == "multiclass" else y.shape[1]
        y_tr, y_te = y[tr], y[te]
        ex = acts.example_index[te]
        scorer = Scorer(kind, _squeeze(kind, y_te if kind == "regression" else y_te.long()), ex, o.n_boot, o.seed)
        if kind == "regression":  # chance: the training mean / the majority class (per output)
            chance = y_tr.mean(0, keepdim=True).expand(len(te), -1)
        elif kind == "multiclass":
            chance = torch.bincount(y_tr, minlength=K).argmax().expand(len(te))
        else:
            chance = (y_tr.mean(0, keepdim=True) > 0.5).long().expand(len(te), -1)
        y_ctrl = ctrl_scorer = None
        if types is not None:  # the control probe is scored on the control task's own test labels
            y_ctrl = _control_targets(y, types, train, o.seed + 1)
            yc = y_ctrl[te] if kind == "regression" else y_ctrl[te].long()
            ctrl_scorer = Scorer(kind, _squeeze(kind, yc), ex, o.n_boot, o.seed)
        return cls(lab.name, key, lab, kind, K, tr, te, y, y_ctrl, scorer, ctrl_scorer,
                   scorer.scores(_squeeze(kind, chance)), values.ndim == 1)

    def score(self, outputs: torch.Tensor, control: bool = False) -> torch.Tensor:
        scorer = self.ctrl_scorer if control else self.scorer
        return scorer.scores(_squeeze(self.kind, predict(self.kind, outputs)))


def _gather(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``source[rows]`` of every ``(source [N, ...], rows [n_i])`` into ``[G, n_max, ...]`` (zero-padded)
    and a 0/1 row mask ``[G, n_max]``."""
    n_max = max(len(rows) for _, rows in parts)
    out = parts[0][0].new_empty((len(parts), n_max) + tuple(parts[0][0].shape[1:]))
    mask = torch.zeros(len(parts), n_max)
    for i, (source, rows) in enumerate(parts):
        torch.index_select(source, 0, rows, out=out[i, :len(rows)])
        out[i, len(rows):] = 0
        mask[i, :len(rows)] = 1.0
    return out, mask


def _standardize_(X: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardise zero-padded ``X [G, n, d]`` in place, per problem over its rows ``w [G, n]`` (0/1), padding
    left at zero; returns ``(mean, std)`` ``[G, 1, d]`` (population std, 1 for constant features, like
    :func:`solvers.standardize`)."""
    n = w.sum(1).clamp_min(1.0)[:, None, None]
    mean = X.sum(1, keepdim=True) / n
    X.sub_(mean).mul_(w[..., None])
    std = torch.linalg.vector_norm(X, dim=1, keepdim=True) / n.sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    X.div_(std)
    return mean, std


Problem = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # features [N, d], targets, train, test


def _solve(kind: str, K: int, problems: list[Problem], o: Options) -> tuple[list[torch.Tensor], list[tuple | None]]:
    """Fit problems ``(features [N, d], targets [N, ...], train rows [n], test rows [m])`` of one shape; return
    their test outputs ``[m, K]`` and standardised weights ``(W [d, K], b [K], mean [d], std [d])``.

    Problems are bucketed by training-row count (:func:`logistic.bucket_rows`) and padded only within a bucket;
    features are standardised per problem on its training rows. All logistic buckets share one L-BFGS run."""
    parts, stats = [], {}
    buckets = logistic.bucket_rows([len(p[2]) for p in problems])
    for idx in buckets:
        X, w = _gather([(problems[i][0], problems[i][2]) for i in idx])
        Y, _ = _gather([(problems[i][1], problems[i][2]) for i in idx])
        mean, std = _standardize_(X, w)
        parts.append((X, Y, w))
        stats.update({i: (mean[j, 0], std[j, 0]) for j, i in enumerate(idx)})
    if o.probe == "mlp":
        params = [solvers.fit_mlp(X, Y, K, regression=kind == "regression", seed=o.seed) for X, Y, _ in parts]
        nets = {i: {k: v[j:j + 1] for k, v in p.items()} for idx, p in zip(buckets, params) for j, i in enumerate(idx)}
        outs = [solvers.mlp_forward(nets[i], ((x[te] - stats[i][0]) / stats[i][1])[None])[0]
                for i, (x, _, _, te) in enumerate(problems)]
        return outs, [None] * len(problems)
    if kind == "regression":
        fits = [solvers.fit_ridge(X, Y, o.alpha, weights=w) for X, Y, w in parts]
    else:
        fits = logistic.fit_logistic_buckets(parts, K, C=o.C, max_iter=o.max_iter, tol=o.tol)
    weights = {i: (W[j], b[j], *stats[i]) for idx, (W, b) in zip(buckets, fits) for j, i in enumerate(idx)}
    outs = []
    for i, (x, _, _, te) in enumerate(problems):  # ((x - mean) / std) @ W + b with the scaling folded into W, b
        W, b, mean, std = weights[i]
        Ws = W / std[:, None]
        outs.append(torch.addmm(b - mean @ Ws, x[te], Ws))
    return outs, [weights[i] for i in range(len(problems))]


def fit_cells(result: SweepResult, acts: Any, cells: list[Cell], cache_x: dict[str, torch.Tensor],
              cache_t: dict[str, torch.Tensor], o: Options) -> None:
    """Fit every problem of ``cells`` (any labels) and append their rows to ``result``.

    Problems of the same shape - label kind, number of outputs, feature width - share one batched solve,
    whatever their label, group, hook or variant (``real``, ``control``, ``twin``, ``baseline``)."""
    if not cells:
        return
    src = {"real": cache_x, "control": cache_x, "twin": cache_t}
    shapes: dict[tuple[str, int, int], list[tuple[tuple[int, str, Any], Problem]]] = {}
    baseline_x: dict[str, torch.Tensor | None] = {}
    for c, cell in enumerate(cells):
        variants = ["real"] + (["control"] if cell.y_ctrl is not None else []) + (["twin"] if cache_t else [])
        for v in variants:
            y = cell.y_ctrl if v == "control" else cell.y
            for h in o.hooks:
                x = src[v][h]
                shapes.setdefault((cell.kind, cell.K, x.shape[1]), []).append(((c, v, h), (x, y, cell.tr, cell.te)))
        if o.baseline and cell.name not in baseline_x:
            baseline_x[cell.name] = acts.baseline_features(cell.name)
        x = baseline_x.get(cell.name)
        if x is not None:
            shapes.setdefault((cell.kind, cell.K, x.shape[1]), []).append(
                ((c, "baseline", None), (x, cell.y, cell.tr, cell.te)))
    outs: dict[tuple[int, str, Any], torch.Tensor] = {}
    fitted: dict[tuple[int, str], tuple] = {}
    for (kind, K, _), items in shapes.items():
        z, weights = _solve(kind, K, [p for _, p in items], o)
        for (k, _), zi, wi in zip(items, z, weights):
            outs[k] = zi
            if k[1] == "real" and wi is not None:
                fitted[(k[0], k[2])] = wi
    for c, cell in enumerate(cells):
        zb = outs.get((c, "baseline", None))
        _report(result, cell, c, outs, fitted, None if zb is None else cell.score(zb), bool(cache_t), o)


def _report(result: SweepResult, cell: Cell, c: int, outs: dict, fitted: dict, s_base: torch.Tensor | None,
            twin: bool, o: Options) -> None:
    for h in o.hooks:
        s = cell.score(outs[(c, "real", h)])
        sm = summary(s)
        row: dict[str, Any] = {"label": cell.name, "kind": cell.kind, "metric": metric_name(cell.kind),
                               "group": cell.key, "layer": depth(h, o.n_layers), "hook": h, "n_train": len(cell.tr),
                               "n_test": len(cell.te), "score": sm["score"], "score_std": sm["std"],
                               "score_lo": sm["lo"], "score_hi": sm["hi"], "chance": float(cell.s_chance[0])}
        row["baseline"] = float(s_base[0]) if s_base is not None else math.nan
        row["baseline_name"] = cell.lab.baseline_name if s_base is not None else ""
        if cell.y_ctrl is not None:
            s_c = cell.score(outs[(c, "control", h)], control=True)
            row["control"] = float(s_c[0])
            row["selectivity"] = float(s[0] - s_c[0])
        s_t = cell.score(outs[(c, "twin", h)]) if twin else None
        row["random_init"] = float(s_t[0]) if s_t is not None else math.nan
        beats = []
        for ref, col in ((s_base, "vs_baseline_lo"), (s_t, "vs_random_lo")):
            if ref is None:
                row[col] = math.nan
                continue
            diff = s - ref
            lo = float(diff[1:].quantile(0.025)) if len(diff) > 2 else float(diff[0])
            row[col] = lo
            beats.append(lo > o.margin)
        row["found"] = bool(beats) and all(beats)
        result.rows.append(row)
        if (c, h) in fitted:
            W, b, mean, std = fitted[(c, h)]
            if cell.kind == "regression":
                est: Any = RidgeProbe.from_weights(W, b, mean, std, o.alpha, scalar=cell.scalar)
            else:
                est = LogisticProbe.from_weights(cell.kind, W, b, mean, std, o.C)
            result.fitted[(cell.name, h, cell.key)] = est
