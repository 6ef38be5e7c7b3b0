"""The exercise system: checking, diagnosis, time limits, hints, solutions, progress, display."""

from __future__ import annotations

import json
import signal
import time

import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises import compare, core, display, tracking


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", str(tmp_path / "progress.json"))
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)
    display._HINT_LEVEL.clear()


def _square_exercise(**kwargs) -> core.Exercise:
    """An unregistered toy exercise: square a tensor."""

    def square(x: torch.Tensor) -> torch.Tensor:
        return x * x

    def checker(fn):
        for n in (3, 5):
            x = torch.arange(n, dtype=torch.float32) - 1
            problem = compare.diff_tensor(core.call(fn, x, time_limit=kwargs.get("limit", 2.0)), square(x))
            yield core.Case(f"n={n}", problem is None, problem or "")

    return core.Exercise("99.square", "Square", 1, 1, 1, checker, ["multiply"], square)


# --- check -----------------------------------------------------------------------------------------------


def test_reference_passes_and_result_is_truthy(capsys):
    from toolkit.exercises.chapters.ch01_search import backward_chain

    result = ex.check("01.backward_chain", backward_chain)
    assert result and result.passed and result.message == ""
    assert "✔ 01.backward_chain" in capsys.readouterr().out  # printed: no IPython here
    assert "passed" in repr(result)


def test_wrong_answer_names_the_mistake():
    result = ex.check("01.backward_chain", lambda edges, goal: [goal], show=False)
    assert not result
    assert "root is missing" in result.message or "walked down the tree" in result.message


def test_not_callable_answer_says_pass_the_function():
    result = ex.check("01.bfs", [0, 1], show=False)
    assert not result and "pass the function itself" in result.message


def test_stub_fails_with_a_message_not_a_crash():
    def stub(neighbors, start, goal):
        raise NotImplementedError("Exercise 01.bfs: replace this line with your code")

    result = ex.check("01.bfs", stub, show=False)
    assert not result
    assert result.cases[0].name == "not implemented yet" and "NotImplementedError" in result.message


def test_learner_exception_is_reported_with_its_line():
    def broken(edges, goal):
        return edges[99]

    result = ex.check("01.backward_chain", broken, show=False)
    assert "IndexError" in result.message and "edges[99]" in result.failures[0].detail


def test_endless_loop_is_stopped_and_explained():
    def forever(x):
        while True:
            pass

    start = time.perf_counter()
    cases = core.run_checks(_square_exercise(limit=0.3), forever)
    assert time.perf_counter() - start < 5
    assert "endless loop" in cases[-1].message


def test_outer_alarm_timer_survives_a_time_limit():
    old = signal.signal(signal.SIGALRM, lambda *a: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        core.call(lambda: None, time_limit=1.0)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_checker_bug_is_reported_not_raised():
    def bad_checker(fn):
        raise RuntimeError("oops")
        yield  # pragma: no cover

    exercise = core.Exercise("99.bad", "Bad", 1, 1, 1, bad_checker, ["none"])
    cases = core.run_checks(exercise, lambda: None)
    assert "bug in toolkit.exercises" in cases[0].message


def test_learner_cannot_modify_the_reference_inputs():
    def mutating(x):
        x.mul_(0)
        return x

    cases = core.run_checks(_square_exercise(), mutating)
    assert not cases[0].passed  # -1, 0, 1 squared is not 0, 0, 0: the reference saw the original input


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_STRICT", "1")
    with pytest.raises(ex.ExerciseFailed, match="01.backward_chain"):
        ex.check("01.backward_chain", lambda edges, goal: [], show=False)


def test_unknown_exercise_lists_valid_ids():
    with pytest.raises(KeyError, match="01.bfs"):
        ex.get("01.nope")


@pytest.mark.parametrize("kwargs, match", [({"id": "1.x"}, "NN.name"), ({"difficulty": 6}, "difficulty"),
                                           ({"hints": []}, "hint")])
def test_exercise_validation(kwargs, match):
    args = {"id": "99.ok", "title": "t", "difficulty": 1, "importance": 1, "minutes": 1,
            "checker": lambda fn: [], "hints": ["h"]} | kwargs
    with pytest.raises(ValueError, match=match):
        core.Exercise(**args)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        core.register(ex.get("01.bfs"))


def test_every_exercise_has_metadata_and_a_typed_signature():
    for e in ex.all_exercises():
        assert e.signature.startswith("def ") and "->" in e.signature, e.id
        assert 1 <= e.difficulty <= 5 and 1 <= e.importance <= 5 and e.minutes > 0
        assert len(e.hints) >= 2, f"{e.id}: give tiered hints"
        if e.notebook in ("01", "02", "03", "04"):  # custom checkers elsewhere test their wrong answers themselves
            assert e.mistakes, f"{e.id}: register at least one plausible mistake"


# --- hints, solutions, overview --------------------------------------------------------------------------


def test_hints_are_tiered():
    first, second = ex.hint("01.bfs"), ex.hint("01.bfs")
    assert "Hint 1/3" in repr(first) and "Hint 2/3" in repr(second)
    assert "Hint 3/3" in repr(ex.hint("01.bfs", 3)) and "last hint" in repr(ex.hint("01.bfs"))
    with pytest.raises(ValueError, match="hints 1..3"):
        ex.hint("01.bfs", 4)
    assert "<code>" in ex.hint("01.bfs", 3)._repr_html_()  # the last hint is nearly the answer: code


def test_show_solution_is_recorded(tmp_path):
    shown = ex.show_solution("01.backward_chain")
    assert "def backward_chain" in repr(shown) and "<pre" in shown._repr_html_()
    saved = json.loads((tmp_path / "progress.json").read_text())
    assert saved["exercises"]["01.backward_chain"]["solution_viewed"] is True


def test_overview_lists_a_notebooks_exercises():
    text = repr(ex.overview("01"))
    assert "01.bfs" in text and "★" in text and "minutes" in text
    with pytest.raises(KeyError):
        ex.overview("77")


# --- progress --------------------------------------------------------------------------------------------


def test_progress_counts_attempts_and_keeps_a_pass(tmp_path):
    from toolkit.exercises.chapters.ch01_search import backward_chain

    ex.check("01.backward_chain", lambda e, g: [], show=False)
    ex.check("01.backward_chain", backward_chain, show=False)
    ex.check("01.backward_chain", lambda e, g: [], show=False)
    entry = json.loads((tmp_path / "progress.json").read_text())["exercises"]["01.backward_chain"]
    assert entry["attempts"] == 3 and entry["passed"] is True and "first_passed" in entry
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]  # no temp files left behind
    report = ex.progress()
    row = next(r for r in report.rows if r["notebook"] == "01")
    assert row["passed"] == 1 and row["total"] == len(ex.all_exercises("01"))
    assert "✔backward_chain" in report.text() and "<table>" in report._repr_html_()
    ex.reset_progress("01")
    assert next(r for r in ex.progress().rows if r["notebook"] == "01")["passed"] == 0


