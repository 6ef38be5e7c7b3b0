"""Tutorial 08, *Capstone: searching for search* (the maze model).

Checked milestones: a future-state label (the path cell k steps ahead), accuracy grouped by a variable (e.g.
distance to the target), the outcome of moving the goal (which branch the model follows), and a structured
write-up whose every verdict cites a measured number and its control's, and whose "for" verdicts beat their
control and rest on a causal test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Case, Exercise, Mistake, call, function_exercise, register
from toolkit.exercises.questions import question

Tensor = torch.Tensor

HYPOTHESES = ("iteration", "parallel", "goal", "future")
VERDICTS = ("for", "against", "inconclusive")


# --- references -------------------------------------------------------------------------------------------


def future_label(cells: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The path cell ``k`` steps ahead.

    ``cells [n, seq]``: the cell id at each path position, -1 elsewhere. Returns ``(values, valid)``, both
    ``[n, seq]``: ``values[i, t] = cells[i, t + k]`` where position ``t`` and position ``t + k`` are both path
    positions (``valid`` True), else ``values`` is -1 and ``valid`` False.
    """
    n, seq = cells.shape
    ahead = torch.full_like(cells, -1)
    if k < seq:
        ahead[:, : seq - k] = cells[:, k:]
    valid = (cells >= 0) & (ahead >= 0)
    return torch.where(valid, ahead, torch.full_like(cells, -1)), valid


def accuracy_by_group(pred: Tensor, true: Tensor, group: Tensor) -> dict[int, float]:
    """``{g: accuracy of pred vs true among the rows whose group is g}`` for every group value present, keys
    sorted ascending. ``pred, true, group [N]``."""
    out = {}
    for g in sorted(int(v) for v in group.unique()):
        rows = group == g
        out[g] = float((pred[rows] == true[rows]).float().mean())
    return out


def follow_rates(pred: Tensor, clean_next: Tensor, other_next: Tensor) -> dict[str, float]:
    """Which way did the model go after the goal was moved? Fractions of examples whose predicted move ``pred
    [n]`` equals the original goal's next cell (``"clean"``), the moved goal's (``"other"``), or neither
    (``"neither"``); the clean and other cells differ in every example, so the three sum to 1."""
    clean = pred == clean_next
    other = pred == other_next
    return {"clean": float(clean.float().mean()), "other": float(other.float().mean()),
            "neither": float((~clean & ~other).float().mean())}


# --- plausible mistakes -----------------------------------------------------------------------------------


def _future_backwards(cells, k):
    n, seq = cells.shape
    behind = torch.full_like(cells, -1)
    behind[:, k:] = cells[:, : seq - k]
    valid = (cells >= 0) & (behind >= 0)
    return torch.where(valid, behind, torch.full_like(cells, -1)), valid


def _future_roll(cells, k):
    ahead = torch.roll(cells, -k, dims=1)
    valid = (cells >= 0) & (ahead >= 0)
    return torch.where(valid, ahead, torch.full_like(cells, -1)), valid


def _future_no_current_check(cells, k):
    n, seq = cells.shape
    ahead = torch.full_like(cells, -1)
    ahead[:, : seq - k] = cells[:, k:]
    valid = ahead >= 0
    return torch.where(valid, ahead, torch.full_like(cells, -1)), valid


def _future_off_by_one(cells, k):
    return future_label(cells, k - 1) if k > 1 else future_label(cells, k + 1)


def _group_overall(pred, true, group):
    acc = float((pred == true).float().mean())
    return {int(g): acc for g in sorted(int(v) for v in group.unique())}


def _group_by_true(pred, true, group):
    return accuracy_by_group(pred, true, true)


def _group_counts(pred, true, group):
    return {g: float(((pred == true) & (group == g)).sum()) for g in sorted(int(v) for v in group.unique())}


def _follow_counts(pred, clean_next, other_next):
    clean, other = pred == clean_next, pred == other_next
    return {"clean": float(clean.sum()), "other": float(other.sum()), "neither": float((~clean & ~other).sum())}


def _follow_swapped(pred, clean_next, other_next):
    r = follow_rates(pred, clean_next, other_next)
    return {"clean": r["other"], "other": r["clean"], "neither": r["neither"]}


