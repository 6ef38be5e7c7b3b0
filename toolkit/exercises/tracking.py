"""A small local record of exercise attempts: which checks passed, per notebook.

The file is JSON at ``~/.searchlight/progress.json``; set the environment variable ``SEARCHLIGHT_PROGRESS``
to another path, or to ``off`` to record nothing (the tests and the notebook runs do this). Writes are
atomic (temp file + ``os.replace``), so an interrupted kernel never leaves a half-written file.

Schema::

    {"version": 1, "exercises": {"01.bfs": {"passed": true, "attempts": 3, "first_passed": "<iso time>",
                                             "last_attempt": "<iso time>", "solution_viewed": false}}}
"""

from __future__ import annotations

import html
import json
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit._io import atomic_write
from toolkit.exercises.core import all_exercises

ENV = "SEARCHLIGHT_PROGRESS"
_OFF = {"off", "none", "0", "false", ""}
_warned = False


def progress_path() -> Path | None:
    """Where progress is saved, or None when recording is off."""
    value = os.environ.get(ENV)
    if value is None:
        return Path.home() / ".searchlight" / "progress.json"
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser()


def load() -> dict[str, Any]:
    """The saved record (an empty one when there is none or it cannot be read)."""
    path = progress_path()
    empty: dict[str, Any] = {"version": 1, "exercises": {}}
    if path is None or not path.exists():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        warnings.warn(f"could not read the progress file {path} ({err}); starting a fresh record. "
                      f"Delete the file or set {ENV} to another path.", stacklevel=2)
        return empty
    if not isinstance(data, dict) or not isinstance(data.get("exercises"), dict):
        return empty
    return data


def _save(data: dict[str, Any]) -> None:
    global _warned
    path = progress_path()
    if path is None:
        return
    try:
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError as err:
        if not _warned:
            warnings.warn(f"could not save exercise progress to {path} ({err}); set {ENV} to a writable file, "
                          "or to 'off'", stacklevel=3)
            _warned = True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_attempt(exercise_id: str, passed: bool) -> None:
    """Count one check of an exercise; a pass is remembered for good."""
    if progress_path() is None:
        return
    data = load()
    entry = data["exercises"].setdefault(exercise_id, {"passed": False, "attempts": 0})
    entry["attempts"] = int(entry.get("attempts", 0)) + 1
    entry["last_attempt"] = _now()
    if passed and not entry.get("passed"):
        entry["passed"] = True
        entry["first_passed"] = entry["last_attempt"]
    _save(data)


def record_solution_viewed(exercise_id: str) -> None:
    if progress_path() is None:
        return
    data = load()
    data["exercises"].setdefault(exercise_id, {"passed": False, "attempts": 0})["solution_viewed"] = True
    _save(data)


def reset_progress(notebook: str | None = None) -> None:
    """Forget all recorded progress, or only one notebook's (e.g. ``"01"``)."""
    data = load()
    if notebook is None:
        data["exercises"] = {}
    else:
        data["exercises"] = {k: v for k, v in data["exercises"].items() if not k.startswith(f"{notebook}.")}
    _save(data)


class ProgressReport:
    """Per-notebook overview: ``rows`` is a list of dicts; shows as an HTML table or text."""

    def __init__(self, rows: list[dict[str, Any]], path: Path | None):
        self.rows = rows
        self.path = path

    def text(self) -> str:
        head = f"{'notebook':<9} {'passed':>7}  exercises (✔ passed, ✘ tried, · not tried)"
        lines = [head]
        for r in self.rows:
            marks = " ".join(f"{m}{e}" for e, m in r["marks"])
            lines.append(f"{r['notebook']:<9} {r['passed']:>3}/{r['total']:<3}  {marks}")
        if self.path is None:
            lines.append(f"(progress is not being saved: {ENV}=off)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = []
        for r in self.rows:
            frac = r["passed"] / r["total"] if r["total"] else 0.0
            bar = (f"<div style='width: 120px; background: rgba(127,127,127,.25); height: 8px'>"
                   f"<div style='width: {100 * frac:.0f}%; background: #2e7d32; height: 8px'></div></div>")
            marks = " ".join(f"{m}&nbsp;{html.escape(e)}" for e, m in r["marks"])
            body.append(f"<tr><td>{r['notebook']}</td><td>{r['passed']}/{r['total']}</td><td>{bar}</td>"
                        f"<td style='text-align: left'>{marks}</td></tr>")
        note = f"<small>(progress is not being saved: {ENV}=off)</small>" if self.path is None else ""
        return (f"<table><tr><th>notebook</th><th>passed</th><th></th><th style='text-align: left'>exercises "
                f"(✔ passed, ✘ tried, · not tried)</th></tr>{''.join(body)}</table>{note}")

    def __repr__(self) -> str:
        return self.text()


def progress(notebook: str | None = None) -> ProgressReport:
    """Overview of checks passed per notebook (all registered exercises, or one notebook's)."""
    saved = load()["exercises"]
    by_nb: dict[str, list[tuple[str, str]]] = {}
    for ex in all_exercises(notebook):
        entry = saved.get(ex.id, {})
        mark = "✔" if entry.get("passed") else ("✘" if entry.get("attempts") else "·")
        by_nb.setdefault(ex.notebook, []).append((ex.id.split(".", 1)[1], mark))
    rows = [{"notebook": nb, "passed": sum(m == "✔" for _, m in marks), "total": len(marks), "marks": marks}
            for nb, marks in sorted(by_nb.items())]
    return ProgressReport(rows, progress_path())
