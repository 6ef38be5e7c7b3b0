"""Tutorial 07 exercises: chapter-specific checks (tests/test_exercises_checks.py runs every reference and mistake)."""

from __future__ import annotations

import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises.chapters import ch07_discovery as ch

IDS = ["07.label_corr", "07.best_matches", "07.plant_feature", "07.normalise_pairs", "07.ccs_loss"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_chapter_registers_its_exercises():
    assert sorted(e.id for e in ex.all_exercises("07")) == sorted(IDS)
    for e in ex.all_exercises("07"):
        assert e.mistakes, f"{e.id} diagnoses no plausible mistake"


def test_wrong_type_fails_cleanly():
    wrong = ex.check("07.normalise_pairs", lambda a, b: a, show=False, record=False)
    assert not wrong and "tuple" in wrong.message


def test_references_agree_with_the_toolkit():
    from toolkit.viz.features import label_match_matrix

    g = torch.Generator().manual_seed(0)
    latents = torch.relu(torch.randn(50, 4, generator=g))
    targets = (torch.rand(50, 3, generator=g) < 0.4).float()
    _, mat = label_match_matrix(latents, {f"t{k}": targets[:, k] for k in range(3)})
    assert torch.allclose(ch.label_corr(latents, targets), torch.as_tensor(mat).float(), atol=1e-5)
    a, b = torch.randn(30, 5, generator=g), torch.randn(30, 5, generator=g) + 2
    na, nb = ch.normalise_pairs(a, b)
    for side in (na, nb):
        assert torch.allclose(side.mean(0), torch.zeros(5), atol=1e-5)
        assert torch.allclose(side.std(0), torch.ones(5), atol=1e-5)


def test_reference_values_by_hand():
    assert float(ch.ccs_loss(torch.tensor([1.0]), torch.tensor([0.0]))) == 0.0
    assert float(ch.ccs_loss(torch.tensor([0.5]), torch.tensor([0.5]))) == pytest.approx(0.25)
    x = torch.zeros(3, 2)
    planted = ch.plant_feature(x, torch.tensor([3.0, 4.0]), torch.tensor([True, False, True]), 10.0)
    assert planted.tolist() == [[6.0, 8.0], [0.0, 0.0], [6.0, 8.0]]
    assert ch.best_matches(torch.tensor([[0.2, 0.8], [0.1, 0.2]]), ["a", "b"], 0.5) == ["b", None]