def _follow_neither_wrong(pred, clean_next, other_next):
    r = follow_rates(pred, clean_next, other_next)
    return {**r, "neither": 1.0 - r["clean"]}


# --- cases ------------------------------------------------------------------------------------------------


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _future_cases():
    g = _g(800)
    n, seq = 5, 14
    cells = torch.full((n, seq), -1, dtype=torch.long)
    for i in range(n):
        start = 6 + i % 2
        length = int(torch.randint(2, 7, (1,), generator=g))
        cells[i, start:start + length] = torch.randint(0, 16, (length,), generator=g)
    tail = torch.full((2, 6), -1, dtype=torch.long)
    tail[:, 2:] = torch.tensor([[3, 7, 11, 15], [0, 1, 2, 3]])  # a path that runs to the last position
    return [("5 paths of 2-7 cells, k=2", (cells, 2)), ("the same, k=1", (cells, 1)),
            ("paths ending at the last position, k=3", (tail, 3))]


def _group_cases():
    g = _g(810)
    true = torch.randint(0, 5, (60,), generator=g)
    pred = torch.where(torch.rand(60, generator=g) < 0.7, true, torch.randint(0, 5, (60,), generator=g))
    group = torch.randint(1, 5, (60,), generator=g)
    dist = torch.randint(0, 9, (40,), generator=g)
    true2 = torch.randint(0, 16, (40,), generator=g)
    pred2 = torch.where(dist < 4, true2, (true2 + 1) % 16)
    return [("60 rows, 4 groups", (pred, true, group)), ("40 rows grouped by distance", (pred2, true2, dist))]


def _follow_cases():
    g = _g(820)
    clean = torch.randint(0, 16, (30,), generator=g)
    other = (clean + 1 + torch.randint(0, 15, (30,), generator=g)) % 16
    pick = torch.rand(30, generator=g)
    pred = torch.where(pick < 0.5, other, torch.where(pick < 0.8, clean, (other + 1) % 16))
    return [("30 examples", (pred, clean, other)),
            ("every example follows the moved goal", (other.clone(), clean, other))]


# --- comparisons ------------------------------------------------------------------------------------------


