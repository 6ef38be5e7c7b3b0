"""Match latents / components / clusters against ground-truth search labels - and list what matches nothing.

Input: a feature matrix ``F [n_rows, n_latents]`` (SAE latents, PCA projections, cluster memberships...)
and labels ``{name: (values [n_rows, ...], valid [n_rows] bool)}`` - exactly what an activation cache
gives (``acts.labels(name)``; an object with ``label_names`` and ``labels(name)`` is accepted as is).

For every latent: its best-matching label, scored by ROC AUC for binary labels (one-vs-rest for each class
of a multiclass label, each column of a ``[n, K]`` label) and Pearson correlation for real-valued ones.
To compare the two on one scale, ``score`` is ``|2 AUC - 1|`` (Somers' D) or ``|r|``, both in [0, 1].
Strong latents (firing on at least ``min_density`` of rows) whose best score stays below the threshold are
"found but unlabelled": structure the method found that none of our labels explains. Remember that the
best of many latents is inflated by selection - compare with a control (random dictionary, frozen-decoder
SAE) via :func:`compare_to_control` - and that failing to find a label does not show it is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from toolkit._result import frame, plain
from toolkit.unsupervised.train import as_2d_float, generator


@dataclass
class SubLabel:
    name: str  # "parent=3", "ancestor[2]", "dist"
    label: str  # the original label name
    kind: str  # "binary" or "regression"
    values: np.ndarray  # [n_valid] float
    valid: np.ndarray  # [n_rows] bool


def _as_np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _normalise_labels(labels: Any) -> dict[str, tuple[Any, Any]]:
    if hasattr(labels, "label_names") and callable(getattr(labels, "labels", None)):
        return {name: labels.labels(name) for name in labels.label_names}
    if not isinstance(labels, Mapping):
        raise TypeError("labels must be a dict name -> (values [n_rows, ...], valid [n_rows] bool) or values, "
                        f"or an object with .label_names and .labels(name); got {type(labels).__name__}")
    return {k: (v if isinstance(v, tuple) else (v, None)) for k, v in labels.items()}


KINDS = ("binary", "multiclass", "multilabel", "regression")


def expand_labels(labels: Any, n_rows: int, max_classes: int = 64, min_count: int = 5,
                  kinds: Mapping[str, str] | None = None) -> list[SubLabel]:
    """Split labels into binary / regression sub-labels (one-vs-rest per class, one per column).

    The kind of each label is inferred (bool or 0/1 -> binary, integers with at most ``max_classes``
    values -> multiclass, else regression) unless ``kinds[name]`` gives it (``toolkit.tasks`` kinds:
    binary, multiclass, multilabel, regression). Sub-labels with fewer than ``min_count`` positives or
    negatives (binary) or no variance are skipped.
    """
    out: list[SubLabel] = []
    kinds = dict(kinds or {})
    for name, (values, valid) in _normalise_labels(labels).items():
        kind = kinds.get(name)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kinds[{name!r}]={kind!r} is not one of {KINDS}")
        v = _as_np(values)
        ok = np.ones(n_rows, bool) if valid is None else _as_np(valid).astype(bool)
        if v.shape[0] != n_rows or ok.shape != (n_rows,):
            raise ValueError(f"label {name!r}: values {v.shape} / valid {ok.shape} must have {n_rows} rows, "
                             f"like the feature matrix")
        cols = [(name, v)] if v.ndim == 1 else [(f"{name}[{j}]", v.reshape(n_rows, -1)[:, j])
                                                for j in range(int(np.prod(v.shape[1:])))]
        for sub, col in cols:
            c = col[ok]
            uniq = np.unique(c)
            if kind == "regression":
                cands = [(sub, "regression", c.astype(np.float64))]
            elif kind == "multiclass":
                cands = [(f"{sub}={int(u)}", "binary", (c == u).astype(np.float64)) for u in uniq]
            elif kind in ("binary", "multilabel") or col.dtype == bool or set(uniq.tolist()) <= {0, 1}:
                cands = [(sub, "binary", (c > 0).astype(np.float64))]
            elif np.issubdtype(col.dtype, np.integer) and len(uniq) <= max_classes:
                cands = [(f"{sub}={int(u)}", "binary", (c == u).astype(np.float64)) for u in uniq]
            else:
                cands = [(sub, "regression", c.astype(np.float64))]
            for nm, kind, vals in cands:
                if kind == "binary" and min(vals.sum(), len(vals) - vals.sum()) < min_count:
                    continue
                if kind == "regression" and (len(vals) < min_count or vals.std() == 0):
                    continue
                out.append(SubLabel(nm, name, kind, vals, ok))
    return out


def _rank_columns(F: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(F, axis=0).astype(np.float64)


def score_matrix(F: Any, subs: list[SubLabel], chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(raw [n_latents, n_sub], score [n_latents, n_sub])``: AUC or r, and |2 AUC - 1| or |r|."""
    F = as_2d_float(F, "features").numpy().astype(np.float64)
    L = F.shape[1]
    raw = np.full((L, len(subs)), np.nan)
    groups: dict[bytes, list[int]] = {}
    for j, s in enumerate(subs):
        groups.setdefault(np.packbits(s.valid).tobytes(), []).append(j)
    for idx in groups.values():
        ok = subs[idx[0]].valid
        Fv = F[ok]
        n = Fv.shape[0]
        bins = [j for j in idx if subs[j].kind == "binary"]
        regs = [j for j in idx if subs[j].kind == "regression"]
        if bins:
            Y = np.stack([subs[j].values for j in bins], 1)
            npos = Y.sum(0)
            for a in range(0, L, chunk):
                R = _rank_columns(Fv[:, a:a + chunk])
                raw[a:a + chunk, bins] = (R.T @ Y - npos * (npos + 1) / 2) / (npos * (n - npos))
        if regs:
            Y = np.stack([subs[j].values for j in regs], 1)
            Yz = (Y - Y.mean(0)) / Y.std(0)
            sd = Fv.std(0)
            Fz = (Fv - Fv.mean(0)) / np.where(sd > 0, sd, 1.0)
            r = Fz.T @ Yz / n
            r[sd == 0] = 0.0
            raw[:, regs] = r
    kinds = np.array([s.kind == "binary" for s in subs])
    score = np.where(kinds[None, :], np.abs(2 * raw - 1), np.abs(raw))
    return raw, np.nan_to_num(score, nan=0.0)


