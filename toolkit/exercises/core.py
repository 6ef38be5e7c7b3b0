"""Exercises: the registry and the checker protocol (:func:`~toolkit.exercises.checking.check` runs them).

An :class:`Exercise` owns a *checker*: a function that takes the learner's answer and yields
:class:`Case` results. Most exercises ask for a function and are built with :func:`function_exercise`:
the checker calls the learner's function and a reference on the same inputs and compares the outputs
(:mod:`toolkit.exercises.compare`), and, when they differ, runs each :class:`Mistake` (a plausible wrong
version of the reference) to name the slip ("you forgot the mask").
"""

from __future__ import annotations

import copy
import inspect
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from toolkit.exercises.compare import describe, diff

ID_RE = re.compile(r"^\d\d\.[a-z0-9_]+$")
STRICT_ENV = "SEARCHLIGHT_STRICT"
NOT_STARTED = "not implemented yet"  # the case name of an answer that still raises NotImplementedError


@dataclass
class Case:
    """The outcome of one test case: ``message`` says what is wrong, ``detail`` adds the evidence."""

    name: str
    passed: bool
    message: str = ""
    detail: str = ""


@dataclass
class Mistake:
    """A plausible wrong answer: ``fn`` has the reference's signature; ``message`` names the slip."""

    message: str
    fn: Callable[..., Any]


class LearnerError(Exception):
    """The learner's code raised ``error`` while being checked."""

    def __init__(self, error: BaseException, tb: str):
        super().__init__(str(error))
        self.error = error
        self.tb = tb


class ExerciseFailed(AssertionError):
    """Raised by :func:`check` in strict mode (``SEARCHLIGHT_STRICT=1``, used to test solution notebooks)."""


def _copy(value: Any) -> Any:
    """Copy arguments so a learner's in-place edit cannot change the reference's inputs (modules are shared)."""
    if isinstance(value, torch.nn.Module):
        return value
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value) if not hasattr(value, "_fields") else value
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - uncopyable objects are passed as they are
        return value


def _learner_traceback(err: BaseException) -> str:
    """The frames of the traceback that belong to the learner's code (not this package)."""
    here = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not os.path.abspath(f.filename).startswith(here)]
    lines = [f"line {f.lineno}: {f.line}" for f in frames if f.line][-2:]
    return " | ".join(lines)


class _Timeout(BaseException):
    """Raised inside the learner's code when it runs too long (a BaseException, so `except Exception` in the
    learner's code cannot swallow it)."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (main thread on Unix only; elsewhere no limit).

    An outer SIGALRM timer (e.g. pytest-timeout's) is restored afterwards with its remaining time.
    """
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout()

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - start), 1e-3), old_interval)


def call(fn: Callable[..., Any], *args: Any, time_limit: float | None = 10.0, **kwargs: Any) -> Any:
    """Call the learner's function on copies of the arguments; wrap anything it raises in LearnerError.

    A call running longer than ``time_limit`` seconds is stopped and reported (an endless loop, e.g. a search
    without a visited set, must not hang the notebook).
    """
    args, kwargs = _copy(args), _copy(kwargs)
    try:
        with _time_limit(time_limit):
            return fn(*args, **kwargs)
    except _Timeout:
        err = TimeoutError(f"it ran for more than {time_limit:g} s on a small input: is there an endless loop "
                           "(e.g. a search that revisits nodes because it keeps no visited set)?")
        raise LearnerError(err, "") from None
    except Exception as err:  # noqa: BLE001 - every learner error becomes a failed case
        raise LearnerError(err, _learner_traceback(err)) from err


Checker = Callable[[Any], Iterable[Case]]


