"""Every exercise: the reference passes, and every registered plausible mistake is rejected with its message.

Plus hand-written wrong answers that are not copies of a registered mistake.
"""

from __future__ import annotations

import pytest

from toolkit import exercises as ex


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


EXERCISES = ex.all_exercises()
MISTAKES = [(e.id, i) for e in EXERCISES for i in range(len(e.mistakes))]


@pytest.mark.parametrize("exercise_id", [e.id for e in EXERCISES])
def test_reference_passes(exercise_id):
    exercise = ex.get(exercise_id)
    result = ex.check(exercise_id, exercise.reference, show=False)
    assert result.passed, result.text()


@pytest.mark.parametrize("exercise_id, k", MISTAKES, ids=[f"{e}-mistake{k}" for e, k in MISTAKES])
def test_mistake_is_rejected_with_its_message(exercise_id, k):
    mistake = ex.get(exercise_id).mistakes[k]
    result = ex.check(exercise_id, mistake.fn, show=False)
    assert not result.passed
    assert any(c.message == mistake.message for c in result.failures), result.text()


# --- hand-written wrong answers --------------------------------------------------------------------------


def test_bfs_without_visited_set_is_stopped():
    def no_visited(neighbors, start, goal):
        queue = [[start]]
        while queue:
            path = queue.pop(0)
            if path[-1] == goal:
                return path
            queue.extend(path + [m] for m in neighbors.get(path[-1], []))
        return None

    result = ex.check("01.bfs", no_visited, show=False)
    assert not result and "endless loop" in result.text()


def test_bfs_returning_only_the_length_is_explained():
    from toolkit.exercises.chapters.ch01_search import bfs_path

    result = ex.check("01.bfs", lambda n, s, g: len(bfs_path(n, s, g) or []), show=False)
    assert "should be a list" in result.message


def test_backward_chain_that_forgets_to_reverse_a_copy():
    def sloppy(edges, goal):
        parent = dict((b, a) for a, b in edges)
        out = [goal]
        while out[-1] in parent:
            out.append(parent[out[-1]])
        return out

    assert "goal -> root" in ex.check("01.backward_chain", sloppy, show=False).message
