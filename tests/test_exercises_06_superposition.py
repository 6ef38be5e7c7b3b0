"""Tutorial 06 exercises: chapter-specific checks (tests/test_exercises_checks.py runs every reference and mistake)."""

from __future__ import annotations

import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises.chapters import ch06_superposition as ch

IDS = ["06.interference", "06.mmcs", "06.sae_forward", "06.sae_loss", "06.dead_latents", "06.size_agreement"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_chapter_registers_its_exercises():
    assert sorted(e.id for e in ex.all_exercises("06")) == sorted(IDS)
    for e in ex.all_exercises("06"):
        assert e.mistakes, f"{e.id} diagnoses no plausible mistake"


def test_stub_and_wrong_type_fail_cleanly():
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise 06.mmcs: replace this line with your code")

    assert "NotImplementedError" in ex.check("06.mmcs", stub, show=False, record=False).message
    wrong = ex.check("06.sae_forward", lambda *a: a[0], show=False, record=False)
    assert not wrong and "tuple" in wrong.message


def test_reference_values_by_hand():
    # orthogonal features do not interfere; antipodal pairs interfere fully
    W = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    assert ch.interference(W).tolist() == pytest.approx([1.0, 0.0, 1.0])
    eye = torch.eye(4)
    assert ch.mmcs(eye[:2], eye) == pytest.approx(0.5)
    assert ch.mmcs(-eye, eye) == pytest.approx(1.0)
    assert ch.dead_latents(torch.tensor([[0.0, 1.0], [0.0, 0.0]])).tolist() == [True, False]
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    assert float(ch.sae_loss(x, x, torch.zeros(5, 4), 0.5)) == 0.0
