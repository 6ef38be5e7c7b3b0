"""The 02 training-machinery exercises agree with the toolkit: lr_at with TrainConfig.lr_at, the step and the
loop with models.train (their checker compares with it), teacher-forced exact match with interventions.score."""

from __future__ import annotations

import pytest
import torch

from toolkit import exercises as ex
from toolkit import interventions, models
from toolkit.exercises.chapters import ch02_training_loop as ch


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_lr_at_matches_train_config():
    for _, (step, steps, lr, warmup, floor) in ch._lr_cases():
        cfg = models.TrainConfig(steps=steps, lr=lr, warmup_steps=warmup, min_lr_frac=floor)
        assert ch.lr_at(step, steps, lr, warmup, floor) == pytest.approx(cfg.lr_at(step), rel=1e-12)


def test_teacher_forced_exact_matches_the_exact_path_metric():
    for _, (logits, tokens, mask) in ch._tf_cases():
        data = type("D", (), {"tokens": tokens, "loss_mask": mask})()
        expected = interventions.score(logits, data, "exact_path")
        assert float(ch.teacher_forced_exact(logits, tokens, mask).float().mean()) == pytest.approx(expected)


def test_a_step_that_returns_a_tensor_still_passes_but_a_loop_returning_nothing_is_explained():
    def tensor_loss(model, optimizer, tokens, loss_mask, grad_clip=1.0):
        return torch.tensor(ch.train_step(model, optimizer, tokens, loss_mask, grad_clip))

    assert ex.check("02.train_step", tensor_loss, show=False).passed
    result = ex.check("02.train_loop", lambda model, batches, config: None, show=False)
    assert not result.passed and "list of losses" in result.message
