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
    return {h: {"verdict": "for", "evidence": f"probe accuracy 0.9{k} at layer 3, baseline 0.52",
                "control": "random-init model 0.30"} for k, h in enumerate(ch.HYPOTHESES)}


def test_write_up_checker_accepts_a_complete_write_up_and_the_example():
    assert ex.check("08.write_up", _good_write_up, show=False, record=False).passed
    assert ex.check("08.write_up", ex.get("08.write_up").reference, show=False, record=False).passed


@pytest.mark.parametrize("broken,needle", [
    (lambda r: r.pop("goal"), "missing ['goal']"),
    (lambda r: r.update(extra={}), "unexpected ['extra']"),
    (lambda r: r["future"].update(verdict="yes"), "must be one of"),
    (lambda r: r["iteration"].update(evidence="it looks like search to me"), "containing a digit"),
    (lambda r: r["parallel"].update(control=""), "control or baseline"),
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
