"""Contrast-Consistent Search (Burns et al. 2022), its baselines, and the distractor demonstration.

Data are contrast pairs: ``x_pos [n, d]`` / ``x_neg [n, d]``, activations for the same statement
completed with "yes" / "no" (or any binary contrast). CCS looks for a direction whose probability is
*consistent* (``p(x+) ≈ 1 - p(x-)``) and *confident*, with no labels; its sign is therefore unknowable
without labels, and accuracies are reported as ``max(acc, 1 - acc)``.

Baselines that matter (:func:`contrast_baselines`): the top principal component of the normalised
differences (recovers most of CCS's accuracy), 2-means on the differences, a random direction (chance,
with the same sign freedom) and a supervised logistic regression (the ceiling).

Farquhar et al. (2023): any binary feature that flips between the two sides satisfies CCS's
consistency, so a salient irrelevant one ("banana/shed") captures CCS, PCA and k-means.
:func:`distractor_demo` builds such data with a planted distractor and reports what each method found.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit._estimator import DEPRECATED, Estimator, check_array, check_targets, resolve_threads
from toolkit._threads import torch_threads
from toolkit.unsupervised.train import generator


def _pair(x_pos: Any, x_neg: Any, n_features: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked float32 ``x_pos, x_neg [n, d]`` (same shape; ``d == n_features`` when given)."""
    a, _ = check_array(x_pos, "x_pos", n_features=n_features, fitted="this CCS")
    b, _ = check_array(x_neg, "x_neg", n_features=n_features, fitted="this CCS")
    if a.shape != b.shape:
        raise ValueError(f"x_pos {tuple(a.shape)} and x_neg {tuple(b.shape)} must have the same shape")
    return a, b


def _acc(pred: torch.Tensor, y: Any) -> float:
    """Sign-free accuracy: ``max(acc, 1 - acc)``."""
    y = check_targets(y, pred.shape[0]).bool().flatten()
    acc = float((pred.bool() == y).float().mean())
    return max(acc, 1.0 - acc)


