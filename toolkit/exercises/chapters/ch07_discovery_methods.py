"""Tutorial 07, part 2: *build the unsupervised methods yourself* before the notebook calls ``U.PCA``,
``U.KMeans`` and ``U.CCS``.

Exercises: PCA by SVD (centre, SVD, sklearn's sign convention, explained-variance ratio; checked against
``U.PCA``), Lloyd's k-means (checked against scikit-learn in the tests), the CCS loss of many probes at once
(``U.CCS._loss``), the CCS optimiser with random restarts (``U.CCS.fit`` given the same initial probes) and the
sign ambiguity (choose the sign with a few labels, then score honestly on the rest).
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit._threads import torch_threads
from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise
from toolkit.exercises.questions import question

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


def ccs_probe_losses(a: Tensor, b: Tensor, w: Tensor, bias: Tensor) -> Tensor:
    """The CCS loss of ``r`` probes at once, as ``U.CCS``: ``a, b [n, d]`` are the normalised positive / negative
    sides, probe ``j`` is ``p = sigmoid(x @ w[:, j] + bias[j])`` (``w [d, r]``, ``bias [r]``).
    Returns ``[r]``: each probe's ``mean_n (p+ - (1 - p-))^2 + mean_n min(p+, p-)^2``."""
    from toolkit.unsupervised import CCS

    return CCS._loss(a, b, w, bias)


def fit_ccs(x_pos: Tensor, x_neg: Tensor, w0: Tensor, n_epochs: int, lr: float,
            weight_decay: float) -> tuple[Tensor, float, Tensor]:
    """CCS with random restarts, as ``U.CCS.fit``: normalise each side (06's ``normalise_pairs``), start the ``r``
    probes at ``w0 [d, r]`` with biases 0, train all of them together with ``torch.optim.AdamW(lr, weight_decay)``
    for ``n_epochs`` full-batch steps on the *sum* of their losses; then keep the probe with the lowest final loss.
    Returns ``(direction [d], bias, final losses [r])``."""
    a = (x_pos - x_pos.mean(0)) / x_pos.std(0).clamp_min(1e-6)
    b = (x_neg - x_neg.mean(0)) / x_neg.std(0).clamp_min(1e-6)
    w = w0.clone().requires_grad_(True)
    bias = torch.zeros(w0.shape[1], requires_grad=True)
    opt = torch.optim.AdamW([w, bias], lr=lr, weight_decay=weight_decay)
    with torch_threads(1):  # tiny matrices: one thread, as U.CCS (much faster on a shared machine)
        for _ in range(n_epochs):
            losses = ccs_probe_losses(a, b, w, bias)
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
    with torch.no_grad():
        losses = ccs_probe_losses(a, b, w, bias)
    best = int(losses.argmin())
    return w.detach()[:, best].clone(), float(bias.detach()[best]), losses.detach()


def resolve_sign(p: Tensor, y: Tensor, labelled: Tensor) -> tuple[bool, float]:
    """CCS cannot tell true from false: its probe may come out upside down. Predict ``p > 0.5`` from the
    probabilities ``p [n]``; use only the ``labelled [n]`` rows (bool) and their labels ``y [n]`` (bool) to decide
    whether to flip the predictions (flip when fewer than half of the labelled rows are right). Return
    ``(flipped, accuracy)``, the accuracy of the (possibly flipped) predictions on the *unlabelled* rows, with no
    further ``max(acc, 1 - acc)``."""
    pred = p > 0.5
    flipped = bool((pred[labelled] == y[labelled]).float().mean() < 0.5)
    if flipped:
        pred = ~pred
    return flipped, float((pred[~labelled] == y[~labelled]).float().mean())


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


def _ccs_losses(a, b, w, bias, sigmoid=True, use_bias=True, consistency_diff=False, axis=0):
    z_a, z_b = a @ w + (bias if use_bias else 0), b @ w + (bias if use_bias else 0)
    p_pos, p_neg = (torch.sigmoid(z_a), torch.sigmoid(z_b)) if sigmoid else (z_a, z_b)
    cons = (p_pos - p_neg) if consistency_diff else (p_pos - (1 - p_neg))
    return cons.pow(2).mean(axis) + torch.minimum(p_pos, p_neg).pow(2).mean(axis)


def _ccs_no_sigmoid(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, sigmoid=False)


def _ccs_no_bias(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, use_bias=False)


def _ccs_loss_over_probes(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, axis=1)


def _ccs_diff(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, consistency_diff=True)


