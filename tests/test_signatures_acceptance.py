"""Acceptance (issue #16 item 3): the battery says yes (>= 2 of 3) on the trained tree and maze searchers and no
(0 of 3) on their random-init twins and on the model that solves its task without search (tree-lookup-8), on a
data seed never used to fix the thresholds (development used seeds 100 and 101). Small data, so it stays fast."""

from __future__ import annotations

import pytest
import torch

from toolkit import interventions, models, signatures

FRESH_SEED = 5  # the measured report used seeds 0-4; development 100-101
SMALL = {"max_pairs": 60, "n_random": 2, "progress": False, "seed": FRESH_SEED}


def _run(name: str, random_init: bool, n: int = 250) -> signatures.SignatureReport:
    torch.set_num_threads(1)
    model = models.pretrained(name, random_init=random_init)
    data = models.task_of(model).generate(n, seed=FRESH_SEED, split="test")
    layers = [f"blocks.{i}.hook_resid_pre" for i in range(1, model.cfg.n_layers)]
    return signatures.run(model, data, layers=layers, **SMALL)


@pytest.mark.parametrize("name", ["tree-8", "maze-4x4"])
def test_trained_searchers_show_at_least_two_signatures(name):
    rep = _run(name, random_init=False)
    assert rep.n_yes >= 2, rep.table().to_string()
    assert "random_init=True" in rep.twin
    for ev in rep.evidence.values():  # a True verdict beat every control it names by the threshold
        if ev.verdict:
            assert ev.margin >= ev.threshold and ev.score > max(x for x in (ev.baseline, ev.twin, ev.control)
                                                                 if x is not None)


@pytest.mark.parametrize("name", ["tree-8", "maze-4x4"])
def test_random_init_twins_show_no_signature(name):
    rep = _run(name, random_init=True)
    assert rep.n_yes == 0, rep.table().to_string()
    assert "seed=1" in rep.twin, "an untrained model is compared with ANOTHER untrained model"


def test_the_lookup_model_solves_its_task_without_reading_the_edges():
    """What makes it a control: given ANOTHER example's edge list it still writes its own path (tree-8 cannot)."""
    side = models.read_sidecar(models.CHECKPOINT_DIR / "tree-lookup-8")
    assert side["extra"]["verified_cpu"]["exact"] >= 0.99, "the control model solves its task"
    for name, low, high in [("tree-lookup-8", 0.99, 1.0), ("tree-8", 0.0, 0.2)]:
        model = models.pretrained(name)
        task = models.task_of(model)
        data = task.generate(300, seed=FRESH_SEED, split="test")
        swapped = data.tokens.clone()
        swapped[:, : task.bar] = data.tokens.roll(1, 0)[:, : task.bar]
        exact = interventions.score(interventions.logits(model, swapped), data, "exact_path")
        assert low <= exact <= high, (name, exact)


def test_the_lookup_model_shows_no_signature():
    rep = _run("tree-lookup-8", random_init=False)
    assert rep.n_yes == 0, rep.table().to_string()
    d = rep.to_dict()
    assert set(d["verdicts"]) == {"candidates", "evaluation", "selection"} and d["n_yes"] == 0