@dataclass
class Exercise:
    """One registered exercise.

    Attributes:
        id: ``"NN.name"``; ``NN`` is the tutorial number.
        title: a few words.
        difficulty / importance: 1–5 stars.
        minutes: estimated time.
        checker: ``answer -> iterable of Case``.
        hints: tiered hints, vaguest first (plain text; `backticks` become code).
        reference: the reference function (its signature is the stub's), or None.
        signature: the typed stub signature shown to the learner.
        mistakes: plausible wrong answers the checker diagnoses (the tests also use them).
        wants_callable: the answer must be a function.
    """

    id: str
    title: str
    difficulty: int
    importance: int
    minutes: int
    checker: Checker
    hints: list[str] = field(default_factory=list)
    reference: Callable[..., Any] | None = None
    signature: str = ""
    mistakes: list[Mistake] = field(default_factory=list)
    wants_callable: bool = True

    def __post_init__(self) -> None:
        if not ID_RE.match(self.id):
            raise ValueError(f"exercise id {self.id!r} must look like 'NN.name' (two digits, a dot, snake_case)")
        for name in ("difficulty", "importance"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 5:
                raise ValueError(f"exercise {self.id}: {name} must be an integer 1-5, got {value!r}")
        if not self.hints:
            raise ValueError(f"exercise {self.id}: give at least one hint")
        if not self.signature and self.reference is not None:
            self.signature = signature_of(self.reference)

    @property
    def notebook(self) -> str:
        """The tutorial number, e.g. ``"01"``."""
        return self.id.split(".")[0]

    def badge(self) -> str:
        """``difficulty ★★☆☆☆ · importance ★★★★★ · ~10 min`` (used in the notebooks' exercise headings)."""
        return f"difficulty {stars(self.difficulty)} · importance {stars(self.importance)} · ~{self.minutes} min"

    def __repr__(self) -> str:
        return f"Exercise({self.id}: {self.title}; {self.badge()})"


def stars(n: int) -> str:
    return "★" * n + "☆" * (5 - n)


def signature_of(fn: Callable[..., Any]) -> str:
    """``def name(arg: type, ...) -> type`` as written in the source (annotations kept as strings)."""
    sig = inspect.signature(fn)
    return f"def {fn.__name__}{sig}".replace("'", "")


_REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the registry (ids are unique)."""
    if exercise.id in _REGISTRY:
        raise ValueError(f"exercise {exercise.id!r} is registered twice; pick another id")
    _REGISTRY[exercise.id] = exercise
    return exercise


def get(exercise_id: str) -> Exercise:
    """The registered exercise; unknown ids raise KeyError listing the valid ones."""
    if exercise_id not in _REGISTRY:
        raise KeyError(f"no exercise {exercise_id!r}; registered exercises: {sorted(_REGISTRY)}")
    return _REGISTRY[exercise_id]


def all_exercises(notebook: str | None = None) -> list[Exercise]:
    """Every registered exercise (of one notebook, e.g. ``"01"``), by notebook, then in registration order
    (register a chapter's exercises in the order the notebook introduces them)."""
    return sorted((e for e in _REGISTRY.values() if notebook is None or e.notebook == notebook),
                  key=lambda e: e.notebook)


def function_exercise(id: str, *, title: str, difficulty: int, importance: int, minutes: int,
                      hints: Sequence[str], reference: Callable[..., Any],
                      cases: Callable[[], Iterable[tuple]], mistakes: Sequence[Mistake] = (),
                      compare: Callable[[Any, Any, tuple], str | None] | None = None,
                      extra: Callable[[Callable[..., Any]], Iterator[Case]] | None = None,
                      signature: str = "", time_limit: float = 10.0) -> Exercise:
    """Register an exercise whose answer is a function checked against ``reference``.

    Args:
        cases: returns ``(name, args)`` or ``(name, args, kwargs)`` tuples; built lazily at check time.
        mistakes: wrong variants of the reference; when the learner's output matches one, its message is shown.
        compare: ``(got, expected, args) -> message or None``; default :func:`toolkit.exercises.compare.diff`.
        extra: more checks, ``fn -> iterator of Case`` (run after the cases).
        time_limit: seconds allowed per call of the learner's function.
    """
    cmp = compare or (lambda got, exp, args: diff(got, exp))

    def checker(fn: Callable[..., Any]) -> Iterator[Case]:
        for case in cases():
            name, args, kwargs = (*case, {})[:3] if len(case) == 2 else case
            expected = reference(*_copy(args), **_copy(kwargs))
            got = call(fn, *args, time_limit=time_limit, **kwargs)
            problem = cmp(got, expected, args)
            if problem is None:
                yield Case(name, True)
                continue
            message, detail = problem, ""
            for mistake in mistakes:
                try:
                    with _time_limit(time_limit):
                        wrong = mistake.fn(*_copy(args), **_copy(kwargs))
                except (Exception, _Timeout):  # noqa: BLE001 - a mistake that fails on this input cannot match
                    continue
                if cmp(got, wrong, args) is None:
                    message, detail = mistake.message, problem
                    break
            yield Case(name, False, message, detail)
        if extra is not None:
            yield from extra(fn)

    return register(Exercise(id, title, difficulty, importance, minutes, checker, list(hints), reference,
                             signature, list(mistakes)))


def run_checks(exercise: Exercise, answer: Any, max_failures: int = 3) -> list[Case]:
    """Run the checker, turning exceptions into failed cases. Stops after ``max_failures`` failures."""
    cases: list[Case] = []
    if exercise.wants_callable and not callable(answer):
        hint = " (pass the function itself: no parentheses after its name)" if answer is not None else ""
        return [Case("answer type", False, f"expected a function, got a {describe(answer)}{hint}")]
    try:
        for case in exercise.checker(answer):
            cases.append(case)
            if sum(not c.passed for c in cases) >= max_failures:
                break
    except LearnerError as err:
        if isinstance(err.error, NotImplementedError):
            cases.append(Case(NOT_STARTED, False,
                              "your function still raises NotImplementedError: replace the "
                              "`raise NotImplementedError(...)` line with your code, then re-run its cell"))
        else:
            cases.append(Case("error", False,
                              f"your code raised {type(err.error).__name__}: {err.error}", err.tb))
    except Exception as err:  # noqa: BLE001 - a checker bug must not crash the learner's notebook
        cases.append(Case("checker error", False,
                          f"the checker itself failed ({type(err).__name__}: {err}); this is a bug in "
                          "toolkit.exercises, please report it", traceback.format_exc(limit=-2)))
    return cases


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes")
