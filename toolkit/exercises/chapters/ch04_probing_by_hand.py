"""Tutorial 04, *Probing for search state*, part 2: the learner builds the probe that ``probes.LogisticProbe``
fits (standardisation with training statistics, L2-regularised logistic regression by gradient descent, the
honest held-out score) and the trivial current-token baseline.

Cases are seeded synthetic activations whose scales and offsets differ per feature and between the training and
test rows, so standardising with the wrong statistics, forgetting the penalty or scoring on the training rows
gives a clearly different answer. The gradient-descent fit is compared with ``LogisticProbe`` (L-BFGS on the
same objective) within a tolerance on the predicted probabilities.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise
from toolkit.exercises.questions import question

# --- references -------------------------------------------------------------------------------------------


def standardize(X_train: torch.Tensor, X_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets scaled with the *training* rows' per-feature mean and standard deviation (population std,
    ``unbiased=False``; a feature that is constant in training, std < 1e-6, is divided by 1).
    X_train [n, d], X_test [m, d] -> ([n, d], [m, d])."""
    mean = X_train.mean(0)
    std = X_train.std(0, unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return (X_train - mean) / std, (X_test - mean) / std


def fit_logistic(X: torch.Tensor, y: torch.Tensor, n_classes: int, C: float = 1.0, steps: int = 500,
                 lr: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch gradient descent on (standardised) X [n, d] with class ids
    y [n]: minimise mean cross-entropy + ||W||^2 / (2 C n) (scikit-learn's objective; the bias is not
    penalised), from zeros, ``steps`` plain gradient steps of size ``lr``. Returns (W [d, n_classes], b
    [n_classes])."""
    n, d = X.shape
    W = torch.zeros(d, n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(X @ W + b, y) + (W ** 2).sum() / (2 * C * n)
        gW, gb = torch.autograd.grad(loss, [W, b])
        with torch.no_grad():
            W -= lr * gW
            b -= lr * gb
    return W.detach(), b.detach()


def held_out_accuracy(X_train: torch.Tensor, y_train: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor,
                      n_classes: int, C: float = 1.0) -> float:
    """The honest probe score: standardise with the training statistics, fit ``fit_logistic`` on the training
    rows, return the accuracy (0..1) of its argmax predictions on the test rows."""
    Xtr, Xte = standardize(X_train, X_test)
    W, b = fit_logistic(Xtr, y_train, n_classes, C)
    return float(((Xte @ W + b).argmax(-1) == y_test).float().mean())


def token_baseline(token_train: torch.Tensor, y_train: torch.Tensor, token_test: torch.Tensor,
                   y_test: torch.Tensor) -> float:
    """The trivial current-token baseline: predict, for each test row, the most frequent training label among
    training rows with the same token (ties: the smallest label; a token never seen in training: the most
    frequent training label overall). Returns the accuracy (0..1) on the test rows. All inputs LongTensor."""
    n_labels = int(max(y_train.max(), y_test.max())) + 1
    overall = int(torch.bincount(y_train, minlength=n_labels).argmax())
    table = {}
    for t in torch.unique(token_train):
        table[int(t)] = int(torch.bincount(y_train[token_train == t], minlength=n_labels).argmax())
    pred = torch.tensor([table.get(int(t), overall) for t in token_test])
    return float((pred == y_test).float().mean())


# --- plausible mistakes -----------------------------------------------------------------------------------


def _std_all_rows(X_train, X_test):
    X = torch.cat([X_train, X_test])
    mean, std = X.mean(0), X.std(0, unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return (X_train - mean) / std, (X_test - mean) / std


def _std_each_own(X_train, X_test):
    return standardize(X_train, X_train)[0], standardize(X_test, X_test)[0]


def _std_no_guard(X_train, X_test):
    mean, std = X_train.mean(0), X_train.std(0, unbiased=False)
    return (X_train - mean) / std, (X_test - mean) / std


def _std_unbiased(X_train, X_test):
    mean, std = X_train.mean(0), X_train.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return (X_train - mean) / std, (X_test - mean) / std


def _fit_no_penalty(X, y, n_classes, C=1.0, steps=500, lr=1.0):
    return fit_logistic(X, y, n_classes, 1e12, steps, lr)


def _fit_penalty_not_over_n(X, y, n_classes, C=1.0, steps=500, lr=1.0):
    return fit_logistic(X, y, n_classes, C / len(X), steps, lr)


def _fit_no_bias(X, y, n_classes, C=1.0, steps=500, lr=1.0):
    n, d = X.shape
    W = torch.zeros(d, n_classes, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(X @ W, y) + (W ** 2).sum() / (2 * C * n)
        (gW,) = torch.autograd.grad(loss, [W])
        with torch.no_grad():
            W -= lr * gW
    return W.detach(), torch.zeros(n_classes)


def _acc_on_train(X_train, y_train, X_test, y_test, n_classes, C=1.0):
    return held_out_accuracy(X_train, y_train, X_train, y_train, n_classes, C)


def _acc_test_own_stats(X_train, y_train, X_test, y_test, n_classes, C=1.0):
    Xtr, Xte = _std_each_own(X_train, X_test)
    W, b = fit_logistic(Xtr, y_train, n_classes, C)
    return float(((Xte @ W + b).argmax(-1) == y_test).float().mean())


def _acc_raw(X_train, y_train, X_test, y_test, n_classes, C=1.0):
    W, b = fit_logistic(X_train, y_train, n_classes, C)
    return float(((X_test @ W + b).argmax(-1) == y_test).float().mean())


def _base_majority(token_train, y_train, token_test, y_test):
    return float((y_test == torch.bincount(y_train).argmax()).float().mean())


def _base_fit_on_test(token_train, y_train, token_test, y_test):
    return token_baseline(token_test, y_test, token_test, y_test)


def _base_on_train(token_train, y_train, token_test, y_test):
    return token_baseline(token_train, y_train, token_train, y_train)


# --- cases ------------------------------------------------------------------------------------------------


def _features(n: int, d: int, g: torch.Generator, shift: float = 0.0) -> torch.Tensor:
    """Gaussian rows with very different per-feature scales and offsets (like residual-stream coordinates)."""
    scale = torch.logspace(-1, 1.3, d)
    offset = torch.linspace(-5, 5, d)
    return torch.randn(n, d, generator=g) * scale + offset + shift


@lru_cache(maxsize=1)
def _std_cases():
    g = torch.Generator().manual_seed(701)
    out = [("scales from 0.1 to 20", (_features(60, 6, g), _features(25, 6, g, shift=1.5)))]
    X_train, X_test = _features(40, 5, g), _features(15, 5, g, shift=-2.0)
    X_train[:, 2] = 3.0  # constant in training
    out.append(("a constant feature", (X_train, X_test)))
    return out


@lru_cache(maxsize=8)
def _classification(seed: int, n: int, d: int, K: int, noise: float, offset: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    W = torch.randn(d, K, generator=g)
    b = torch.linspace(offset, -offset, K)  # unequal class sizes: the bias matters
    y = (X @ W + b + noise * torch.randn(n, K, generator=g)).argmax(-1)
    return X, y


def _fit_cases():
    return [("3 classes, noisy", (*_classification(711, 300, 6, 3, 1.0), 3)),
            ("2 classes, separable, C=0.05", (*_classification(712, 200, 5, 2, 0.0), 2), {"C": 0.05}),
            ("4 classes, C=0.2", (*_classification(713, 400, 8, 4, 0.5), 4), {"C": 0.2})]


def _compare_fit(got, expected, args) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a pair (W [d, n_classes], b [n_classes])"
    W, b = (torch.as_tensor(t).detach().float() for t in got)
    X = args[0]
    if W.shape != expected[0].shape or b.shape != expected[1].shape:
        return (f"expected W of shape {list(expected[0].shape)} and b of shape {list(expected[1].shape)}, got "
                f"{list(W.shape)} and {list(b.shape)}")
    p, q = (X @ W + b).softmax(-1), (X @ expected[0] + expected[1]).softmax(-1)
    gap = float((p - q).abs().max())
    if gap > 0.02:
        return f"the predicted probabilities differ from the reference's by up to {gap:.3f} (tolerance 0.02)"
    return None


def _split_classification(seed: int, K: int, C: float):
    X, y = _classification(seed, 500, 8, K, 0.7)
    scale = torch.logspace(-1, 1.5, 8)
    X = X * scale + torch.linspace(-10, 10, 8)  # raw residual coordinates: far from standardised
    X_test = X[350:].clone()
    X_test[:, :3] += 4 * scale[:3]  # the test rows are shifted: own-statistics standardisation moves them back
    return (X[:350], y[:350], X_test, y[350:], K), {"C": C}


def _acc_cases():
    return [("3 classes", *_split_classification(721, 3, 1.0)),
            ("4 classes, C=0.5", *_split_classification(722, 4, 0.5))]


def _compare_std(got, expected, args) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a pair (standardised X_train, standardised X_test)"
    for g, e, name in zip(got, expected, ("training", "test")):
        problem = diff_tensor(g, e, name=f"standardised {name} features", atol=1e-4)
        if problem:
            return problem
    return None


def _compare_acc(got, expected, args) -> str | None:
    if isinstance(got, (int, float)) and not isinstance(got, bool) and got > 1:
        return "return the accuracy as a fraction in [0, 1], not a percentage"
    return diff_value(got, expected, name="accuracy", tol=0.015)


def _base_cases():
    g = torch.Generator().manual_seed(731)
    out = []
    for name, (n_tok, n_lab, noise) in {"10 tokens, 4 labels": (10, 4, 0.3),
                                        "20 tokens, 6 labels": (20, 6, 0.5)}.items():
        table = torch.randint(0, n_lab, (n_tok,), generator=g)
        tok = torch.randint(0, n_tok, (400,), generator=g)
        y = torch.where(torch.rand(400, generator=g) < noise, torch.randint(0, n_lab, (400,), generator=g),
                        table[tok])
        out.append((name, (tok[:300], y[:300], tok[300:], y[300:])))
    tok = torch.tensor([0, 0, 1, 1, 1, 2, 5, 5])
    y = torch.tensor([1, 1, 2, 0, 2, 3, 1, 1])
    out.append(("a test token never seen in training", (tok[:6], y[:6], torch.tensor([0, 1, 7, 7]),
                                                         torch.tensor([1, 2, 1, 2]))))
    return out


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "04.standardize", title="Standardise with the training statistics", difficulty=2, importance=4, minutes=8,
    reference=standardize, cases=_std_cases,
    compare=_compare_std,
    hints=["The test rows play the part of data the probe has never seen, so nothing about them (not even their "
           "mean) may be used: compute the statistics on the training rows and apply the same shift and scale to "
           "both sets.",
           "Per feature (over rows, dimension 0): the mean and the population standard deviation (`unbiased=False`). "
           "A feature that does not vary in training would divide by zero; give it a std of 1.",
           "`mean, std = X_train.mean(0), X_train.std(0, unbiased=False)`; `std = torch.where(std > 1e-6, std, "
           "torch.ones_like(std))`; `return (X_train - mean) / std, (X_test - mean) / std`."],
    mistakes=[Mistake("the statistics came from the training *and* test rows: use the training rows only",
                      _std_all_rows),
              Mistake("the test rows were scaled with their own statistics: apply the training mean and std to "
                      "them", _std_each_own),
              Mistake("a feature constant in training gives std 0 and NaN/inf: use std 1 where std < 1e-6",
                      _std_no_guard),
              Mistake("use the population std (unbiased=False), as scikit-learn's StandardScaler does",
                      _std_unbiased)],
)

function_exercise(
    "04.fit_logistic", title="A logistic probe by gradient descent", difficulty=3, importance=5, minutes=20,
    reference=fit_logistic, cases=_fit_cases, compare=_compare_fit, time_limit=600.0,
    hints=["The probe is one linear map to class scores, trained to make the right class likely; the penalty on "
           "the weights (not the bias) keeps it from growing without bound when the classes separate, and its "
           "strength is 1 / C per row.",
           "Start W and b at zero with `requires_grad=True`; each step compute the loss (mean cross-entropy of "
           "`X @ W + b` plus the penalty), get the gradients, and move both against them by `lr`, outside autograd.",
           "`loss = F.cross_entropy(X @ W + b, y) + (W ** 2).sum() / (2 * C * n)`; `gW, gb = "
           "torch.autograd.grad(loss, [W, b])`; `with torch.no_grad(): W -= lr * gW; b -= lr * gb`."],
    mistakes=[Mistake("no weight penalty: add ||W||^2 / (2 C n) to the loss", _fit_no_penalty),
              Mistake("the penalty is too strong: divide ||W||^2 / (2 C) by the number of rows n too (the loss is "
                      "a mean over rows)", _fit_penalty_not_over_n),
              Mistake("the probe needs a bias b (classes have different sizes)", _fit_no_bias)],
)

function_exercise(
    "04.held_out_accuracy", title="The whole probe, honestly scored", difficulty=3, importance=5, minutes=10,
    reference=held_out_accuracy, cases=_acc_cases, compare=_compare_acc, time_limit=600.0,
    hints=["Three steps you have written: put both sets on the training rows' scale, fit on the training rows, "
           "count how often the probe's top class is right on the test rows.",
           "Use your `standardize` (training statistics for both) and `fit_logistic` with this `C`; the probe's "
           "prediction is the argmax of `X @ W + b` over classes.",
           "`Xtr, Xte = standardize(X_train, X_test)`; `W, b = fit_logistic(Xtr, y_train, n_classes, C)`; `return "
           "float(((Xte @ W + b).argmax(-1) == y_test).float().mean())`."],
    mistakes=[Mistake("this is the accuracy on the training rows: score on the held-out test rows", _acc_on_train),
              Mistake("the test rows were standardised with their own statistics: use the training statistics for "
                      "both sets", _acc_test_own_stats),
              Mistake("standardise first: gradient descent with lr 1 on raw residual coordinates does not converge "
                      "to the probe", _acc_raw)],
)

function_exercise(
    "04.token_baseline", title="The current-token baseline", difficulty=2, importance=4, minutes=10,
    reference=token_baseline, cases=_base_cases, compare=_compare_acc,
    hints=["The baseline knows only which token sits at the row: the best it can do is answer, for each token, "
           "the label that token most often had in the training rows.",
           "Build a lookup table token -> most frequent training label (`torch.bincount(...).argmax()`), with the "
           "overall most frequent training label for tokens never seen in training; score it on the test rows.",
           "`table[int(t)] = int(torch.bincount(y_train[token_train == t], minlength=n_labels).argmax())` for each "
           "training token `t`; `pred = torch.tensor([table.get(int(t), overall) for t in token_test])`; return "
           "`float((pred == y_test).float().mean())`."],
    mistakes=[Mistake("that is chance (the most frequent label overall): condition on the current token",
                      _base_majority),
              Mistake("the table was built from the test rows: build it from the training rows", _base_fit_on_test),
              Mistake("this is the accuracy on the training rows: score on the held-out test rows", _base_on_train)],
)


# --- the open question of section 4 -----------------------------------------------------------------------


def _chaining_order(pos_table: Any, anc1_where: tuple[str, ...]) -> str:
    """The reference answer to 04.chaining_order from the notebook's position-split sweep table."""
    def score(label: str, depth: int, where: str, col: str = "score") -> float:
        rows = pos_table[(pos_table["label"] == label) & (pos_table["depth"] == depth) & (pos_table["where"] == where)]
        return float(rows[col].iloc[0]) if len(rows) else float("nan")

    depths = sorted(int(d) for d in pos_table["depth"].unique())
    first = {w: next((d for d in depths if score("ancestor_1", d, w) > 0.9), None) for w in anc1_where}
    firsts = sorted({d for d in first.values() if d is not None})
    at_query = max(score("ancestor_1", d, "query :") for d in depths)
    lead = {d: score("ancestor_2", d, "goal") - score("ancestor_2", d, "goal", "random_init") for d in depths}
    far = pos_table[pos_table["label"].isin(["ancestor_2", "ancestor_3"])]["score"].max()
    where, first_txt = ", ".join(anc1_where), "/".join(map(str, firsts)) or "never"
    last, before = lead[depths[-1]], max(lead[d] for d in depths[:-1])
    return (f"ancestor_1 (the goal's parent) is decoded above 0.9 at {where} from depth {first_txt} on (first "
            f"depth per position: {first}); at ':' it never exceeds {at_query:.2f}. ancestor_2 at the goal token "
            f"leads its random-init twin by {last:+.2f} at depth {depths[-1]}, against at most {before:+.2f} "
            f"before; neither ancestor_2 nor ancestor_3 is decoded above {float(far):.2f} anywhere. So it is not "
            "one level per layer at the query position: the parent appears late, at the goal token and the path "
            "positions at the same depth, the grandparent only partly and later, and ':' holds none of them. At a "
            "path position the next node only needs to be readable just before it is written. A small model "
            "trained on short paths can also compute some steps in parallel at different positions (Brinkmann et "
            "al. describe sub-goals chained at register positions and merged). Compare with the random-init twin "
            "before calling an entry a finding: the first table compares with the trivial baseline only, which the "
            "twin also beats at some positions.")


question("04.chaining_order", _chaining_order)