def _cmp_future(got: Any, expected: tuple[Tensor, Tensor], args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(values, valid)`"
    return (diff_tensor(got[1], expected[1], name="valid", seq_dim=1)
            or diff_tensor(got[0], expected[0], name="values", seq_dim=1))


def _cmp_dict(name: str):
    def compare(got: Any, expected: dict, args: tuple) -> str | None:
        return diff_value(got, expected, name=name, tol=1e-6)

    return compare


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "08.follow_rates", title="Which way after the goal moved?", difficulty=1, importance=3, minutes=5,
    reference=follow_rates, cases=_follow_cases, compare=_cmp_dict("rates"),
    hints=["Three fractions of examples: the prediction is the clean goal's next cell, the moved goal's, or neither; "
           "they sum to 1.",
           "Compare `pred` with each candidate to get two boolean [n] masks; 'neither' is the rows where both are "
           "False. Return fractions, not counts.",
           "`clean = pred == clean_next`, `other = pred == other_next`, and `float((~clean & "
           "~other).float().mean())` for 'neither' (likewise `.float().mean()` for the other two)."],
    mistakes=[Mistake("return fractions of examples (`.float().mean()`), not counts", _follow_counts),
              Mistake("'clean' is the original goal's move and 'other' the moved goal's; you swapped them",
                      _follow_swapped),
              Mistake("'neither' counts the examples that follow neither goal, not everything except 'clean'",
                      _follow_neither_wrong)],
)

function_exercise(
    "08.accuracy_by_group", title="Accuracy by distance", difficulty=1, importance=4, minutes=5,
    reference=accuracy_by_group, cases=_group_cases, compare=_cmp_dict("accuracy by group"),
    hints=["One accuracy per group value: compare `pred` with `true` only on the rows of that group.",
           "Loop over the distinct values of `group`, as Python ints, in ascending order; average `pred == true` "
           "over the rows of each.",
           "`for g in sorted(int(v) for v in group.unique()): rows = group == g; out[g] = float((pred[rows] == "
           "true[rows]).float().mean())`."],
    mistakes=[Mistake("compute the accuracy *within* each group (only the rows of that group), not over all rows",
                      _group_overall),
              Mistake("group the rows by `group`, not by the true value", _group_by_true),
              Mistake("return the fraction correct within each group, not the number of correct rows",
                      _group_counts)],
)

function_exercise(
    "08.future_label", title="A future-state label", difficulty=2, importance=4, minutes=10,
    reference=future_label, cases=_future_cases, compare=_cmp_future,
    hints=["The label at position t is the cell k positions later, and only where both positions are path positions "
           "(cells >= 0); everything else gets -1.",
           "Shift the cells left by k without wrapping around (`torch.roll` would bring the first positions to the "
           "end): fill the last k columns with -1.",
           "`ahead = torch.full_like(cells, -1)`, `ahead[:, :seq - k] = cells[:, k:]`, `valid = (cells >= 0) & "
           "(ahead >= 0)`, and `values = torch.where(valid, ahead, torch.full_like(cells, -1))`; return `(values, "
           "valid)`."],
    mistakes=[Mistake("you looked k steps *back*; the label is the cell k steps *ahead* (position t + k)",
                      _future_backwards),
              Mistake("`torch.roll` wraps around: the last positions must not see the first ones; fill them "
                      "with -1 instead", _future_roll),
              Mistake("the current position must be a path position too: require `cells >= 0` as well",
                      _future_no_current_check),
              Mistake("off by one: the cell exactly k positions ahead", _future_off_by_one)],
)


# --- the write-up ------------------------------------------------------------------------------------------

FIELDS = ("verdict", "evidence", "number", "control_number", "causal", "control")
NOT_BEATEN = ("a 'for' verdict needs evidence that beats its control: report[{h!r}]['number'] must be larger than "
              "report[{h!r}]['control_number'] (otherwise say 'inconclusive' or 'against')")
NOT_CAUSAL = ("a 'for' verdict needs a causal test (an intervention compared with a matched control "
              "intervention): report[{h!r}]['causal'] is False, so say 'inconclusive' until you have one")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


def write_up_checker(fn: Any) -> Iterator[Case]:
    """Checks of a structured write-up: the four hypotheses; each with a verdict, the evidence as a sentence with
    its number, the number and its control's number (oriented so that larger is stronger evidence), whether a
    causal test backs it, and the control named. A 'for' verdict must beat its control and have a causal test."""
    report = call(fn)
    if not isinstance(report, dict):
        yield Case("a dict", False, f"write_up() should return a dict with keys {list(HYPOTHESES)}, got a "
                                    f"{type(report).__name__}")
        return
    missing = [h for h in HYPOTHESES if h not in report]
    extra = [h for h in report if h not in HYPOTHESES]
    yield Case("the four hypotheses", not missing and not extra,
               f"give exactly the keys {list(HYPOTHESES)}"
               + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""))
    for h in HYPOTHESES:
        entry = report.get(h)
        if entry is None:
            continue
        if not isinstance(entry, dict) or any(f not in entry for f in FIELDS):
            yield Case(h, False, f"report[{h!r}] should be a dict with the keys {list(FIELDS)}")
            continue
        verdict = entry["verdict"]
        yield Case(f"{h}: verdict", verdict in VERDICTS,
                   f"report[{h!r}]['verdict'] must be one of {list(VERDICTS)}, got {verdict!r}")
        evidence = str(entry["evidence"])
        yield Case(f"{h}: evidence", bool(re.search(r"\d", evidence)) and len(evidence) >= 20,
                   f"report[{h!r}]['evidence'] should state what you measured, with the number (a sentence of at "
                   f"least 20 characters containing a digit), got {evidence!r}")
        control = str(entry["control"])
        yield Case(f"{h}: control", len(control) >= 10 and control != evidence,
                   f"report[{h!r}]['control'] should name the control or baseline the evidence is compared "
                   f"against (e.g. the random-init model, a trivial baseline, a control intervention)")
        numbers = _is_number(entry["number"]) and _is_number(entry["control_number"])
        yield Case(f"{h}: numbers", numbers,
                   f"report[{h!r}]['number'] and ['control_number'] must be finite numbers (the measured value and "
                   f"its control's, larger = stronger evidence), got {entry['number']!r} and "
                   f"{entry['control_number']!r}")
        yield Case(f"{h}: causal", isinstance(entry["causal"], bool),
                   f"report[{h!r}]['causal'] must be True or False (is there an intervention with a matched "
                   f"control behind this verdict?), got {entry['causal']!r}")
        if verdict == "for" and numbers:
            yield Case(f"{h}: for beats its control", entry["number"] > entry["control_number"],
                       NOT_BEATEN.format(h=h))
            yield Case(f"{h}: for has a causal test", entry["causal"] is True, NOT_CAUSAL.format(h=h))