class CCS(Estimator):
    """Contrast-Consistent Search.

    Loss per pair: ``(p+ - (1 - p-))^2 + min(p+, p-)^2`` with ``p = sigmoid(w . x + b)`` on per-side
    normalised activations (each side centred, and scaled per dimension when ``var_normalize``). All
    ``n_restarts`` probes train in parallel (AdamW, full batch); the one with the lowest loss is kept.

    ``threads``: torch threads while fitting (None leaves the caller's setting; it is restored after;
    ``n_threads`` is its deprecated old name).
    Learned attributes: ``direction_ [d]``, ``bias_``, ``loss_`` (best), ``losses_ [n_restarts]``,
    ``n_features_in_`` (d).
    """

    def __init__(self, n_restarts: int = 10, n_epochs: int = 1000, lr: float = 1e-3, weight_decay: float = 0.01,
                 var_normalize: bool = True, seed: int = 0, progress: bool = False, threads: int | None = 1,
                 n_threads: Any = DEPRECATED):
        self.n_restarts, self.n_epochs, self.lr, self.weight_decay = n_restarts, n_epochs, lr, weight_decay
        self.var_normalize, self.seed, self.progress, self.threads = var_normalize, seed, progress, threads
        self.n_threads = n_threads

    def _norm(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (a - self.mean_pos_) / self.std_pos_, (b - self.mean_neg_) / self.std_neg_

    def fit(self, x_pos: Any, x_neg: Any, y: Any = None) -> CCS:
        """Fit on contrast pairs; ``y`` is ignored (CCS is unsupervised)."""
        from tqdm.auto import tqdm

        a, b = _pair(x_pos, x_neg)
        if a.shape[0] < 2:
            raise ValueError("CCS needs at least 2 contrast pairs")
        threads = self._threads()
        self.n_features_in_ = a.shape[1]
        one = torch.ones(a.shape[1])
        self.mean_pos_, self.mean_neg_ = a.mean(0), b.mean(0)
        self.std_pos_ = a.std(0).clamp_min(1e-6) if self.var_normalize else one
        self.std_neg_ = b.std(0).clamp_min(1e-6) if self.var_normalize else one
        a, b = self._norm(a, b)
        g = generator(self.seed, "ccs-init")
        d, r = a.shape[1], self.n_restarts
        w = (torch.randn(d, r, generator=g) / d ** 0.5).requires_grad_(True)
        bias = torch.zeros(r, requires_grad=True)
        opt = torch.optim.AdamW([w, bias], lr=self.lr, weight_decay=self.weight_decay)
        # tiny matrices: one thread is much faster than two on a shared machine (7.7 s vs 90 s measured)
        with torch_threads(threads, blas=True):
            for _ in tqdm(range(self.n_epochs), desc="CCS", disable=not self.progress):
                losses = self._loss(a, b, w, bias)
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()
                opt.step()
            with torch.no_grad():
                losses = self._loss(a, b, w, bias)
        best = int(losses.argmin())
        self.losses_ = losses.detach()
        self.loss_ = float(losses[best])
        self.direction_ = w.detach()[:, best].clone()
        self.bias_ = float(bias.detach()[best])
        return self

    @staticmethod
    def _loss(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        p_pos, p_neg = torch.sigmoid(a @ w + bias), torch.sigmoid(b @ w + bias)
        consistency = (p_pos - (1 - p_neg)).pow(2).mean(0)
        confidence = torch.minimum(p_pos, p_neg).pow(2).mean(0)
        return consistency + confidence  # [n_restarts]

    def predict_proba(self, x_pos: Any, x_neg: Any) -> torch.Tensor:
        """``[n]`` the averaged confidence ``(p+ + 1 - p-) / 2`` (its sign convention is arbitrary)."""
        self._check_fitted("direction_", "call .fit(x_pos, x_neg) first")
        a, b = self._norm(*_pair(x_pos, x_neg, self.n_features_in_))
        p_pos = torch.sigmoid(a @ self.direction_ + self.bias_)
        p_neg = torch.sigmoid(b @ self.direction_ + self.bias_)
        return 0.5 * (p_pos + 1 - p_neg)

    def predict(self, x_pos: Any, x_neg: Any) -> torch.Tensor:
        return self.predict_proba(x_pos, x_neg) > 0.5

    def score(self, x_pos: Any, x_neg: Any, y: Any) -> float:
        """Sign-free accuracy ``max(acc, 1 - acc)`` against binary labels ``y [n]``."""
        return _acc(self.predict(x_pos, x_neg), y)


def _normalised_diffs(a: torch.Tensor, b: torch.Tensor, ref: tuple[torch.Tensor, torch.Tensor] | None = None):
    ref_a, ref_b = ref if ref is not None else (a, b)
    na = (a - ref_a.mean(0)) / ref_a.std(0).clamp_min(1e-6)
    nb = (b - ref_b.mean(0)) / ref_b.std(0).clamp_min(1e-6)
    return na - nb


def contrast_baselines(x_pos: Any, x_neg: Any, targets: dict[str, Any] | Any, test_fraction: float = 0.5,
                       n_random: int = 20, seed: int = 0, ccs_params: dict[str, Any] | None = None,
                       threads: int | None = 1, n_threads: Any = DEPRECATED) -> dict[str, dict[str, float]]:
    """Fit every method on a train split (unsupervised ones ignore labels) and score on the test split.

    Args:
        targets: binary labels ``[n]`` or a dict ``name -> [n]`` of candidate features (e.g. ``truth``
            and a ``distractor``); each method is scored against each.
    Returns ``{method: {target: sign-free test accuracy}}`` for ``ccs``, ``pca_diff`` (top principal
    component of normalised differences), ``kmeans_diff`` (2-means on them), ``random`` (mean over
    ``n_random`` random directions) and ``logistic`` (supervised ceiling, trained on each target).
    ``threads``: threads while fitting (1 is much faster for these sizes on a shared machine; ``n_threads`` is
    its deprecated old name).
    """
    with torch_threads(resolve_threads(threads, n_threads, "contrast_baselines"), blas=True):
        return _contrast_baselines(x_pos, x_neg, targets, test_fraction, n_random, seed, ccs_params)


def _contrast_baselines(x_pos, x_neg, targets, test_fraction, n_random, seed, ccs_params):
    from sklearn.cluster import KMeans as _KMeans
    from sklearn.linear_model import LogisticRegression

    a, b = _pair(x_pos, x_neg)
    if not isinstance(targets, dict):
        targets = {"label": targets}
    ys = {k: check_targets(v, a.shape[0], f"target {k!r}").bool().flatten() for k, v in targets.items()}
    g = generator(seed, "contrast-split")
    perm = torch.randperm(a.shape[0], generator=g)
    n_test = max(1, int(round(test_fraction * a.shape[0])))
    te, tr = perm[:n_test], perm[n_test:]
    if tr.numel() < 2:
        raise ValueError("too few pairs left for training; lower test_fraction or add pairs")
    d_tr = _normalised_diffs(a[tr], b[tr])
    d_te = _normalised_diffs(a[te], b[te], ref=(a[tr], b[tr]))
    centre = d_tr.mean(0)
    preds: dict[str, torch.Tensor] = {}
    ccs = CCS(seed=seed, **(ccs_params or {})).fit(a[tr], b[tr])
    preds["ccs"] = ccs.predict(a[te], b[te])
    top = torch.linalg.svd(d_tr - centre, full_matrices=False).Vh[0]
    preds["pca_diff"] = (d_te - centre) @ top > 0
    km = _KMeans(2, n_init=5, random_state=seed).fit(d_tr.numpy())
    preds["kmeans_diff"] = torch.from_numpy(km.predict(d_te.numpy())).bool()
    out = {m: {k: _acc(p, y[te]) for k, y in ys.items()} for m, p in preds.items()}
    rand = torch.randn(n_random, a.shape[1], generator=g)
    out["random"] = {k: float(sum(_acc((d_te - centre) @ r > 0, y[te]) for r in rand) / n_random)
                     for k, y in ys.items()}
    out["logistic"] = {}
    for k, y in ys.items():
        if y[tr].unique().numel() < 2:
            out["logistic"][k] = float("nan")
            continue
        clf = LogisticRegression(max_iter=2000).fit(d_tr.numpy(), y[tr].numpy())
        out["logistic"][k] = float((torch.from_numpy(clf.predict(d_te.numpy())) == y[te]).float().mean())
    return out


def make_contrast_pairs(n: int = 1000, d: int = 64, truth_strength: float = 1.0, distractor_strength: float = 0.0,
                        answer_strength: float = 3.0, content_scale: float = 3.0, noise: float = 1.0,
                        seed: int = 0) -> dict[str, torch.Tensor]:
    """Synthetic contrast-pair activations with a truth feature and an optional planted distractor.

    For pair i with truth ``y_i`` and distractor bit ``z_i`` (both random):
    ``x± = content_i ± answer_strength·v ± truth_strength·(2y_i-1)·u ± distractor_strength·(2z_i-1)·w
    + noise``: shared statement content (anisotropic, orthogonal to u, v, w; cancels in differences),
    an answer-token direction
    ``v`` (constant per side; removed by per-side normalisation), the truth ``u``, and a distractor ``w``
    that flips between sides exactly like truth does (Farquhar et al.'s "banana/shed").

    Returns ``x_pos, x_neg [n, d]``, ``truth, distractor [n]`` (bool) and ``directions [3, d]`` (u, v, w).
    """
    g = generator(seed, "contrast-pairs")
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    u, v, w = q[:, 0], q[:, 1], q[:, 2]
    y = torch.rand(n, generator=g) < 0.5
    z = torch.rand(n, generator=g) < 0.5
    spectrum = content_scale * torch.linspace(1.0, 0.1, d - 3)  # statement content avoids u, v, w
    content = (torch.randn(n, d - 3, generator=g) * spectrum) @ q[:, 3:].T
    signal = (answer_strength * v + truth_strength * (2 * y.float() - 1)[:, None] * u
              + distractor_strength * (2 * z.float() - 1)[:, None] * w)
    x_pos = content + signal + noise * torch.randn(n, d, generator=g)
    x_neg = content - signal + noise * torch.randn(n, d, generator=g)
    return {"x_pos": x_pos, "x_neg": x_neg, "truth": y, "distractor": z, "directions": torch.stack([u, v, w])}


def distractor_demo(distractor_strengths: tuple[float, ...] = (0.0, 3.0), n: int = 1000, d: int = 64,
                    truth_strength: float = 1.0, seed: int = 0, ccs_params: dict[str, Any] | None = None,
                    min_accuracy: float = 0.75) -> list[dict[str, Any]]:
    """Farquhar et al. (2023): does a salient irrelevant binary feature hijack the unsupervised methods?

    For each distractor strength, builds :func:`make_contrast_pairs` data and runs
    :func:`contrast_baselines` against ``truth`` and ``distractor``. Returns one row per (strength, method):
    ``{distractor_strength, method, acc_truth, acc_distractor, latched_onto}`` where ``latched_onto`` is
    ``"truth"``, ``"distractor"`` or ``"neither"`` (both accuracies below ``min_accuracy``), and
    ``"supervised"`` for the logistic ceiling (trained on each target separately, so it latches onto
    whatever it is told). With no distractor the distractor bit is still drawn, unrelated to the data,
    so ``acc_distractor`` shows chance for reference.
    """
    rows = []
    for s in distractor_strengths:
        data = make_contrast_pairs(n=n, d=d, truth_strength=truth_strength, distractor_strength=s, seed=seed)
        res = contrast_baselines(data["x_pos"], data["x_neg"], {"truth": data["truth"],
                                                                "distractor": data["distractor"]},
                                 seed=seed, ccs_params=ccs_params)
        for method, accs in res.items():
            t, dd = accs["truth"], accs["distractor"]
            latched = "neither" if max(t, dd) < min_accuracy else ("truth" if t >= dd else "distractor")
            if method == "logistic":
                latched = "supervised"
            rows.append({"distractor_strength": s, "method": method, "acc_truth": t, "acc_distractor": dd,
                         "latched_onto": latched})
    return rows
