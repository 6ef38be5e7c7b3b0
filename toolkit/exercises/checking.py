"""Checking an answer: :func:`check` runs an exercise's checker, records the attempt and shows the report.

It sits above the registry (:mod:`toolkit.exercises.core`), the report (:mod:`toolkit.exercises.display`) and
the progress file (:mod:`toolkit.exercises.tracking`), so none of those needs to import it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.exercises.core import NOT_STARTED, Case, Exercise, ExerciseFailed, get, run_checks, strict_mode
from toolkit.exercises.display import announce, result_html, result_text, show_result
from toolkit.exercises.stops import ExerciseNotDone, current_shell
from toolkit.exercises.tracking import record_attempt


@dataclass
class CheckResult:
    """What :func:`check` found. Truthy when every case passed."""

    exercise: Exercise
    cases: list[Case]

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failures(self) -> list[Case]:
        return [c for c in self.cases if not c.passed]

    @property
    def message(self) -> str:
        """The first failure's message ("" when passed)."""
        return self.failures[0].message if self.failures else ""

    def text(self) -> str:
        return result_text(self)

    def html(self) -> str:
        return result_html(self)

    def __repr__(self) -> str:
        n_ok = sum(c.passed for c in self.cases)
        state = "passed" if self.passed else "failed"
        return f"<CheckResult {self.exercise.id}: {state}, {n_ok}/{len(self.cases)} cases>"

    def _ipython_display_(self) -> None:
        show_result(self)



def check(exercise_id: str, answer: Any, *, show: bool = True, record: bool = True) -> CheckResult:
    """Check an answer to a registered exercise and show a compact pass/fail report.

    In a notebook, end the cell with ``ex.check("01.bfs", bfs_path)``: a widget lists the failing cases with
    *what* is wrong, plus Hint and Show-solution buttons after a failed attempt. Outside a kernel the report is
    printed as text. The outcome is recorded in the progress file (see :func:`toolkit.exercises.progress`).

    Args:
        exercise_id: e.g. ``"01.bfs"``.
        answer: usually your function (not its result).
        show: display the report (False: just return the result).
        record: save the outcome to the progress file.

    Returns:
        A :class:`CheckResult` (truthy when passed). With ``SEARCHLIGHT_STRICT=1`` a failure raises
        :class:`ExerciseFailed` instead, which is how the solution notebooks are tested. In a notebook (and
        ``show=True``) a failure raises :class:`~toolkit.exercises.stops.ExerciseNotDone` after the report, so
        that Run All stops at the first unsolved exercise; it prints one line, not a traceback.
    """
    exercise = get(exercise_id)
    result = CheckResult(exercise, run_checks(exercise, answer))
    if record:
        record_attempt(exercise.id, result.passed)
    if show:
        announce(result)
    if strict_mode() and not result.passed:
        raise ExerciseFailed(result.text())
    if show and not result.passed and current_shell() is not None:
        started = not any(c.name == NOT_STARTED for c in result.cases)
        raise ExerciseNotDone(exercise.id, started)  # Run All stops here, with one line (see stops.py)
    return result
