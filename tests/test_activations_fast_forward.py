"""The hook-free fast pass of activations.cache: same values as the bridge, and it steps aside when it must."""

from __future__ import annotations

import warnings

import pytest
import torch
from _tolerance import assert_close_to_scale

from toolkit import activations, interventions, models, tasks
from toolkit._threads import torch_threads
from toolkit.activations import fast_forward

EVERY = ["hook_embed", "hook_pos_embed", "resid_pre", "attn.hook_pattern", "attn.hook_z", "attn_out", "resid_mid",
         "mlp.hook_pre", "mlp.hook_post", "mlp_out", "resid_post"]


@pytest.fixture(scope="module")
def setup():
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(150, seed=5)
    torch.manual_seed(0)
    model = models.build(task)
    with torch.no_grad():  # spread the weights so attention is far from uniform, as in a trained model
        for p in model.parameters():
            p.mul_(3.0)
    return data, model


def _close(a, b, msg):
    """Float32 rounding only: the weights here are tripled, so attention is sharp and a near-tie between two scores
    amplifies rounding (up to ~3e-4 of scale after four blocks, fast_forward.TOLERANCE); 1e-3 still catches a wrong
    weight or mask, which is off by >= 1e-2."""
    assert_close_to_scale(a, b, 1e-3, "float32 rounding through sharp attention", msg)


def _both(model, data, **kw):
    with warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")
        fast = activations.cache(model, data, progress=False, **kw)
        bridge = activations.cache(model, data, progress=False, fast=False, **kw)
    return fast, bridge


@pytest.mark.parametrize("positions", ["all", "loss", "query"])
def test_every_produced_hook_matches_the_bridge(setup, positions):
    data, model = setup
    fast, bridge = _both(model, data, hooks=EVERY, positions=positions, batch_size=64)
    assert fast.meta["forward"] == "fast" and bridge.meta["forward"] == "bridge (fast=False)"
    assert fast.hook_names == bridge.hook_names and len(fast.hook_names) == 2 + 9 * 4
    for h in fast.hook_names:
        _close(fast[h], bridge[h], h)


def test_last_block_trimmed_to_kept_rows_and_resid_pre_after_it(setup):
    data, model = setup
    # loss positions start late in the sequence, so the last block computes only those query rows
    for hooks in (["blocks.1.hook_resid_post"], ["blocks.2.hook_resid_pre"], ["blocks.0.mlp.hook_post", "resid_mid"],
                  ["hook_embed"]):
        fast, bridge = _both(model, data, hooks=hooks, positions="loss", batch_size=32)
        assert fast.meta["forward"] == "fast", hooks
        for h in fast.hook_names:
            _close(fast[h], bridge[h], hooks)


def test_steps_aside_for_interventions_and_other_hooks(setup):
    data, model = setup
    with interventions.ablate(model, "blocks.0.hook_attn_out", method="zero"):
        ablated = activations.cache(model, data, hooks="blocks.1.hook_resid_post", progress=False)
    assert ablated.meta["forward"].startswith("bridge (the model has hooks attached")
    clean = activations.cache(model, data, hooks="blocks.1.hook_resid_post", progress=False)
    assert clean.meta["forward"] == "fast"
    assert not torch.allclose(ablated["blocks.1.hook_resid_post"], clean["blocks.1.hook_resid_post"])
    other = activations.cache(model, data, hooks="blocks.0.ln1.hook_normalized", progress=False)
    assert "not produced by the fast pass" in other.meta["forward"]


def test_bfloat16_products_are_close_and_need_the_fast_pass(setup):
    data, sharp = setup
    model = models.build(data.task)  # plain initialisation: bf16 rounding stays well inside the RMS bound
    fast, bridge = _both(model, data, hooks="resid_post", positions="loss")
    with torch_threads(1):
        low = activations.cache(model, data, hooks="resid_post", positions="loss", progress=False,
                                matmul_dtype=torch.bfloat16)
    assert low.meta["matmul_dtype"] == "bfloat16"
    for h in low.hook_names:
        rel = float((low[h] - bridge[h]).norm() / bridge[h].norm())
        assert 0 < rel < 2e-2, (h, rel)
    with pytest.raises(ValueError, match="too inaccurate on this model.*leave matmul_dtype=None"):
        activations.cache(sharp, data, hooks="resid_post", progress=False, matmul_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="needs the fast pass.*Leave matmul_dtype=None"):
        activations.cache(model, data, hooks="resid_post", progress=False, fast=False, matmul_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="matmul_dtype must be"):
        activations.cache(model, data, hooks="resid_post", progress=False, matmul_dtype=torch.float16)


def test_a_wrong_fast_pass_is_caught_by_its_self_check(setup, monkeypatch):
    data, model = setup
    original = fast_forward.FastForward._attend

    def off_by_a_bit(self, q, k, v, start):
        pattern, z = original(self, q, k, v, start)
        return pattern, z * 1.01

    monkeypatch.setattr(fast_forward.FastForward, "_attend", off_by_a_bit)
    with pytest.warns(RuntimeWarning, match="disagrees with the bridge"):
        acts = activations.cache(model, data, hooks="resid_post", progress=False)
    assert acts.meta["forward"].startswith("bridge (blocks.")


def test_plain_architecture_required():
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    model = models.build(task, normalization_type="RMS")
    runner, why = fast_forward.plan(model, ["blocks.0.hook_resid_post"])
    assert runner is None and "LayerNorm" in why
