"""Tutorial 05, *Circuit tools by hand* (second half): the references of 05.faithfulness, 05.path_patch,
05.attribution_patching and 05.qk_readout equal toolkit.circuits on the tree model, and each does something."""

from __future__ import annotations

import pytest
import torch

from toolkit import circuits
from toolkit import exercises as ex
from toolkit.exercises.chapters import ch05_interventions_circuits_more as ch

IDS = ["05.faithfulness", "05.path_patch", "05.attribution_patching", "05.qk_readout"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


@pytest.fixture(scope="module")
def tree():
    return ch._tree()  # model, clean [8, seq], corrupt [8, seq], z_mean [L, seq, H, d_head], root position


def test_registered_last_in_notebook_order():
    ids = [e.id for e in ex.all_exercises("05")]
    assert ids[-len(IDS):] == IDS
    assert all(len(ex.get(i).mistakes) >= 2 and len(ex.get(i).hints) >= 3 for i in IDS)


def test_faithfulness_matches_the_toolkit(tree):
    model, clean, _, _, root = tree
    from toolkit import models

    ref = models.task_of(model).generate(40, seed=11, split="test").tokens
    acts = ch._cache(model, ref, [ch._z(layer) for layer in range(model.cfg.n_layers)])
    z_mean = torch.stack([acts[ch._z(layer)].mean(0) for layer in range(model.cfg.n_layers)])
    metric = ch._next_token_logprob(clean, root)
    for circuit in ([(0, 1), (3, 0)], [(1, 1)]):
        mine = ch.faithfulness(model, clean, circuit, z_mean, metric)
        theirs = circuits.faithfulness(model, circuit, clean, metric=lambda lg, d: float(metric(lg)), reference=ref,
                                       mlps=False, n_random=0, progress=False)
        assert mine == pytest.approx(theirs.value, abs=1e-4)
    every = [(la, h) for la in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    assert ch.faithfulness(model, clean, every, z_mean, metric) == pytest.approx(1.0)


def test_path_patch_matches_the_toolkit(tree):
    model, clean, corrupt, _, root = tree
    metric = ch._root_logit_diff(clean, corrupt, root)
    for sender, receiver in (((0, 1), (2, 0, "v")), ((1, 0), (3, 1, "q")), ((0, 0), "logits")):
        mine = float(metric(ch.path_patch(model, clean, corrupt, sender, receiver)))
        res = circuits.path_patching(model, clean, corrupt, sender=sender, receivers=[receiver],
                                     metric=lambda lg, c, k: float(metric(lg)), progress=False)
        assert mine == pytest.approx(float(res.scores[0]), abs=1e-3)
    # and it is not plain activation patching: the frozen heads make a difference
    plain = ch._path_patch(model, clean, corrupt, (0, 1), (2, 0, "v"), freeze=False)
    assert not torch.allclose(plain, ch.path_patch(model, clean, corrupt, (0, 1), (2, 0, "v")), atol=1e-3)


def test_attribution_patching_matches_the_toolkit(tree):
    model, clean, corrupt, _, root = tree
    metric = ch._root_logit_diff(clean, corrupt, root)
    mine = ch.attribution_patching(model, clean, corrupt, metric)
    theirs = circuits.attribution_patching(model, clean, corrupt, metric=lambda lg, c, k: metric(lg)).estimate
    assert mine.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert torch.allclose(mine, theirs, atol=1e-3)
    assert mine.abs().max() > 1e-2


@pytest.mark.parametrize("positions", [(None, None), (3, 2)])
def test_qk_readout_matches_the_toolkit(tree, positions):
    model = tree[0]
    qp, kp = positions
    emb = model.W_E.detach()
    e_q = emb + (model.W_pos.detach()[qp] if qp is not None else 0)
    e_k = emb + (model.W_pos.detach()[kp] if kp is not None else 0)
    with torch.no_grad():
        e_q, e_k = model.blocks[0].ln1(e_q), model.blocks[0].ln1(e_k)
    mine = ch.qk_readout(e_q, e_k, model.W_Q[0, 1].detach(), model.b_Q[0, 1].detach(), model.W_K[0, 1].detach(),
                         model.b_K[0, 1].detach())
    theirs = circuits.qk_readout(model, 0, 1, query_position=qp, key_position=kp)
    assert torch.allclose(mine, theirs, atol=1e-4)
