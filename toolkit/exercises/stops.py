"""Run All stops at the first unsolved exercise, with one friendly line instead of a traceback.

In a learner notebook an exercise cell holds a stub, ``raise NotImplementedError("Exercise 01.bfs: replace this
line with your code")``, and the cell after it runs ``ex.check("01.bfs", bfs)``. Two things happen in a kernel:

* a check that does not pass shows its report, then raises :class:`ExerciseNotDone`. The cell counts as failed, so
  JupyterLab's *Run All* stops there instead of running on into cells that need the exercise;
* a later cell that calls a stub (run by hand, out of order) raises the stub's ``NotImplementedError``.

Both would print a full traceback, often from deep inside the toolkit. Instead each prints one short line naming
the exercise: :class:`ExerciseNotDone` renders itself so, and :func:`install` (run by ``from toolkit import
exercises``) registers an IPython handler that does the same for a stub's ``NotImplementedError``. Any other
exception keeps IPython's usual traceback.
"""

from __future__ import annotations

import re
import sys
from typing import Any

STUB_MESSAGE = re.compile(r"^Exercise (?P<id>\d\d\.[A-Za-z0-9_]+): ")


class ExerciseNotDone(Exception):
    """Raised by :func:`toolkit.exercises.check` in a notebook when an exercise does not pass yet.

    IPython shows it as one line (``_render_traceback_``, IPython's protocol for exceptions that render
    themselves), with or without :func:`install`.
    """

    def __init__(self, exercise_id: str, started: bool):
        self.exercise_id, self.started = exercise_id, started
        super().__init__(stop_message(exercise_id, started))

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def stop_message(exercise_id: str, started: bool) -> str:
    """The one line shown where Run All stopped."""
    if started:
        return (f"Run All stopped here: exercise {exercise_id} does not pass yet (the report above says what is "
                "wrong). Fix its cell, run it, then run this cell again to continue.")
    return (f"Run All stopped here: exercise {exercise_id} is not written yet. Replace the `raise "
            "NotImplementedError` line in its cell with your code, run that cell, then run this cell again.")


def stub_message(exercise_id: str) -> str:
    """The one line shown when a cell runs a stub that was never written."""
    return (f"Exercise {exercise_id} is not written yet, and this cell needs it. Replace the `raise "
            f"NotImplementedError` line in the exercise's cell with your code (stuck: `ex.hint(\"{exercise_id}\")`), "
            "run that cell and its check, then run this cell again.")


def stub_id(error: BaseException) -> str | None:
    """The exercise id of a stub's ``NotImplementedError`` (None for any other exception)."""
    if not isinstance(error, NotImplementedError) or not error.args:
        return None
    m = STUB_MESSAGE.match(str(error.args[0]))
    return m.group("id") if m else None


def show_stub_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
    """IPython custom-exception handler for ``NotImplementedError``: one line for an exercise stub, the usual
    traceback for any other."""
    ex_id = stub_id(value)
    if ex_id is not None:
        line = stub_message(ex_id)
        value._render_traceback_ = lambda: [line]  # IPython's protocol for an exception that renders itself
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def current_shell() -> Any:
    """The running IPython shell, or None (without importing IPython)."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def install(shell: Any = None) -> bool:
    """Register :func:`show_stub_error` in the running IPython shell; True when it is in place.

    Leaves a shell alone that already has another library's custom-exception handler (it would be replaced).
    """
    shell = shell if shell is not None else current_shell()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    if getattr(shell, "_searchlight_stops", False):
        return True
    if tuple(getattr(shell, "custom_exceptions", ())):
        return False
    shell.set_custom_exc((NotImplementedError,), show_stub_error)
    shell._searchlight_stops = True
    return True
