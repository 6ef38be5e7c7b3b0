"""The cells of a probe sweep: prepare each (label, group) cell, fit all of a label's cells in one batched
solve, and turn held-out predictions into table rows.

A cell has its own rows (train / test), targets, chance level, control-task targets and bootstrap scorer.
Its problems - one per (variant, hook), variants being ``real``, ``control`` and ``twin`` - are padded to a
common row count and stacked with every other cell's problems, so a layer x position map is one solve per
feature width (plus one for the trivial baselines) instead of one per cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from toolkit.activations.hooks import layer_of
from toolkit.probes import solvers
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


def _pad(parts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``[n_i, ...]`` tensors into ``[G, n_max, ...]`` (zeros) and a 0/1 row mask ``[G, n_max]``."""
    n_max = max(len(p) for p in parts)
    out = parts[0].new_zeros((len(parts), n_max) + tuple(parts[0].shape[1:]))
    mask = torch.zeros(len(parts), n_max)
    for i, p in enumerate(parts):
        out[i, :len(p)] = p
        mask[i, :len(p)] = 1.0
    return out, mask


def _solve(cells: list[Cell], problems: list[tuple[int, torch.Tensor, torch.Tensor]], Xte: list[torch.Tensor],
           o: Options) -> tuple[list[torch.Tensor], list[tuple]]:
    """Fit padded problems ``(cell, X_train [n, d], Y_train)``; return test outputs and standardised weights."""
    kind, K = cells[0].kind, cells[0].K
    X, w = _pad([p[1] for p in problems])
    Y, _ = _pad([p[2] for p in problems])
    mean, std = solvers.standardize(X, w)
    X = (X - mean) / std * w[..., None]
    if o.probe == "mlp":
        params = solvers.fit_mlp(X, Y, K, regression=kind == "regression", seed=o.seed)
        outs = [solvers.mlp_forward({k: v[i:i + 1] for k, v in params.items()}, ((x - mean[i]) / std[i])[None])[0]
                for i, x in enumerate(Xte)]
        return outs, [None] * len(problems)
    if kind == "regression":
        W, b = solvers.fit_ridge(X, Y, o.alpha, weights=w)
    else:
        W, b = solvers.fit_logistic(X, Y, K, C=o.C, max_iter=o.max_iter, tol=o.tol, weights=w)
    outs = [((x - mean[i]) / std[i]) @ W[i] + b[i] for i, x in enumerate(Xte)]
    return outs, [(W[i], b[i], mean[i, 0], std[i, 0]) for i in range(len(problems))]


def fit_cells(result: SweepResult, acts: Any, cells: list[Cell], cache_x: dict[str, torch.Tensor],
              cache_t: dict[str, torch.Tensor], o: Options) -> None:
    """Fit every problem of ``cells`` (same label) in batched solves and append their rows to ``result``."""
    if not cells:
        return
    variants = [("real", h) for h in o.hooks]
    if cells[0].y_ctrl is not None:
        variants += [("control", h) for h in o.hooks]
    if cache_t:
        variants += [("twin", h) for h in o.hooks]
    src = {"real": cache_x, "control": cache_x, "twin": cache_t}
    outs: dict[tuple[int, str, str], torch.Tensor] = {}
    fitted: dict[tuple[int, str], tuple] = {}
    for width in sorted({cache_x[h].shape[1] for h in o.hooks}):
        problems, tests, keys = [], [], []
        for c, cell in enumerate(cells):
            for v, h in variants:
                if cache_x[h].shape[1] != width:
                    continue
                y = cell.y_ctrl if v == "control" else cell.y
                problems.append((c, src[v][h][cell.tr], y[cell.tr]))
                tests.append(src[v][h][cell.te])
                keys.append((c, v, h))
        z, weights = _solve(cells, problems, tests, o)
        for k, zi, wi in zip(keys, z, weights):
            outs[k] = zi
            if k[1] == "real" and wi is not None:
                fitted[(k[0], k[2])] = wi
    base: dict[int, torch.Tensor] = {}
    if o.baseline and cells[0].lab.baseline_features is not None:
        bf = acts.baseline_features(cells[0].name)
        z, _ = _solve(cells, [(c, bf[cell.tr], cell.y[cell.tr]) for c, cell in enumerate(cells)],
                      [bf[cell.te] for cell in cells], o)
        base = {c: cells[c].score(zc) for c, zc in enumerate(z)}
    for c, cell in enumerate(cells):
        _report(result, cell, c, outs, fitted, base.get(c), bool(cache_t), o)


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
