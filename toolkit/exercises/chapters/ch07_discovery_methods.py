"""Tutorial 07, part 2: *build the unsupervised methods yourself* before the notebook calls ``U.PCA`` and
``U.KMeans`` (CCS is in ``ch07_discovery_methods_ccs``).

Exercises: PCA by SVD (centre, SVD, sklearn's sign convention, explained-variance ratio; checked against
``U.PCA``), Lloyd's k-means (checked against scikit-learn in the tests), the CCS loss of many probes at once
(``U.CCS._loss``), the CCS optimiser with random restarts (``U.CCS.fit`` given the same initial probes) and the
sign ambiguity (choose the sign with a few labels, then score honestly on the rest).
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit.exercises.compare import diff_tensor
from toolkit.exercises.core import Mistake, function_exercise

Tensor = torch.Tensor


# --- references -------------------------------------------------------------------------------------------


def pca(X: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The top ``k`` principal components of ``X [n, d]``, as scikit-learn's (and ``U.PCA``'s) ``PCA``.

    Centre the columns, take the SVD ``Xc = U S Vt``; the components are the first ``k`` rows of ``Vt``, each with
    its sign flipped so that its largest-magnitude entry is positive (sklearn's ``svd_flip`` convention). The
    explained-variance ratio of component ``i`` is ``S_i^2 / sum_j S_j^2`` (over *all* components).
    Returns ``(components [k, d], explained_variance_ratio [k])``.
    """
    from toolkit.unsupervised import PCA

    fitted = PCA(n_components=k).fit(X)
    return fitted.dictionary_.clone(), fitted.explained_variance_ratio_.clone()


def lloyd_kmeans(X: Tensor, init: Tensor, n_iter: int) -> tuple[Tensor, Tensor]:
    """``n_iter`` rounds of Lloyd's algorithm from the centroids ``init [k, d]`` on ``X [n, d]``: assign every row to
    its nearest centroid (Euclidean), then move each centroid to the mean of its rows (a centroid with no rows
    stays put). Stop early when no assignment changes. Returns ``(centroids [k, d], labels [n])``, the labels being
    the nearest final centroid of each row."""
    c = init.clone()
    labels = torch.cdist(X, c).argmin(1)
    for _ in range(n_iter):
        sums = torch.zeros_like(c).index_add_(0, labels, X)
        counts = torch.bincount(labels, minlength=c.shape[0])
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
        new = torch.cdist(X, c).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
    return c, labels


# --- plausible mistakes -----------------------------------------------------------------------------------


def _pca_torch(X, k, centre=True, square=True, all_components=True, flip="max"):
    Xc = X.double() - X.double().mean(0) if centre else X.double()
    _, S, Vt = torch.linalg.svd(Xc, full_matrices=False)
    idx = Vt.abs().argmax(1) if flip == "max" else torch.zeros(Vt.shape[0], dtype=torch.long)
    Vt = Vt * torch.sign(Vt.gather(1, idx[:, None]))
    var = S.pow(2) if square else S
    ratio = var / (var.sum() if all_components else var[:k].sum())
    return Vt[:k].float(), ratio[:k].float()


def _pca_no_centre(X, k):
    return _pca_torch(X, k, centre=False)


def _pca_singular_values(X, k):
    return _pca_torch(X, k, square=False)


def _pca_ratio_of_k(X, k):
    return _pca_torch(X, k, all_components=False)


def _pca_first_entry_sign(X, k):
    return _pca_torch(X, k, flip="first")


def _lloyd(X, init, n_iter, one_step=False, median=False):
    c = init.clone()
    labels = torch.cdist(X, c).argmin(1)
    for _ in range(1 if one_step else n_iter):
        new_c = c.clone()
        for j in range(c.shape[0]):
            rows = X[labels == j]
            if len(rows):
                new_c[j] = rows.median(0).values if median else rows.mean(0)
        c = new_c
        new = torch.cdist(X, c).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
    return c, labels


def _lloyd_one_step(X, init, n_iter):
    return _lloyd(X, init, n_iter, one_step=True)


def _lloyd_stale_labels(X, init, n_iter):
    c, _ = lloyd_kmeans(X, init, n_iter)
    prev, _ = lloyd_kmeans(X, init, max(n_iter - 1, 0))
    return c, torch.cdist(X, prev).argmin(1)


def _lloyd_median(X, init, n_iter):
    return _lloyd(X, init, n_iter, median=True)


