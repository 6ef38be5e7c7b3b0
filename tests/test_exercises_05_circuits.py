"""Tutorial 05, *Circuit tools by hand*: the exercise references equal toolkit.circuits on the tree model."""

from __future__ import annotations

import pytest
import torch

from toolkit import circuits
from toolkit import exercises as ex
from toolkit.circuits.components import head_outputs as toolkit_head_outputs
from toolkit.circuits.components import ln_final_affine, run_cache
from toolkit.exercises.chapters import ch05_interventions_circuits as ch

IDS = ["05.head_outputs", "05.direct_logit_attribution", "05.logit_lens", "05.mean_ablate"]
LATER = ["05.faithfulness", "05.path_patch", "05.attribution_patching", "05.qk_readout"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


@pytest.fixture(scope="module")
def setup():
    from toolkit import models

    model = models.pretrained("tree-8")
    task = models.task_of(model)
    data = task.generate(24, seed=3, split="test")
    L = model.cfg.n_layers
    hooks = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale", "blocks.0.hook_resid_pre"]
    hooks += [f"blocks.{layer}.{s}" for layer in range(L)
              for s in ("attn.hook_z", "hook_mlp_out", "hook_resid_post")]
    return model, task, data, run_cache(model, data, hooks)


def test_chapter_section_registers_its_exercises():
    ids = [e.id for e in ex.all_exercises("05")]
    assert ids[-len(IDS) - len(LATER):-len(LATER)] == IDS  # after the interventions exercises, in notebook order


def test_head_outputs_match_the_toolkit(setup):
    model, _, _, acts = setup
    for layer in range(model.cfg.n_layers):
        z = acts[f"blocks.{layer}.attn.hook_z"]
        mine = ch.head_outputs(z, model.W_O[layer].detach())
        assert torch.allclose(mine, toolkit_head_outputs(model, layer, z), atol=1e-5)
    # the heads plus b_O are the block's attention output
    z = acts["blocks.0.attn.hook_z"]
    total = ch.head_outputs(z, model.W_O[0].detach()).sum(2) + model.b_O[0].detach()
    attn_out = acts["blocks.0.hook_resid_post"] - acts["blocks.0.hook_resid_pre"] - acts["blocks.0.hook_mlp_out"]
    assert torch.allclose(total, attn_out, atol=1e-4)


def test_dla_matches_the_toolkit(setup):
    model, task, data, acts = setup
    pos = task.query + 1  # the root's position: the depth-1 decision
    good = data.tokens[:, pos + 1]
    bad = (good + 1) % model.cfg.d_vocab
    res = circuits.direct_logit_attribution(model, data, token=good, minus=bad, positions=pos)
    parts = [acts["hook_embed"][:, pos], acts["hook_pos_embed"][:, pos]]
    for layer in range(model.cfg.n_layers):
        heads = ch.head_outputs(acts[f"blocks.{layer}.attn.hook_z"][:, pos, None], model.W_O[layer].detach())[:, 0]
        parts += list(heads.unbind(1))
        parts += [model.b_O[layer].detach().expand(len(good), -1), acts[f"blocks.{layer}.hook_mlp_out"][:, pos]]
    _, w_ln, _ = ln_final_affine(model)
    mine = ch.dla(torch.stack(parts, 1), acts["ln_final.hook_scale"][:, pos], w_ln.detach(), model.W_U.detach(),
                  good, bad)
    assert res.components[-1] == "bias" and mine.shape[1] == len(res.components) - 1
    assert torch.allclose(mine, res.contributions[:, 0, :-1], atol=1e-3)


def test_logit_lens_matches_the_toolkit(setup):
    model, _, data, acts = setup
    L = model.cfg.n_layers
    resid = torch.stack([acts["blocks.0.hook_resid_pre"][:, -1]]
                        + [acts[f"blocks.{layer}.hook_resid_post"][:, -1] for layer in range(L)])
    _, w_ln, b_ln = ln_final_affine(model)
    mine = ch.logit_lens(resid, w_ln.detach(), b_ln.detach(), model.W_U.detach(), model.b_U.detach(),
                         model.cfg.eps)
    lens = circuits.logit_lens(model, data, positions=-1)
    assert mine.shape == (L, len(data.tokens), model.cfg.d_vocab)
    assert torch.allclose(mine, lens.logits[:, :, 0], atol=1e-3)


def test_mean_ablate_matches_the_toolkit(setup):
    model, task, data, _ = setup
    ref = task.generate(40, seed=4, split="test")
    z_ref = run_cache(model, ref, ["blocks.1.attn.hook_z"])["blocks.1.attn.hook_z"]
    positions = [task.query, task.query + 1]
    hook = ("blocks.1.attn.hook_z", lambda z, hook: ch.mean_ablate(z, z_ref.to(z), [0], positions))
    with torch.no_grad(), model.hooks(fwd_hooks=[hook]):
        mine = model(data.tokens)
    with torch.no_grad(), circuits.ablate_components(model, ["L1H0"], method="mean", positions=positions,
                                                     reference=ref):
        theirs = model(data.tokens)
    with torch.no_grad():
        plain = model(data.tokens)
    assert not torch.allclose(mine, plain, atol=1e-3)  # the ablation did something
    assert torch.allclose(mine, theirs, atol=1e-4)
