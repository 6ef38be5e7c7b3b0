"""Tutorial 04, *Probing for search state*: honest splits, honest probe scores, control tasks, and finding the
first layer where a quantity becomes decodable.

The split and control-task exercises are random by nature, so they are checked by their *properties* (no
example on both sides, one class per token type, same seed -> same answer) rather than against one reference
draw. The probe-accuracy cases are built so that fitting on the test rows or scoring on the training rows gives
a very different number from the honest score.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import torch

from toolkit.exercises.compare import diff_value
from toolkit.exercises.core import Case, Mistake, call, function_exercise

# --- references -------------------------------------------------------------------------------------------


def split_by_example(example_index: torch.Tensor, test_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) BoolTensor masks [n_rows]: a random test_frac of the *examples* (with all their rows) is test.

    example_index: LongTensor [n_rows], the example each row comes from. The same seed gives the same split.
    """
    examples = torch.unique(example_index)
    g = torch.Generator().manual_seed(seed)
    shuffled = examples[torch.randperm(len(examples), generator=g)]
    test = torch.isin(example_index, shuffled[: round(test_frac * len(examples))])
    return ~test, test


def probe_accuracy(X_train: torch.Tensor, y_train: torch.Tensor, X_test: torch.Tensor,
                   y_test: torch.Tensor) -> float:
    """Fit a logistic-regression probe on the training rows; return its accuracy (0..1) on the test rows."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=1000).fit(X_train.numpy(), y_train.numpy())
    return float(probe.score(X_test.numpy(), y_test.numpy()))


def control_labels(tokens: torch.Tensor, n_classes: int, seed: int) -> torch.Tensor:
    """Hewitt & Liang's control task: every token type gets one fixed random class in 0..n_classes-1.

    tokens: LongTensor [n_rows], the token id at each row. Returns LongTensor [n_rows]: the class of each row's
    token. The same seed gives the same labels.
    """
    g = torch.Generator().manual_seed(seed)
    table = torch.randint(0, n_classes, (int(tokens.max()) + 1,), generator=g)
    return table[tokens]


def first_layer_found(scores: dict[int, float], baseline: float, margin: float = 0.05) -> int | None:
    """The smallest depth whose score beats baseline + margin (depth 0 = embeddings), or None if none does."""
    for depth in sorted(scores):
        if scores[depth] > baseline + margin:
            return depth
    return None


# --- plausible mistakes -----------------------------------------------------------------------------------

LEAK = ("rows of one example ended up in both train and test: split the examples, not the rows (otherwise the "
        "probe is tested on examples it was trained on)")
FRACTION = "the test side should hold about test_frac of the examples; return (train, test) in that order"
PARTITION = "train and test must be complementary masks: every row on exactly one side"
FORMAT = "return a pair (train, test) of BoolTensors with one entry per row"
NO_SHUFFLE = ("a different seed should give a different split: the examples must be shuffled with the seed, not "
              "taken in order")
PER_ROW = ("rows with the same token got different classes: draw one class per token type (a lookup table "
           "indexed by token id), not one per row")
NOT_RANDOM = "the classes must be random: a different seed should give a different assignment"
RANGE = "classes must lie in 0..n_classes-1"
CONSTANT = "every row got the same class: draw a random class for each token type"


def _split_rows(example_index, test_frac, seed):
    g = torch.Generator().manual_seed(seed)
    test = torch.rand(len(example_index), generator=g) < test_frac
    return ~test, test


def _split_swapped(example_index, test_frac, seed):
    train, test = split_by_example(example_index, test_frac, seed)
    return test, train


def _split_first_examples(example_index, test_frac, seed):
    examples = torch.unique(example_index)
    test = torch.isin(example_index, examples[: round(test_frac * len(examples))])
    return ~test, test


def _fit_on_test(X_train, y_train, X_test, y_test):
    return probe_accuracy(X_test, y_test, X_test, y_test)


def _score_on_train(X_train, y_train, X_test, y_test):
    return probe_accuracy(X_train, y_train, X_train, y_train)


def _error_rate(X_train, y_train, X_test, y_test):
    return 1 - probe_accuracy(X_train, y_train, X_test, y_test)


def _control_per_row(tokens, n_classes, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_classes, tokens.shape, generator=g)


def _control_modulo(tokens, n_classes, seed):
    return tokens % n_classes


def _control_off_by_one(tokens, n_classes, seed):
    return control_labels(tokens, n_classes, seed) + 1


def _first_best(scores, baseline, margin=0.05):
    best = max(scores, key=scores.get)
    return best if scores[best] > baseline + margin else None


def _first_no_margin(scores, baseline, margin=0.05):
    return first_layer_found(scores, baseline, 0.0)


def _first_position(scores, baseline, margin=0.05):
    for i, depth in enumerate(sorted(scores)):
        if scores[depth] > baseline + margin:
            return i
    return None


def _first_dict_order(scores, baseline, margin=0.05):
    for depth, score in scores.items():
        if score > baseline + margin:
            return depth
    return None


# --- cases and property checks ----------------------------------------------------------------------------


def _rows(n_examples: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    per = torch.randint(1, 6, (n_examples,), generator=g)
    return torch.repeat_interleave(torch.arange(n_examples), per)


def _split_cases():
    return [("40 examples, 20% test", (_rows(40, 601), 0.2, 0)),
            ("101 examples, 30% test", (_rows(101, 602), 0.3, 7)),
            ("rows out of order", (_rows(60, 603)[torch.randperm(len(_rows(60, 603)),
                                                                   generator=torch.Generator().manual_seed(1))],
                                   0.25, 3))]


def _check_split(got, expected, args) -> str | None:
    example_index, test_frac, _ = args
    n = len(example_index)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return FORMAT
    train, test = (torch.as_tensor(x) for x in got)
    if train.shape != (n,) or test.shape != (n,) or train.dtype != torch.bool or test.dtype != torch.bool:
        return FORMAT
    if bool((train & test).any()) or not bool((train | test).all()):
        return PARTITION
    if len(set(example_index[train].tolist()) & set(example_index[test].tolist())):
        return LEAK
    n_examples = len(torch.unique(example_index))
    frac = len(torch.unique(example_index[test])) / n_examples
    if abs(frac - test_frac) > max(0.05, 1.5 / n_examples):
        return FRACTION
    return None


def _split_seeds(fn) -> Iterator[Case]:
    rows = _rows(80, 604)
    a, b = call(fn, rows, 0.25, 11), call(fn, rows, 0.25, 11)
    c = call(fn, rows, 0.25, 12)
    same = all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(a, b))
    yield Case("same seed, same split", same, "" if same else "the same seed must give the same split: draw "
               "the permutation from torch.Generator().manual_seed(seed)")
    differs = not torch.equal(torch.as_tensor(a[1]), torch.as_tensor(c[1]))
    yield Case("another seed, another split", differs, "" if differs else NO_SHUFFLE)


@lru_cache(maxsize=1)
def _probe_cases():
    g = torch.Generator().manual_seed(611)
    d, n = 10, 400
    w = torch.randn(d, generator=g)
    cases = []
    X_tr, X_te = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    cases.append(("same rule in train and test", (X_tr, (X_tr @ w > 0).long(), X_te, (X_te @ w > 0).long())))
    X_tr, X_te = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    noise = (torch.rand(n, generator=g) < 0.5).long()
    cases.append(("train labels are noise", (X_tr, noise, X_te, (X_te[:, 1] > 0).long())))
    X_tr, X_te = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    noise = (torch.rand(n, generator=g) < 0.5).long()
    cases.append(("test labels are noise", (X_tr, (X_tr[:, 0] > 0).long(), X_te, noise)))
    return cases


def _compare_accuracy(got, expected, args) -> str | None:
    if isinstance(got, (int, float)) and not isinstance(got, bool) and got > 1:
        return "return the accuracy as a fraction in [0, 1], not a percentage"
    return diff_value(got, expected, name="accuracy", tol=0.06)


def _control_cases():
    g = torch.Generator().manual_seed(621)
    return [("20 token types, 3 classes", (torch.randint(0, 20, (300,), generator=g), 3, 0)),
            ("40 token types, 8 classes", (torch.randint(4, 40, (500,), generator=g), 8, 5))]


def _check_control(got, expected, args) -> str | None:
    tokens, n_classes, _ = args
    if not isinstance(got, torch.Tensor) or got.shape != tokens.shape or got.dtype.is_floating_point:
        return f"return a LongTensor with one class per row (shape {list(tokens.shape)})"
    if int(got.min()) < 0 or int(got.max()) >= n_classes:
        return RANGE
    for t in torch.unique(tokens):
        if len(torch.unique(got[tokens == t])) > 1:
            return PER_ROW
    if len(torch.unique(got)) == 1:
        return CONSTANT
    return None


def _control_seeds(fn) -> Iterator[Case]:
    tokens = torch.arange(30).repeat(3)
    a, b, c = call(fn, tokens, 4, 1), call(fn, tokens, 4, 1), call(fn, tokens, 4, 2)
    same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    yield Case("same seed, same labels", same, "" if same else "the same seed must give the same labels: use "
               "torch.Generator().manual_seed(seed)")
    differs = isinstance(c, torch.Tensor) and not torch.equal(a, c)
    yield Case("another seed, other labels", differs, "" if differs else NOT_RANDOM)


def _first_cases():
    return [
        ("found at depth 2", ({0: 0.12, 1: 0.3, 2: 0.81, 3: 0.97, 4: 0.99}, 0.25)),
        ("never found", ({0: 0.2, 1: 0.22, 2: 0.24}, 0.25)),
        ("within the margin is not found", ({0: 0.5, 1: 0.53, 2: 0.58, 3: 0.61}, 0.5)),
        ("only some layers cached", ({2: 0.4, 3: 0.9, 4: 0.95}, 0.5)),
        ("dict not in layer order", ({3: 0.95, 4: 0.99, 1: 0.2, 2: 0.7}, 0.3)),
        ("custom margin", ({0: 0.5, 1: 0.62, 2: 0.75}, 0.5), {"margin": 0.2}),
    ]


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "04.split_by_example", title="Split by example, not by row", difficulty=2, importance=5, minutes=10,
    reference=split_by_example, cases=_split_cases, compare=_check_split, extra=_split_seeds,
    hints=["Split *examples*, not rows: all rows of one example go to the same side, and the same seed gives the "
           "same split.",
           "Shuffle the distinct example ids with a seeded generator, take the first `test_frac` of them as test "
           "examples, and mark every row whose example is one of them.",
           "`examples = torch.unique(example_index)`, `shuffled = examples[torch.randperm(len(examples), "
           "generator=torch.Generator().manual_seed(seed))]`, `test = torch.isin(example_index, "
           "shuffled[:round(test_frac * len(examples))])`; return `(~test, test)`."],
    mistakes=[Mistake(LEAK, _split_rows), Mistake(FRACTION, _split_swapped),
              Mistake(NO_SHUFFLE, _split_first_examples)],
)

function_exercise(
    "04.probe_accuracy", title="An honest probe score", difficulty=1, importance=5, minutes=5,
    reference=probe_accuracy, cases=_probe_cases, compare=_compare_accuracy,
    hints=["An honest score: fit on the training rows only, score on the held-out test rows only.",
           "scikit-learn's `LogisticRegression` has `fit` and `score` (accuracy); it takes numpy arrays, so convert "
           "the tensors.",
           "`LogisticRegression(max_iter=1000).fit(X_train.numpy(), y_train.numpy()).score(X_test.numpy(), "
           "y_test.numpy())`, returned as a float."],
    mistakes=[Mistake("this is the score of a probe fitted on the test rows: fit on the training rows, score on "
                      "the test rows", _fit_on_test),
              Mistake("this is the accuracy on the training rows: score on the held-out test rows", _score_on_train),
              Mistake("that is the error rate: return the accuracy (fraction correct)", _error_rate)],
)

function_exercise(
    "04.control_labels", title="A control task", difficulty=2, importance=4, minutes=8,
    reference=control_labels, cases=_control_cases, compare=_check_control, extra=_control_seeds,
    hints=["Every token *type* gets one fixed random class, so all rows with the same token get the same label.",
           "Draw a lookup table with one random class per possible token id from a seeded generator, then look each "
           "row's token up in it.",
           "`table = torch.randint(0, n_classes, (int(tokens.max()) + 1,), "
           "generator=torch.Generator().manual_seed(seed))`, then `table[tokens]`."],
    mistakes=[Mistake(PER_ROW, _control_per_row), Mistake(NOT_RANDOM, _control_modulo),
              Mistake(RANGE, _control_off_by_one)],
)

# the probe-by-hand exercises (04.standardize .. 04.token_baseline) come next in the notebook
from toolkit.exercises.chapters import ch04_probing_by_hand  # noqa: E402,F401 - registers them here, in order

function_exercise(
    "04.first_layer", title="Where does it become decodable?", difficulty=1, importance=4, minutes=5,
    reference=first_layer_found, cases=_first_cases,
    hints=["Go through the depths from shallow to deep and stop at the first one that beats the baseline by more "
           "than the margin.",
           "Use the depths in increasing order, not the dict's order, and return the depth itself (the key), not its "
           "position in the list; None if no depth beats it.",
           "`for depth in sorted(scores): if scores[depth] > baseline + margin: return depth`, and `return None` "
           "after the loop."],
    mistakes=[Mistake("that is the best depth; the question is the *first* depth that beats the baseline",
                      _first_best),
              Mistake("beat the baseline by more than the margin, not just by any amount", _first_no_margin),
              Mistake("return the depth itself (the dict key), not its position in the sorted list",
                      _first_position),
              Mistake("go through the depths in increasing order: dicts keep insertion order, not sorted order",
                      _first_dict_order)],
)