def _fit(x_pos, x_neg, w0, n_epochs, lr, weight_decay, pick=torch.argmin, normalise=True, only_first=False,
         adam=False):
    if normalise:
        a = (x_pos - x_pos.mean(0)) / x_pos.std(0).clamp_min(1e-6)
        b = (x_neg - x_neg.mean(0)) / x_neg.std(0).clamp_min(1e-6)
    else:
        a, b = x_pos, x_neg
    w = (w0[:, :1] if only_first else w0).clone().requires_grad_(True)
    bias = torch.zeros(w.shape[1], requires_grad=True)
    opt = (torch.optim.Adam if adam else torch.optim.AdamW)([w, bias], lr=lr, weight_decay=weight_decay)
    with torch_threads(1):
        for _ in range(n_epochs):
            losses = ccs_probe_losses(a, b, w, bias)
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
    with torch.no_grad():
        losses = ccs_probe_losses(a, b, w, bias)
    best = int(pick(losses))
    if only_first:
        losses = losses.expand(w0.shape[1])
    return w.detach()[:, best].clone(), float(bias.detach()[best]), losses.detach()


def _fit_argmax(*args):
    return _fit(*args, pick=torch.argmax)


def _fit_unnormalised(*args):
    return _fit(*args, normalise=False)


def _fit_first_restart(*args):
    return _fit(*args, only_first=True)


def _fit_adam(*args):
    return _fit(*args, adam=True)


def _sign_max(p, y, labelled):
    pred = p > 0.5
    acc = float((pred[~labelled] == y[~labelled]).float().mean())
    flipped = acc < 0.5
    return flipped, max(acc, 1 - acc)


def _sign_scores_labelled_too(p, y, labelled):
    pred = p > 0.5
    flipped = bool((pred[labelled] == y[labelled]).float().mean() < 0.5)
    pred = ~pred if flipped else pred
    return flipped, float((pred == y).float().mean())


def _sign_never_flips(p, y, labelled):
    pred = p > 0.5
    return False, float((pred[~labelled] == y[~labelled]).float().mean())


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


def _probe_cases():
    g = _g(742)
    a, b = torch.randn(25, 6, generator=g), torch.randn(25, 6, generator=g)
    return [("25 pairs, 6 dimensions, 4 probes", (a, b, torch.randn(6, 4, generator=g), torch.randn(4, generator=g))),
            ("10 pairs, 3 dimensions, 7 probes", (a[:10, :3], b[:10, :3], 2 * torch.randn(3, 7, generator=g),
                                                  0.5 * torch.randn(7, generator=g)))]


def _fit_cases():
    from toolkit.unsupervised import make_contrast_pairs

    data = make_contrast_pairs(n=40, d=8, truth_strength=1.5, seed=3)
    w0 = torch.randn(8, 5, generator=_g(743)) / 8 ** 0.5
    return [("40 contrast pairs, 8 dimensions, 5 restarts, 100 epochs",
             (data["x_pos"], data["x_neg"], w0, 100, 0.02, 0.01))]


def _sign_cases():
    g = _g(744)
    y = torch.rand(40, generator=g) < 0.5
    p = torch.where(y, 0.2, 0.8) + 0.1 * torch.randn(40, generator=g)  # an upside-down probe
    p[::7] = 1 - p[::7]  # with a few mistakes
    labelled = torch.zeros(40, dtype=torch.bool)
    labelled[:6] = True
    y2 = torch.rand(30, generator=g) < 0.5
    p2 = torch.rand(30, generator=g)  # a useless probe: chance on the held-out rows
    lab2 = torch.zeros(30, dtype=torch.bool)
    lab2[[0, 3, 5, 8]] = True
    p2[lab2] = torch.where(y2[lab2], 0.9, 0.1)  # ... which happens to be right on the labelled rows
    p2[~lab2] = torch.where(y2[~lab2], 0.3, 0.7)
    p2[~lab2 & (torch.arange(30) % 3 == 0)] = 1 - p2[~lab2 & (torch.arange(30) % 3 == 0)]
    return [("an upside-down probe, 6 of 40 rows labelled", (p, y, labelled)),
            ("a probe that looks right on 4 labelled rows and is wrong on most others", (p2, y2, lab2))]


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


def _cmp_losses(got: Any, expected: Tensor, args: tuple) -> str | None:
    return diff_tensor(got, expected, name="losses", atol=1e-5)