def _write_up_reference() -> dict[str, dict[str, Any]]:
    """An example of the expected shape (the notebook's solution fills it from measured numbers)."""
    return {h: {"verdict": "inconclusive", "evidence": "probe accuracy 0.50 at layer 2 (example)", "number": 0.5,
                "control_number": 0.45, "causal": False,
                "control": "the random-init model and the trivial baseline"} for h in HYPOTHESES}


def _for_without_beating() -> dict[str, dict[str, Any]]:
    report = _write_up_reference()
    report["future"].update(verdict="for", number=0.99, control_number=0.99, causal=True,
                            evidence="erasing the lookahead leaves next-move accuracy at 0.99")
    return report


def _for_without_causal_test() -> dict[str, dict[str, Any]]:
    report = _write_up_reference()
    report["iteration"].update(verdict="for", number=0.58, control_number=0.33, causal=False,
                               evidence="the distance map decodes with R2 0.58")
    return report


register(Exercise(
    "08.write_up", "Write up the finding", difficulty=3, importance=5, minutes=25, checker=write_up_checker,
    hints=["A verdict of 'for' needs a number that beats its control *and* a causal test (an intervention with a "
           "matched control); decoding alone, or mixed evidence, is 'inconclusive'.",
           "Return one entry per hypothesis ('iteration', 'parallel', 'goal', 'future'), each a dict with "
           "'verdict', 'evidence' (a sentence with the number), 'number', 'control_number' (larger = stronger "
           "evidence), 'causal' (True/False) and 'control' (what the number is compared with).",
           "Compute the verdict from the numbers, e.g. `verdict = 'for' if causal and number > control_number + "
           "margin else 'inconclusive'`, and build the sentences with f-strings from your variables."],
    reference=_write_up_reference, signature="def write_up() -> dict[str, dict[str, Any]]",
    mistakes=[Mistake(NOT_BEATEN.format(h="future"), _for_without_beating),
              Mistake(NOT_CAUSAL.format(h="iteration"), _for_without_causal_test)],
))


def _algorithm_answer(goal_follow: float, goal_random: float, same_kept: float, k2_decoded: float,
                      k2_baseline: float, beyond_drop: float, random_drop: float, next_kept: float,
                      map_r2: float) -> str:
    return (
        f"A goal-directed, step-by-step policy. The goal is an explicit variable: moving it at the target token moves "
        f"the first step in {goal_follow:.0%} of mazes (an equal-norm random edit: {goal_random:.0%}; a counterfactual "
        f"goal with the same first move keeps the move in {same_kept:.0%}). The cell two steps ahead decodes "
        f"({k2_decoded:.2f} vs a current+target baseline of {k2_baseline:.2f}), but erasing the part of it that is "
        f"not the next cell changes the next move by {beyond_drop:+.3f} (random subspace {random_drop:+.3f}), and "
        f"a position's move survives erasing its predecessor's next-cell subspace ({next_kept:.0%} correct): each "
        f"position computes its own step, and the lookahead looks like a by-product, not a plan that is read. The "
        f"distance map at the target token is partial (R2 {map_r2:.2f}). The autoregressive loop does the "
        f"iteration: depth is bought with sequence length, not layers. A full BFS over 16 cells needs up to 15 "
        f"sequential expansions (4 with Saparov et al.'s doubling, and a very particular circuit), whereas 'which "
        f"open neighbour is closer to the target' needs only local maze information and the goal - which is also "
        f"why this is weak evidence of search in the sense of tutorial 01.")


question("08.algorithm", _algorithm_answer)
