"""Tutorial 05 exercises: chapter-specific checks (tests/test_exercises_checks.py runs every reference and mistake)."""

from __future__ import annotations

import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises.chapters import ch05_interventions as ch

IDS = ["05.logit_diff", "05.ancestor_at_depth", "05.patch_effect", "05.knockout_pattern", "05.mean_diff_direction",
       "05.project_out", "05.head_outputs", "05.direct_logit_attribution", "05.logit_lens", "05.mean_ablate",
       "05.faithfulness", "05.path_patch", "05.attribution_patching", "05.qk_readout"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_chapter_registers_its_exercises():
    assert sorted(e.id for e in ex.all_exercises("05")) == sorted(IDS)
    for e in ex.all_exercises("05"):
        assert e.mistakes, f"{e.id} diagnoses no plausible mistake"


def test_stub_fails_cleanly():
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise 05.logit_diff: replace this line with your code")

    assert "NotImplementedError" in ex.check("05.logit_diff", stub, show=False, record=False).message


def test_references_agree_with_the_toolkit():
    from toolkit.probes import direction
    from toolkit.probes import project_out as toolkit_project_out

    g = torch.Generator().manual_seed(0)
    x, dirs = torch.randn(20, 6, generator=g), torch.randn(2, 6, generator=g)
    assert torch.allclose(ch.project_out(x, dirs), toolkit_project_out(x, dirs), atol=1e-5)
    erased = ch.project_out(x, dirs)
    assert torch.allclose(erased @ dirs.T, torch.zeros(20, 2), atol=1e-5)
    labels = torch.arange(20) % 3
    assert torch.allclose(ch.mean_diff_direction(x, labels, 1),
                          direction(x, labels, cls=1, normalize=False), atol=1e-5)


def test_reference_values_by_hand():
    pattern = torch.tensor([[[[1.0, 0, 0], [0.25, 0.75, 0], [0.2, 0.6, 0.2]]]])  # [1, 1, 3, 3]
    parent = [-1, 0, 0, 1, 3]  # 0 -> 1 -> 3 -> 4, 0 -> 2
    assert [ch.ancestor_at_depth(parent, 4, k) for k in range(5)] == [0, 1, 3, 4, -1]
    block = torch.zeros(1, 3, 3, dtype=torch.bool)
    block[0, 2, 1] = True
    ko = ch.knockout_pattern(pattern, block, 0)
    assert ko[0, 0, 2].tolist() == pytest.approx([0.5, 0.0, 0.5])
    assert float(ch.patch_effect(torch.tensor(2.0), 3.0, 1.0)) == pytest.approx(0.5)
    logits = torch.zeros(1, 3, 4)
    logits[0, 1, 2] = 5.0
    assert ch.logit_diff(logits, torch.tensor([1]), torch.tensor([2]), torch.tensor([0])).tolist() == [5.0]