@dataclass
class LabelMatch:
    """Result of :func:`match_labels`.

    Attributes:
        latents: one dict per latent: ``latent, density, best_label, metric ("auc"|"r"), value, score, matched``.
        labels: one dict per sub-label: ``label, kind, metric, best_latent, value, score, n_valid, n_positive``.
        unlabelled: strong latents (density >= ``min_density``) matching no label, strongest first.
        raw / score: ``[n_latents, n_sub]`` matrices; sub_labels: their names.
    """

    latents: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    unlabelled: list[int]
    raw: np.ndarray
    score: np.ndarray
    sub_labels: list[str]
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    def best_per_label(self) -> dict[str, float]:
        """``{sub_label: best score over latents}``."""
        return {r["label"]: r["score"] for r in self.labels}

    def table(self, which: str = "labels") -> Any:
        """``labels`` (one row per sub-label, default) or ``latents`` (one row per latent) as a DataFrame."""
        if which not in ("labels", "latents"):
            raise ValueError(f"which must be 'labels' or 'latents', not {which!r}")
        return frame(getattr(self, which))

    def to_dict(self) -> dict[str, Any]:
        """Plain Python: the per-label and per-latent rows, the unlabelled latents, names and settings."""
        return plain({"labels": self.labels, "latents": self.latents, "unlabelled": self.unlabelled,
                      "sub_labels": self.sub_labels, "threshold": self.threshold, "info": self.info})

    def to_pandas(self, which: str = "labels"):
        """Old name of :meth:`table` (DeprecationWarning)."""
        import warnings

        warnings.warn("LabelMatch.to_pandas() is now .table(); to_pandas goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return self.table(which)

    def __repr__(self) -> str:
        n_match = sum(r["matched"] for r in self.latents)
        return (f"LabelMatch({len(self.latents)} latents, {len(self.sub_labels)} sub-labels; {n_match} latents "
                f"match a label at score >= {self.threshold}; {len(self.unlabelled)} strong latents unlabelled)")


def match_labels(features: Any, labels: Any, threshold: float = 0.5, min_density: float = 0.005,
                 max_classes: int = 64, min_count: int = 5, kinds: Mapping[str, str] | None = None) -> LabelMatch:
    """Best-matching label for every latent, best latent for every label, and the unlabelled strong latents.

    Args:
        features: ``[n_rows, n_latents]`` activations of the latents / components / clusters.
        labels: ``{name: (values [n_rows] or [n_rows, K], valid [n_rows] bool)}`` (``valid`` may be None,
            or give plain values), or an object with ``label_names`` and ``labels(name)``.
        threshold: a latent "matches" a label when its score (``|2 AUC - 1|`` or ``|r|``) reaches this;
            0.5 means AUC >= 0.75 (or <= 0.25) or ``|r| >= 0.5``.
        min_density: a latent is "strong" if non-zero on at least this fraction of rows.
        kinds: optional ``{name: "binary"|"multiclass"|"multilabel"|"regression"}``; inferred otherwise.
    """
    F = as_2d_float(features, "features")
    subs = expand_labels(labels, F.shape[0], max_classes, min_count, kinds)
    if not subs:
        raise ValueError("no usable label: every label had too few valid rows, positives or negatives "
                         f"(min_count={min_count}) or no variance")
    raw, score = score_matrix(F, subs)
    density = (F != 0).float().mean(0).numpy()
    best = score.argmax(1)
    latents = []
    for i in range(F.shape[1]):
        j = int(best[i])
        s = subs[j]
        latents.append({"latent": i, "density": float(density[i]), "best_label": s.name,
                        "metric": "auc" if s.kind == "binary" else "r", "value": float(raw[i, j]),
                        "score": float(score[i, j]), "matched": bool(score[i, j] >= threshold)})
    rows = []
    for j, s in enumerate(subs):
        i = int(score[:, j].argmax())
        rows.append({"label": s.name, "kind": s.kind, "metric": "auc" if s.kind == "binary" else "r",
                     "best_latent": i, "value": float(raw[i, j]), "score": float(score[i, j]),
                     "n_valid": int(s.valid.sum()),
                     "n_positive": int(s.values.sum()) if s.kind == "binary" else None})
    strong = [r for r in latents if r["density"] >= min_density and not r["matched"]]
    unlabelled = [r["latent"] for r in sorted(strong, key=lambda r: -r["density"])]
    return LabelMatch(latents, rows, unlabelled, raw, score, [s.name for s in subs], threshold)


def compare_to_control(results: Mapping[str, LabelMatch]) -> list[dict[str, Any]]:
    """One row per sub-label: the best score each method reached (e.g. ``{"sae": ..., "control": ...}``)."""
    names = list(results)
    subs = results[names[0]].sub_labels
    for k in names[1:]:
        if results[k].sub_labels != subs:
            raise ValueError(f"{k!r} was matched against different labels than {names[0]!r}; use the same labels")
    best = {k: results[k].best_per_label() for k in names}
    return [{"label": s, **{k: best[k][s] for k in names}} for s in subs]


# --------------------------------------------------------------------------- planted features
def plant_feature(X: Any, strength: float = 1.0, frequency: float = 0.05, direction: Any = None,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """Add a known direction to a random ``frequency`` of rows of ``X [n, d]``.

    Magnitude per chosen row: ``strength * rms_row_norm(X) * U[0.5, 1.5)``, so ``strength`` is relative to
    the data's scale. Returns ``X`` (a new tensor), ``direction [d]`` (unit), ``mask [n]`` bool and
    ``magnitude [n]`` (0 where not planted).
    """
    x = as_2d_float(X).clone()
    g = generator(seed, "plant-feature")
    if direction is None:
        direction = torch.randn(x.shape[1], generator=g)
    direction = torch.as_tensor(direction, dtype=torch.float32)
    if direction.shape != (x.shape[1],):
        raise ValueError(f"direction must have shape [{x.shape[1]}], got {tuple(direction.shape)}")
    direction = direction / direction.norm().clamp_min(1e-12)
    mask = torch.rand(x.shape[0], generator=g) < frequency
    rms = x.pow(2).sum(1).mean().sqrt()
    mag = strength * rms * (0.5 + torch.rand(x.shape[0], generator=g)) * mask
    x += mag[:, None] * direction
    return {"X": x, "direction": direction, "mask": mask, "magnitude": mag}


def planted_recall(methods: Mapping[str, Any], X: Any, strengths: tuple[float, ...] = (0.25, 1.0),
                   frequencies: tuple[float, ...] = (0.01, 0.05), cos_threshold: float = 0.9, seed: int = 0
                   ) -> list[dict[str, Any]]:
    """Does each method recover a planted direction? ("Failure to find" is not "absent".)

    Args:
        methods: ``{name: factory}`` where ``factory()`` returns a fresh unfitted estimator with ``fit``,
            ``transform`` and ``dictionary_`` (e.g. ``lambda: SparseAutoencoder(d_sae=256, progress=False)``).
        X: ``[n, d]`` real or toy activations to plant into.
    Returns one row per (method, strength, frequency): ``max_cos`` (best ``|cos|`` between the planted
    direction and the method's dictionary), ``recovered`` (``max_cos >= cos_threshold``), ``best_auc``
    (the best latent's sign-free AUC at telling planted rows from the rest) and ``latent``.
    """
    rows = []
    for s in strengths:
        for f in frequencies:
            p = plant_feature(X, strength=s, frequency=f, seed=seed)
            if int(p["mask"].sum()) < 2:
                raise ValueError(f"frequency={f} plants fewer than 2 rows of {p['X'].shape[0]}; use more rows")
            for name, factory in methods.items():
                est = factory().fit(p["X"])
                cos = (est.dictionary_.float() @ p["direction"]).abs()
                raw, score = score_matrix(est.transform(p["X"]), [SubLabel("planted", "planted", "binary",
                                                                           p["mask"].numpy().astype(float),
                                                                           np.ones(p["X"].shape[0], bool))])
                i = int(score[:, 0].argmax())
                rows.append({"method": name, "strength": s, "frequency": f, "max_cos": float(cos.max()),
                             "recovered": bool(cos.max() >= cos_threshold),
                             "best_auc": float(max(raw[i, 0], 1 - raw[i, 0])), "latent": i})
    return rows