# --- cases ------------------------------------------------------------------------------------------------


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pca_cases():
    g = _g(740)
    mix = torch.randn(6, 6, generator=g)
    X1 = (torch.randn(200, 6, generator=g) * torch.tensor([3.0, 2.0, 1.5, 1.0, 0.5, 0.2])) @ mix + 4.0
    X2 = torch.randn(120, 10, generator=g) * torch.linspace(2.0, 0.3, 10) - torch.linspace(-3, 3, 10)
    return [("200 rows, 6 dimensions, an offset, k=3", (X1, 3)), ("120 rows, 10 dimensions, k=4", (X2, 4))]


def _kmeans_cases():
    g = _g(741)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    X = torch.cat([c + 0.8 * torch.randn(30, 2, generator=g) for c in centres])
    X3 = torch.cat([c + 1.5 * torch.randn(40, 3, generator=g) for c in 3 * torch.eye(3)])
    return [("90 rows in 3 blobs, a poor start, 10 rounds", (X, torch.tensor([[0.0, 0.5], [0.5, 0.0], [0.2, 0.2]]),
                                                            10)),
            ("120 overlapping rows in 3-d, 2 rounds", (X3, X3[[0, 1, 2]].clone(), 2))]


# --- comparisons ------------------------------------------------------------------------------------------


def _cmp_pca(got: Any, expected: tuple[Tensor, Tensor], args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(components, explained_variance_ratio)`"
    return (diff_tensor(got[0], expected[0], name="components", atol=1e-3)
            or diff_tensor(got[1], expected[1], name="explained_variance_ratio", atol=1e-4))


def _cmp_kmeans(got: Any, expected: tuple[Tensor, Tensor], args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(centroids, labels)`"
    return (diff_tensor(got[0], expected[0], name="centroids", atol=1e-4)
            or diff_tensor(got[1], expected[1], name="labels"))


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "07.pca", title="PCA by SVD", difficulty=3, importance=4, minutes=15,
    reference=pca, cases=_pca_cases, compare=_cmp_pca,
    hints=["PCA is an SVD of the *centred* data: the right singular vectors are the directions, the squared singular "
           "values their variances. An SVD's signs are arbitrary, so libraries fix a convention.",
           "Centre with the column means, use `torch.linalg.svd(Xc, full_matrices=False)`, keep the first k rows of "
           "Vt, and make each row's largest-magnitude entry positive; divide squared singular values by the sum of "
           "*all* of them.",
           "`idx = Vt.abs().argmax(1)`, `Vt = Vt * torch.sign(Vt.gather(1, idx[:, None]))`, "
           "`ratio = S.pow(2) / S.pow(2).sum()`; return `(Vt[:k], ratio[:k])`."],
    mistakes=[Mistake("centre the data (subtract each column's mean) before the SVD", _pca_no_centre),
              Mistake("the variance along a component is the *squared* singular value", _pca_singular_values),
              Mistake("divide by the total variance of all components, not only of the first k", _pca_ratio_of_k),
              Mistake("sklearn's convention makes each component's *largest-magnitude* entry positive, not its first "
                      "entry", _pca_first_entry_sign)],
)

function_exercise(
    "07.lloyd_kmeans", title="k-means by Lloyd's algorithm", difficulty=3, importance=3, minutes=15,
    reference=lloyd_kmeans, cases=_kmeans_cases, compare=_cmp_kmeans,
    hints=["Alternate two steps: give every row to its nearest centroid, then move every centroid to the middle of "
           "its rows; stop when the assignment no longer changes.",
           "`torch.cdist(X, c).argmin(1)` assigns; a centroid is the *mean* of its rows (keep it where it is if it "
           "has none); the labels you return belong to the final centroids.",
           "In the loop: `sums = torch.zeros_like(c).index_add_(0, labels, X)`, `counts = torch.bincount(labels, "
           "minlength=k)`, `c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)`, then "
           "`new = torch.cdist(X, c).argmin(1)`; break if `torch.equal(new, labels)`, else `labels = new`."],
    mistakes=[Mistake("repeat the two steps up to n_iter times (until no assignment changes), not once",
                      _lloyd_one_step),
              Mistake("return the labels of the *final* centroids: re-assign after the last move", _lloyd_stale_labels),
              Mistake("move each centroid to the *mean* of its rows (k-means minimises squared distances)",
                      _lloyd_median)],
)



# --- open question (reference answer written with the notebook's numbers; shown after an attempt) -------------
