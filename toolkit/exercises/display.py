"""Showing check results, hints and solutions: an ipywidgets report in a kernel, plain text elsewhere.

A passing check is a static HTML box (it survives saving, so committed notebooks show it on GitHub).
A failing check is a small widget with *Hint* and *Show solution* buttons; its saved form falls back to
the same static HTML.
"""

from __future__ import annotations

import html
import inspect
import re
from typing import TYPE_CHECKING, Any

from toolkit.exercises.core import all_exercises, get, stars
from toolkit.exercises.tracking import record_solution_viewed

if TYPE_CHECKING:
    from toolkit.exercises.checking import CheckResult

_GREEN, _RED, _BLUE = "#2e7d32", "#c62828", "#1565c0"
_BOX = ("border-left: 4px solid {color}; padding: 4px 10px; margin: 4px 0; "
        "font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; line-height: 1.45;")
_HINT_LEVEL: dict[str, int] = {}  # exercise id -> hints shown so far (this session)


def _inline(text: str) -> str:
    """Escape text for HTML and turn `backticks` into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _in_kernel() -> bool:
    from toolkit._env import widgets_status

    return widgets_status() == "yes"


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the toolkit's dependencies
        return None
    return get_ipython()


def _stuck_line(exercise_id: str) -> str:
    return (f'Stuck? ex.hint("{exercise_id}") gives a hint, ex.show_solution("{exercise_id}") '
            "shows the solution.")


def result_text(result: CheckResult) -> str:
    ex = result.exercise
    n_ok, n_bad = sum(c.passed for c in result.cases), len(result.failures)
    if result.passed:
        return f"✔ {ex.id} {ex.title}: all {n_ok} cases passed"
    lines = [f"✘ {ex.id} {ex.title}: {n_bad} case(s) failed, {n_ok} passed"]
    for case in result.failures:
        lines.append(f"  - {case.name}: {case.message}")
        if case.detail:
            lines.append(f"      ({case.detail})")
    lines.append("  " + _stuck_line(ex.id))
    return "\n".join(lines)


def result_html(result: CheckResult) -> str:
    ex = result.exercise
    n_ok, n_bad = sum(c.passed for c in result.cases), len(result.failures)
    head = f"<b>{'✔' if result.passed else '✘'} {html.escape(ex.id)} · {html.escape(ex.title)}</b>"
    if result.passed:
        return f'<div style="{_BOX.format(color=_GREEN)}">{head} — all {n_ok} cases passed</div>'
    items = []
    for case in result.failures:
        detail = f'<br><span style="opacity: .7">{_inline(case.detail)}</span>' if case.detail else ""
        items.append(f"<li><b>{html.escape(case.name)}</b>: {_inline(case.message)}{detail}</li>")
    return (f'<div style="{_BOX.format(color=_RED)}">{head} — {n_bad} case(s) failed, {n_ok} passed'
            f'<ul style="margin: 2px 0 2px 18px; padding: 0">{"".join(items)}</ul>'
            f'<span style="opacity: .75">{_inline(_stuck_line(ex.id))}</span></div>')


def _failure_widget(result: CheckResult) -> Any:
    import ipywidgets as w

    class ReportBox(w.VBox):
        """A VBox whose saved form (no widget state) falls back to the static report."""

        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            data = super()._repr_mimebundle_(**kwargs)
            data["text/html"] = result.html()
            data["text/plain"] = result.text()
            return data

    ex_id = result.exercise.id
    report = w.HTML(result.html())
    extra = w.HTML("")
    hint_button = w.Button(description="Hint", icon="lightbulb-o", layout=w.Layout(width="auto"))
    solution_button = w.Button(description="Show solution", icon="eye", layout=w.Layout(width="auto"))

    def on_hint(_: Any) -> None:
        extra.value = hint_html(ex_id)

    def on_solution(_: Any) -> None:
        extra.value = solution_html(ex_id)

    hint_button.on_click(on_hint)
    solution_button.on_click(on_solution)
    return ReportBox([report, w.HBox([hint_button, solution_button]), extra])


def show_result(result: CheckResult) -> None:
    """Display a result (``CheckResult._ipython_display_``), once per cell execution."""
    shell = _ipython()
    count = getattr(shell, "execution_count", None)
    if shell is not None and getattr(result, "_shown_at", object()) == count:
        return  # already displayed by check() in this cell
    result._shown_at = count  # type: ignore[attr-defined]
    from IPython.display import display

    if not _in_kernel():
        print(result.text())
    elif result.passed:
        display({"text/html": result.html(), "text/plain": result.text()}, raw=True)
    else:
        display(_failure_widget(result))


def announce(result: CheckResult) -> None:
    """Show a result as soon as :func:`check` has it (text when there is no IPython)."""
    if _ipython() is None:
        print(result.text())
        return
    show_result(result)


# --- hints and solutions -------------------------------------------------------------------------------


def hint_text(exercise_id: str, level: int | None = None) -> str:
    """The next hint (or hint ``level``, 1-based) for an exercise, as text; advances the hint counter."""
    ex = get(exercise_id)
    n = len(ex.hints)
    if level is None:
        level = min(_HINT_LEVEL.get(ex.id, 0) + 1, n)
    if not 1 <= level <= n:
        raise ValueError(f"exercise {ex.id} has hints 1..{n}, got level={level}")
    _HINT_LEVEL[ex.id] = max(_HINT_LEVEL.get(ex.id, 0), level)
    more = f" (call again for hint {level + 1})" if level < n else " (that was the last hint)"
    return f"Hint {level}/{n} for {ex.id}: {ex.hints[level - 1]}{more}"


def hint_html(exercise_id: str, level: int | None = None) -> str:
    return f'<div style="{_BOX.format(color=_BLUE)}">💡 {_inline(hint_text(exercise_id, level))}</div>'


def solution_source(exercise_id: str) -> str:
    """The solution cell from the solution notebook (falls back to the reference's source)."""
    ex = get(exercise_id)
    from toolkit.exercises._solutions import SOLUTIONS

    if ex.id in SOLUTIONS:
        return SOLUTIONS[ex.id]
    if ex.reference is not None:
        return inspect.getsource(ex.reference)
    raise KeyError(f"exercise {ex.id} has no stored solution; run scripts/make_learner_notebooks.py")


def solution_html(exercise_id: str) -> str:
    record_solution_viewed(exercise_id)
    code = html.escape(solution_source(exercise_id))
    return (f'<div style="{_BOX.format(color=_BLUE)}"><b>Solution to {html.escape(exercise_id)}</b>'
            f'<pre style="margin: 4px 0; white-space: pre-wrap">{code}</pre></div>')


class _Shown:
    """A displayable snippet: HTML in notebooks, text elsewhere."""

    def __init__(self, text: str, html_: str):
        self.text, self._html = text, html_

    def _repr_html_(self) -> str:
        return self._html

    def __repr__(self) -> str:
        return self.text


def hint(exercise_id: str, level: int | None = None) -> _Shown:
    """Show the next hint for an exercise (each call reveals one more), or hint ``level`` (1-based)."""
    text = hint_text(exercise_id, level)
    return _Shown(text, f'<div style="{_BOX.format(color=_BLUE)}">💡 {_inline(text)}</div>')


def show_solution(exercise_id: str) -> _Shown:
    """Reveal the solution of an exercise (recorded in the progress file as viewed)."""
    src = solution_source(exercise_id)
    return _Shown(f"Solution to {exercise_id}:\n{src}", solution_html(exercise_id))


def overview(notebook: str) -> _Shown:
    """A table of one notebook's exercises: id, title, difficulty, importance, minutes."""

    exs = all_exercises(notebook)
    if not exs:
        raise KeyError(f"no exercises registered for notebook {notebook!r}")
    rows = [(e.id, e.title, stars(e.difficulty), stars(e.importance), f"~{e.minutes} min") for e in exs]
    head = ("exercise", "title", "difficulty", "importance", "time")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    text = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [head, *rows])
    total = sum(e.minutes for e in exs)
    cells = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in r)
                    + "</tr>" for r in rows)
    ths = "".join(f"<th style='text-align:left'>{h}</th>" for h in head)
    table = f"<table><tr>{ths}</tr>{cells}</table><p>{len(exs)} exercises, about {total} minutes.</p>"
    return _Shown(text + f"\n{len(exs)} exercises, about {total} minutes.", table)
