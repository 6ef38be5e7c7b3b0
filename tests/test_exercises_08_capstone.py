"""Tutorial 08 exercises: the write-up checker rejects incomplete write-ups, plus chapter-specific checks
(tests/test_exercises_checks.py runs every reference and registered mistake)."""

from __future__ import annotations

import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises.chapters import ch08_capstone as ch

IDS = ["08.follow_rates", "08.accuracy_by_group", "08.future_label"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_chapter_registers_its_exercises():
    assert sorted(e.id for e in ex.all_exercises("08")) == sorted([*IDS, "08.write_up"])
    for e in (ex.get(i) for i in IDS):
        assert e.mistakes, f"{e.id} diagnoses no plausible mistake"


def _good_write_up():
    return {h: {"verdict": "for", "evidence": f"patching moves the answer in 0.9{k} of mazes", "number": 0.9 + k / 100,
                "control_number": 0.3, "causal": True, "control": "an equal-norm random patch 0.30"}
            for k, h in enumerate(ch.HYPOTHESES)}


def test_write_up_checker_accepts_a_complete_write_up_and_the_example():
    assert ex.check("08.write_up", _good_write_up, show=False, record=False).passed
    assert ex.check("08.write_up", ex.get("08.write_up").reference, show=False, record=False).passed


@pytest.mark.parametrize("broken,needle", [
    (lambda r: r.pop("goal"), "missing ['goal']"),
    (lambda r: r.update(extra={}), "unexpected ['extra']"),
    (lambda r: r["future"].update(verdict="yes"), "must be one of"),
    (lambda r: r["iteration"].update(evidence="it looks like search to me"), "containing a digit"),
    (lambda r: r["parallel"].update(control=""), "control or baseline"),
    (lambda r: r["goal"].update(number="high"), "finite numbers"),
    (lambda r: r["goal"].update(control_number=float("nan")), "finite numbers"),
    (lambda r: r["goal"].update(causal="yes"), "True or False"),
    (lambda r: r["goal"].pop("causal"), "with the keys"),
    (lambda r: r["future"].update(number=0.2, control_number=0.3), "beats its control"),
    (lambda r: r["future"].update(number=0.3, control_number=0.3), "beats its control"),
    (lambda r: r["iteration"].update(causal=False), "needs a causal test"),
])
def test_write_up_checker_rejects_incomplete_write_ups(broken, needle):
    def answer():
        report = _good_write_up()
        broken(report)
        return report

    result = ex.check("08.write_up", answer, show=False, record=False)
    assert not result.passed
    assert any(needle in c.message for c in result.failures), result.text()


def test_write_up_stub_and_wrong_type():
    def stub():
        raise NotImplementedError("Exercise 08.write_up: replace this line with your code")

    result = ex.check("08.write_up", stub, show=False, record=False)
    assert not result and result.cases[-1].name == "not implemented yet"
    assert "a dict" in ex.check("08.write_up", lambda: ["for"], show=False, record=False).message


def test_reference_values_by_hand():
    cells = torch.tensor([[-1, 4, 5, 6, -1]])
    values, valid = ch.future_label(cells, 1)
    assert values.tolist() == [[-1, 5, 6, -1, -1]] and valid.tolist() == [[False, True, True, False, False]]
    acc = ch.accuracy_by_group(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0]), torch.tensor([0, 0, 1, 1]))
    assert acc == {0: 0.5, 1: 0.5}
    rates = ch.follow_rates(torch.tensor([1, 2, 3, 1]), torch.tensor([1, 1, 1, 1]), torch.tensor([2, 2, 2, 2]))
    assert rates == {"clean": 0.5, "other": 0.25, "neither": 0.25}


def test_write_up_checker_accepts_weak_evidence_that_is_not_called_for():
    def answer():
        report = _good_write_up()
        report["future"].update(verdict="inconclusive", number=0.1, control_number=0.3, causal=False)
        report["iteration"].update(verdict="against", number=0.0, control_number=0.0, causal=True)
        return report

    assert ex.check("08.write_up", answer, show=False, record=False).passed


def test_algorithm_question_is_answered_with_the_numbers_after_an_attempt():
    from toolkit.exercises.questions import answer_text
    numbers = dict(goal_follow=0.76, goal_random=0.08, same_kept=0.99, k2_decoded=0.84, k2_baseline=0.52,
                   beyond_drop=-0.002, random_drop=-0.007, next_kept=1.0, map_r2=0.58)
    assert "Write your own answer" in answer_text("08.algorithm", "too short", **numbers)
    text = answer_text("08.algorithm", "a policy that steps towards the goal one cell at a time", **numbers)
    assert "76%" in text and "0.84" in text and "R2 0.58" in text
