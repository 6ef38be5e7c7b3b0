"""Hints form a ladder: from a nudge (the principle, what to think about) to nearly the answer (the code).

A learner opens hints one at a time, so the first must not give the solution away and the last must leave
little to guess. Measured on the text: a *code* span is backticked text with a call, an index, an
assignment or a literal (``(``, ``[``, ``=`` or ``{``) in it, e.g. `torch.unique(x)` or `pattern[i, h]`;
a bare name such as `came_from` is not code.
"""

from __future__ import annotations

import re

import pytest

from toolkit.exercises import core

SPAN = re.compile(r"`([^`]+)`")


def code_spans(hint: str) -> list[str]:
    """The backticked spans of a hint that are code (a call, an index, an assignment or a literal)."""
    return [s for s in SPAN.findall(hint) if any(c in s for c in "([={")]


def ladder_problems(hints: list[str]) -> list[str]:
    """What is wrong with the order of a hint list (empty when it goes from a nudge to nearly the answer)."""
    problems = []
    if len(hints) < 2:
        problems.append(f"{len(hints)} hint(s): a ladder needs a nudge and a near-answer")
        return problems
    if code_spans(hints[0]):
        problems.append(f"the first hint gives code away: {code_spans(hints[0])}")
    if not code_spans(hints[-1]):
        problems.append("the last hint has no code: it should be nearly the answer")
    return problems


def _exercises() -> list[core.Exercise]:
    return core.all_exercises()  # importing toolkit.exercises registered every chapter


@pytest.mark.parametrize("exercise", _exercises(), ids=lambda e: e.id)
def test_hints_go_from_a_nudge_to_nearly_the_answer(exercise: core.Exercise) -> None:
    assert not ladder_problems(exercise.hints), f"{exercise.id}: {ladder_problems(exercise.hints)}"


def test_the_rule_catches_a_ladder_upside_down() -> None:
    """Hints as several exercises had them before issue #19: the specific API first, the principle last."""
    old = ["Build a dict that maps every child to its parent: `parent = {child: par for par, child in edges}`.",
           "Start a list with the goal and keep appending the parent of the last element while it has one.",
           "You collected goal .. root; the answer runs root .. goal."]
    assert len(ladder_problems(old)) == 2
    assert ladder_problems(list(reversed(old))) == []
    assert ladder_problems(["only one"]) and code_spans("use `came_from` and `x.sum(0)`") == ["x.sum(0)"]
