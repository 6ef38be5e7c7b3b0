"""Open questions: a reference answer written with the notebook's own numbers, shown only after an attempt.

A chapter module registers the answer as a template over named numbers; the notebook passes the learner's text and
the numbers it computed::

    question("06.undertrained_agreement", lambda agreement, truth: f"... {agreement[128]:.2f} ...")   # chapter
    ex.answer("06.undertrained_agreement", my_answer, agreement=agreement, truth=truth)            # notebook

Like a solution (offered after a check), the reference answer is shown only once ``my_answer`` holds an attempt
of at least :data:`MIN_WORDS` words; the learner copy's ``my_answer`` holds the generated stub line, which does
not count. The answers are computed, never typed, so they stay true when the notebook's numbers move.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from toolkit.exercises.display import _BLUE, _BOX, _Shown

MIN_WORDS = 8
_STUB = re.compile(r"raise NotImplementedError\(")
_QUESTIONS: dict[str, Callable[..., str]] = {}


def question(question_id: str, answer: Callable[..., str]) -> None:
    """Register the reference answer of an open question: ``answer(**numbers) -> text``."""
    if question_id in _QUESTIONS:
        raise ValueError(f"question {question_id!r} is registered twice; pick another id")
    _QUESTIONS[question_id] = answer


def questions(notebook: str | None = None) -> list[str]:
    """The registered question ids (of one notebook, e.g. ``"06"``)."""
    return [q for q in _QUESTIONS if notebook is None or q.split(".")[0] == notebook]


def is_attempt(text: Any) -> bool:
    """True when ``text`` is a written answer: a string of at least ``MIN_WORDS`` words, not the generated stub."""
    return isinstance(text, str) and not _STUB.search(text) and len(text.split()) >= MIN_WORDS


def answer_text(question_id: str, my_answer: Any, **numbers: Any) -> str:
    """The reference answer (with ``numbers`` filled in) if ``my_answer`` is an attempt, else what to do first."""
    if question_id not in _QUESTIONS:
        raise KeyError(f"no question {question_id!r}; registered questions: {sorted(_QUESTIONS)}")
    if not is_attempt(my_answer):
        return (f"Write your own answer to {question_id} first (a few sentences in `my_answer`, at least {MIN_WORDS} "
                "words), then run this cell again to compare it with a reference answer.")
    return f"Reference answer to {question_id} (with this notebook's numbers):\n{_QUESTIONS[question_id](**numbers)}"


def answer(question_id: str, my_answer: Any, **numbers: Any) -> _Shown:
    """Show the reference answer of an open question, written with ``numbers``, once ``my_answer`` is an attempt."""
    text = answer_text(question_id, my_answer, **numbers)
    return _Shown(text, f'<div style="{_BOX.format(color=_BLUE)}">{html.escape(text).replace(chr(10), "<br>")}</div>')