def test_progress_off_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    ex.check("01.backward_chain", lambda e, g: [], show=False)
    assert ex.progress_path() is None and list(tmp_path.iterdir()) == []


def test_default_progress_path_is_in_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SEARCHLIGHT_PROGRESS")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ex.progress_path() == tmp_path / ".searchlight" / "progress.json"


def test_corrupt_progress_file_warns_and_starts_fresh(tmp_path):
    (tmp_path / "progress.json").write_text("{not json")
    with pytest.warns(UserWarning, match="could not read"):
        assert tracking.load()["exercises"] == {}


def test_unwritable_progress_warns_once(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", str(blocker / "progress.json"))  # parent is a file
    monkeypatch.setattr(tracking, "_warned", False)
    with pytest.warns(UserWarning, match="could not save"):
        tracking.record_attempt("01.bfs", True)


# --- display ---------------------------------------------------------------------------------------------


def test_failure_widget_has_buttons_and_a_static_fallback():
    result = ex.check("01.bfs", lambda n, s, g: None, show=False)
    box = display._failure_widget(result)
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "✘ 01.bfs" in bundle["text/html"] and bundle["text/plain"].startswith("✘ 01.bfs")
    hint_button, solution_button = box.children[1].children
    hint_button.click()
    assert "Hint 1/3" in box.children[2].value
    solution_button.click()
    assert "def bfs_path" in box.children[2].value


def test_html_report_escapes_and_formats_code():
    result = ex.check("01.bfs", lambda n, s, g: "<script>", show=False)
    page = result.html()
    assert "<script>" not in page and "&lt;script&gt;" in page and "✘" in page


# --- compare ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("got, expected, kwargs, words", [
    (torch.zeros(3, 4), torch.zeros(4, 3), {}, "transposed"),
    (torch.zeros(3, 1), torch.zeros(3), {}, "size 1"),
    (torch.zeros(3, 4), torch.zeros(3), {}, "should be reduced"),
    (torch.zeros(3), torch.zeros(3, 4), {}, "should be kept"),
    (-torch.arange(1.0, 4), torch.arange(1.0, 4), {}, "wrong sign"),
    (2 * torch.arange(1.0, 4), torch.arange(1.0, 4), {}, "constant factor 2"),
    (torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, 1.0]), {}, "NaN"),
    (torch.tensor([[0.0, 1, 2, 3]]), torch.tensor([[1.0, 2, 3, 4]]), {"seq_dim": 1}, "one position too late"),
    (torch.tensor([[1.0, 2, 3, 0]]), torch.tensor([[0.0, 1, 2, 3]]), {"seq_dim": 1}, "one position too early"),
    (torch.tensor([1.0, 5.0]), torch.tensor([1.0, 1.0]), {}, "1 of 2 values differ"),
    ("text", torch.zeros(2), {}, "should be a tensor"),
])
def test_diff_tensor_diagnoses(got, expected, kwargs, words):
    assert words in compare.diff_tensor(got, expected, **kwargs)


def test_diff_tensor_accepts_equivalent_forms():
    assert compare.diff_tensor([1.0, 2.0], torch.tensor([1.0, 2.0])) is None
    assert compare.diff_tensor(torch.tensor([1, 0]), torch.tensor([True, False])) is None


@pytest.mark.parametrize("got, expected, words", [
    ([3, 2, 1], [1, 2, 3], "reverse order"),
    ([2, 3], [1, 2, 3], "left out the first"),
    ([1, 2, 3, 4], [1, 2, 3], "too many at the end"),
    ([2, 1, 3], [1, 2, 3], "wrong order"),
    (5, 4, "off by one"),
    (None, [1], "forget a `return`"),
    ({1: 2}, {1: 2, 3: 4}, "missing the key"),
    ({1, 2}, {1, 3}, "missing [3]"),
    ("3", 3, "should be a number"),
])
def test_diff_value_diagnoses(got, expected, words):
    assert words in compare.diff_value(got, expected)


def test_diff_value_normalises_containers():
    assert compare.diff_value((1, 2), [1, 2]) is None
    assert compare.diff_value(torch.tensor([1, 2]), [1, 2]) is None
    assert compare.diff_value(0.1 + 0.2, 0.3) is None
    assert compare.diff_value([1, 2], {1, 2}) is None