def _cmp_fit(got: Any, expected: tuple, args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return "return a tuple `(direction, bias, losses)`"
    return (diff_tensor(got[0], expected[0], name="direction", atol=1e-4)
            or diff_value(float(got[1]) if isinstance(got[1], torch.Tensor) else got[1], expected[1], name="bias",
                          tol=1e-4)
            or diff_tensor(got[2], expected[2], name="losses", atol=1e-4))


def _cmp_sign(got: Any, expected: tuple[bool, float], args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(flipped, accuracy)`"
    flipped = bool(got[0]) if isinstance(got[0], (bool, torch.Tensor)) else got[0]
    acc = float(got[1]) if isinstance(got[1], torch.Tensor) else got[1]
    return diff_value((flipped, acc), expected, name="(flipped, accuracy)", tol=1e-6)


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

function_exercise(
    "07.ccs_probe_losses", title="The CCS loss of many probes at once", difficulty=2, importance=3, minutes=8,
    reference=ccs_probe_losses, cases=_probe_cases, compare=_cmp_losses,
    hints=["Each column of w is one probe (one random restart); compute every probe's probabilities on both sides in "
           "one matrix product, then 07.ccs_loss per column.",
           "The probabilities are `[n, r]`: a sigmoid of the projections plus the bias; average over the pairs "
           "(dim 0), keeping one loss per probe.",
           "`p_pos, p_neg = torch.sigmoid(a @ w + bias), torch.sigmoid(b @ w + bias)`, then `(p_pos - (1 - "
           "p_neg)).pow(2).mean(0) + torch.minimum(p_pos, p_neg).pow(2).mean(0)`."],
    mistakes=[Mistake("turn the projections into probabilities with a sigmoid first", _ccs_no_sigmoid),
              Mistake("add each probe's bias to its projections", _ccs_no_bias),
              Mistake("average over the pairs (dim 0): one loss per probe", _ccs_loss_over_probes),
              Mistake("consistency compares p+ with 1 - p-, not with p-", _ccs_diff)],
)

function_exercise(
    "07.fit_ccs", title="CCS with random restarts", difficulty=4, importance=4, minutes=20,
    reference=fit_ccs, cases=_fit_cases, compare=_cmp_fit,
    hints=["CCS's loss has bad local minima, so train several probes from different starts and keep the best. "
           "Normalise the two sides first, or the probe will read off the answer token.",
           "Normalise each side with its own mean and std; make `w = w0.clone().requires_grad_(True)` and a zero "
           "bias per probe; one AdamW on both; each epoch backpropagates the *sum* of the probes' losses "
           "(they do not interact). After training, evaluate the losses once more and pick the smallest.",
           "`losses = ccs_probe_losses(a, b, w, bias)`, `opt.zero_grad(); losses.sum().backward(); opt.step()`; "
           "after the loop `best = int(losses.argmin())`, return `(w.detach()[:, best], float(bias[best]), "
           "losses.detach())`."],
    mistakes=[Mistake("keep the probe with the *lowest* loss", _fit_argmax),
              Mistake("normalise each side (its own mean and std) before training", _fit_unnormalised),
              Mistake("train every column of w0 (one per restart), not only the first", _fit_first_restart),
              Mistake("use `torch.optim.AdamW` (with weight decay), as U.CCS does", _fit_adam)],
)

function_exercise(
    "07.resolve_sign", title="Resolve CCS's sign with a few labels", difficulty=3, importance=4, minutes=10,
    reference=resolve_sign, cases=_sign_cases, compare=_cmp_sign,
    hints=["A probe and its negation have the same CCS loss, so CCS cannot know which side is true. A handful of "
           "labels can tell you; the accuracy you report must then come from rows those labels did not touch.",
           "Decide the flip on the labelled rows only; then measure the accuracy on the other rows, as it is. "
           "Reporting max(acc, 1 - acc) there would choose the sign with the test labels.",
           "`pred = p > 0.5`, `flipped = bool((pred[labelled] == y[labelled]).float().mean() < 0.5)`, flip `pred` "
           "if so, and return `(flipped, float((pred[~labelled] == y[~labelled]).float().mean()))`."],
    mistakes=[Mistake("you chose the sign with the test labels (max(acc, 1 - acc) on the unlabelled rows): decide "
                      "the flip on the labelled rows only", _sign_max),
              Mistake("measure the accuracy on the *unlabelled* rows (the labelled ones chose the sign)",
                      _sign_scores_labelled_too),
              Mistake("flip the predictions when fewer than half of the labelled rows are right", _sign_never_flips)],
)


# --- open question (reference answer written with the notebook's numbers; shown after an attempt) -------------


def _absent_distance(plant_cos: dict[float, float], plant_acc: dict[float, float], sae_scores: dict[str, float],
                     random_scores: dict[str, float]) -> str:
    weakest = min(plant_cos)
    missed = [s for s in sorted(plant_cos) if plant_cos[s] < 0.9]
    low = sorted(k for k in sae_scores if sae_scores[k] < 0.5)
    return (f"(1) The SAE's sensitivity. In section 7 a feature planted at strength {weakest} reached only |cos| "
            f"{plant_cos[weakest]:.2f} with the best latent (missed at strengths {missed}), while a supervised probe "
            f"detected it with accuracy {plant_acc[weakest]:.1%}. Run the same recall test at the strength and "
            f"frequency you expect distance to have, and check the SAE is trained to convergence in a sensible L0 "
            f"range. (2) The representation: distance may be stored non-linearly or spread over several latents "
            f"(one per distance value or per cell), so no single latent correlates with the scalar; fit a supervised "
            f"probe at the same layer and positions, against its trivial baseline (tutorial 04). Here the labels "
            f"{low} scored below 0.5 for the SAE too, which section 7 says is not absence. (3) The place: the right "
            f"layer and positions, with rows restricted so that tokens and positions (which scored "
            f"{min(sae_scores['token'], sae_scores['position']):.2f} or more even on this model and "
            f"{min(random_scores['token'], random_scores['position']):.2f} or more on the random-init one) do not "
            f"take all the latents; and compare with the random-init model so that whatever you find is learned.")


question("07.absent_distance", _absent_distance)
