"""The 03 hook exercises' references agree with toolkit.activations / toolkit.interventions on their cases."""

from __future__ import annotations

import torch

from toolkit import interventions
from toolkit.exercises.chapters import ch03_interventions as ch


def test_cache_resid_matches_run_with_cache():
    for _, (model, tokens, layers) in ch._cache_cases():
        _, cache = model.run_with_cache(tokens)
        expected = torch.stack([cache[f"blocks.{layer}.hook_resid_post"] for layer in layers])
        torch.testing.assert_close(ch.cache_resid(model, tokens, layers), expected)


def test_ablate_head_matches_interventions_ablate():
    for _, args in ch._ablate_cases():
        model, tokens, layer, head, *mean = args
        hook = f"blocks.{layer}.attn.hook_z"
        if mean:
            ctx = interventions.ablate(model, hook, method="mean", heads=head, reference=mean[0])
        else:
            ctx = interventions.ablate(model, hook, method="zero", heads=head)
        with ctx, torch.no_grad():
            expected = model(tokens)
        torch.testing.assert_close(ch.ablate_head(model, tokens, layer, head, *mean), expected, atol=1e-5,
                                   rtol=1e-5)


def test_knockout_matches_interventions_knockout():
    for _, (model, tokens, layer, q, k) in ch._knockout_cases():
        with interventions.knockout(model, layer, query=q, key=k), torch.no_grad():
            expected = model(tokens)
        torch.testing.assert_close(ch.knockout_logits(model, tokens, layer, q, k), expected, atol=1e-5, rtol=1e-5)


def test_patching_sweep_matches_interventions_patching():
    model, _ = ch._tree8()
    clean, corrupt, metric = ch.patch_inputs(8, 561)
    positions = [14, 15, 16, 17]
    res = interventions.patching(model, clean, corrupt, hooks="resid_pre", per="position", positions=positions,
                                 progress=False)
    torch.testing.assert_close(ch.patching_sweep(model, clean.tokens, corrupt, metric, positions),
                               res.normalized, atol=1e-4, rtol=1e-4)
