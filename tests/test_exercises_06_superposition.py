"""Tutorial 06 exercises: chapter-specific checks (tests/test_exercises_checks.py runs every reference and mistake)."""

from __future__ import annotations

import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises.chapters import ch06_superposition as ch
from toolkit.exercises.chapters import ch06_superposition_training as tr
from toolkit.exercises.chapters import ch06_superposition_training_loop as loop

IDS = ["06.interference", "06.mmcs", "06.sae_forward", "06.sae_loss", "06.dead_latents", "06.size_agreement",
       "06.sae_losses", "06.remove_parallel_grad", "06.sae_train_step", "06.update_since_fired", "06.feature_density",
       "06.resample_dead", "06.train_sae"]


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


def test_training_references_agree_with_autograd_and_the_toolkit():
    # the reference step is the toolkit's hand-written train_step (with SGD); autograd + projection + renorm agrees
    for _, args in tr._step_cases():
        for got, want in zip(tr._autograd_step(*args), tr.sae_train_step(*args)):
            assert torch.allclose(got, want, atol=1e-5)
    # SAELens's losses match the toolkit's logged mse / l1 when the decoder rows have unit norm
    x, W_enc, b_enc, W_dec, b_dec = tr._params(6, 12, 16, 0)
    latents = torch.relu((x - b_dec) @ W_enc + b_enc)
    losses = tr.sae_losses(x, latents @ W_dec + b_dec, latents, W_dec, 0.5)
    assert float(losses["l1_loss"]) == pytest.approx(0.5 * float(latents.sum(1).mean()), rel=1e-5)
    # the hand-written resampling (a mistake-free variant) is the toolkit's
    for _, args in tr._resample_cases():
        for got, want in zip(tr._resample(*args), tr.resample_dead(*args)):
            assert torch.allclose(got, want, atol=1e-5)


def test_since_fired_and_density_by_hand():
    lat = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert tr.update_since_fired(torch.tensor([3, 3, 7]), lat).tolist() == [5, 0, 9]
    assert tr.feature_density([lat, torch.tensor([[1.0, 0.0, 0.0]])]).tolist() == pytest.approx([1 / 3, 1 / 3, 0])
    g = torch.tensor([[1.0, 2.0]])
    assert tr.remove_parallel_grad(torch.tensor([[1.0, 0.0]]), g).tolist() == [[0.0, 2.0]]


def test_toolkit_sae_recovers_the_train_sae_toy_data():
    """06.train_sae asks for MMCS >= MMCS_BOUND on its toy data: U.SparseAutoencoder reaches it there."""
    from toolkit import unsupervised as U

    data, X = loop._toy()
    sae = U.SparseAutoencoder(d_sae=loop.TRAIN_ARGS["d_sae"], l1_coefficient=loop.TRAIN_ARGS["l1_coefficient"],
                              n_samples=60_000, batch_size=64, lr=1e-2, seed=0, progress=False).fit(X)
    assert U.mmcs(sae.dictionary_, data.features) >= loop.MMCS_BOUND


def test_open_question_answer_needs_an_attempt_and_uses_the_numbers():
    from toolkit.exercises import questions

    numbers = {"agreement": {32: 0.61, 64: 0.83, 128: 0.97, 256: 0.9}, "truth": {32: 0.4, 128: 0.95, 512: 0.99},
               "full_mmcs": 0.987, "short_mmcs": 0.321, "n_features": 128}
    stub = '\nraise NotImplementedError("Exercise 06.undertrained_agreement: replace this line with your code")\n'
    for not_yet in (stub, "", "too short", None):
        assert "first" in questions.answer_text("06.undertrained_agreement", not_yet, **numbers)
    text = questions.answer_text("06.undertrained_agreement", "an undertrained double has not separated the "
                                 "features so agreement drops", **numbers)
    assert "Reference answer" in text and "from 0.99 to 0.32" in text
    assert "m = 128" in text and "0.97" in text
    assert "06.undertrained_agreement" in questions.questions("06")
    assert "Reference answer" in repr(ex.answer("06.undertrained_agreement", "word " * 10, **numbers))
