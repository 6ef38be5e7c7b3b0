"""Run All stops at the first unsolved exercise with one friendly line (issue #19), checked in a real kernel.

A failure looks like: a check that does not pass lets Run All go on (no error status), a stub shows a traceback,
or the handler swallows tracebacks of errors that are not exercises.
"""

from __future__ import annotations

import pytest

SETUP = """
import os
os.environ["SEARCHLIGHT_PROGRESS"] = "off"
os.environ.pop("SEARCHLIGHT_STRICT", None)
from toolkit import exercises as ex

def backward_chain(edges, goal):
    raise NotImplementedError("Exercise 01.backward_chain: replace this line with your code")
"""


@pytest.fixture(scope="module")
def learner(kernel):
    """The kernel after a learner notebook's set-up: exercises imported, one exercise still a stub."""
    reply = kernel.execute_interactive(SETUP, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    return kernel


def run(kc, code: str) -> tuple[str, list[dict]]:
    """(reply status, error outputs) of one cell."""
    errors: list[dict] = []
    reply = kc.execute_interactive(code, timeout=120, output_hook=lambda msg: errors.append(msg["content"])
                                   if msg["msg_type"] == "error" else None)
    return reply["content"]["status"], errors


def one_line(errors: list[dict]) -> str:
    assert len(errors) == 1, errors
    tb = errors[0]["traceback"]
    assert len(tb) == 1 and "\n" not in tb[0] and "Traceback" not in tb[0], f"not one line: {tb}"
    return tb[0]


def test_unwritten_exercise_stops_run_all_with_one_line(learner) -> None:
    status, errors = run(learner, 'ex.check("01.backward_chain", backward_chain)')
    assert status == "error", "Run All would go on past an unwritten exercise"
    line = one_line(errors)
    assert "01.backward_chain" in line and "not written yet" in line and "NotImplementedError" in line


def test_wrong_answer_stops_and_points_at_the_report(learner) -> None:
    status, errors = run(learner, 'ex.check("01.backward_chain", lambda edges, goal: [goal])')
    assert status == "error"
    line = one_line(errors)
    assert "01.backward_chain" in line and "does not pass yet" in line


def test_cell_calling_a_stub_names_the_exercise(learner) -> None:
    status, errors = run(learner, "def helper(x):\n    return backward_chain([(0, 1)], x)\nhelper(1)")
    assert status == "error"
    line = one_line(errors)
    assert "01.backward_chain" in line and "this cell needs it" in line


def test_passing_check_and_other_errors_are_unchanged(learner) -> None:
    solved = ("def chain(edges, goal):\n    parent = {c: p for p, c in edges}\n    out = [goal]\n"
              "    while out[-1] in parent:\n        out.append(parent[out[-1]])\n    return out[::-1]\n"
              'ex.check("01.backward_chain", chain)')
    status, errors = run(learner, solved)
    assert status == "ok" and not errors, errors
    for code in ("raise NotImplementedError('not an exercise')", "1 / 0"):
        status, errors = run(learner, code)
        assert status == "error" and len(errors) == 1
        assert len(errors[0]["traceback"]) > 1, f"{code}: the usual traceback is gone"
