"""Graded exercises with automatic checks, hints, solutions and a local progress record.

In a tutorial::

    from toolkit import exercises as ex
    ex.overview("01")                 # the notebook's exercises: difficulty, importance, minutes
    ...                               # write the function in the exercise cell
    ex.check("01.bfs", bfs_path)      # compact pass/fail report saying *what* is wrong
    ex.hint("01.bfs")                 # tiered hints, one more per call
    ex.show_solution("01.bfs")        # also offered by a button after a failed check
    ex.answer("06.q", my_answer, **numbers)   # an open question's reference answer, after your own attempt
    ex.progress()                     # checks passed per notebook
    ex.claim("parent is decodable after block 0", acc, at_least=0.95)   # a finding, checked with its bound

Progress is saved in ``~/.searchlight/progress.json``; ``SEARCHLIGHT_PROGRESS=<path>`` moves it and
``SEARCHLIGHT_PROGRESS=off`` turns it off. ``SEARCHLIGHT_STRICT=1`` makes a failed check raise
(used to test the solution notebooks). In a notebook, a check that does not pass stops Run All there with one
line naming the exercise, and a cell that calls an unwritten stub says which exercise it needs (``stops.py``).

Authoring (see ``toolkit/exercises/README.md``): register exercises in a module
``toolkit/exercises/chapters/chNN_<topic>.py`` with :func:`function_exercise` (or :func:`register` for a
custom checker), write the solution notebook ``tutorials/solutions/NN_<name>.ipynb`` with
``# SOLUTION`` / ``# END SOLUTION`` blocks, and run ``scripts/make_learner_notebooks.py``.
"""

from toolkit.exercises import chapters  # noqa: F401 - importing registers every chapter's exercises
from toolkit.exercises.checking import CheckResult, check
from toolkit.exercises.claims import Claim, ClaimFailed, claim, run_seed
from toolkit.exercises.core import (
    Case,
    Exercise,
    ExerciseFailed,
    Mistake,
    all_exercises,
    call,
    function_exercise,
    get,
    register,
    stars,
)
from toolkit.exercises.display import hint, overview, show_solution
from toolkit.exercises.questions import answer
from toolkit.exercises.stops import ExerciseNotDone
from toolkit.exercises.stops import install as _install_stops
from toolkit.exercises.tracking import progress, progress_path, reset_progress

_install_stops()  # in a notebook: an unsolved exercise stops Run All with one line, not a traceback

__all__ = [
    "Case",
    "answer",
    "Claim",
    "ClaimFailed",
    "CheckResult",
    "Exercise",
    "ExerciseFailed",
    "ExerciseNotDone",
    "Mistake",
    "all_exercises",
    "call",
    "check",
    "claim",
    "function_exercise",
    "get",
    "hint",
    "overview",
    "progress",
    "progress_path",
    "register",
    "reset_progress",
    "run_seed",
    "show_solution",
    "stars",
]
