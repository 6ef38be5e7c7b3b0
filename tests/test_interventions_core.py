"""interventions: patching restores exactly / changes nothing, knockout, ablations, steering, erasure, metrics."""

from __future__ import annotations

import pytest
import torch
from _tolerance import assert_close_to_scale

from toolkit import activations, interventions, models, probes, tasks
from toolkit._threads import torch_threads


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    clean = task.generate(48, seed=11)
    corrupt = task.generate(48, seed=12)
    model = models.build(task)
    with torch_threads(1):
        clean_lg = interventions.logits(model, clean)
        corrupt_lg = interventions.logits(model, corrupt)
    return task, clean, corrupt, model, clean_lg, corrupt_lg


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post", "blocks.3.hook_resid_post"])
def test_patching_the_whole_clean_residual_restores_the_clean_output_exactly(setup, hook):
    _, clean, corrupt, model, clean_lg, corrupt_lg = setup
    assert not torch.allclose(clean_lg, corrupt_lg)
    with interventions.patch(model, hook, clean):
        patched = interventions.logits(model, corrupt)
    # the clean residual re-enters the same layers: float32 rounding only; a patch at a wrong position is off by ~1
    assert_close_to_scale(patched, clean_lg, 1e-5, "float32 rounding only", hook)


def test_editing_resid_mid_warns_that_it_only_feeds_the_mlp(setup):
    _, clean, corrupt, model, clean_lg, _ = setup
    with pytest.warns(UserWarning, match="input of ln2"), interventions.patch(model, "blocks.3.hook_resid_mid", clean):
        patched = interventions.logits(model, corrupt)
    assert not torch.allclose(patched, clean_lg, atol=1e-3)


def test_patching_nothing_changes_nothing(setup):
    _, clean, corrupt, model, _, corrupt_lg = setup
    src = interventions.capture(model, "blocks.1.hook_resid_post", clean)
    with interventions.patch(model, "blocks.1.hook_resid_post", src, positions=[]):
        same = interventions.logits(model, corrupt)
    assert torch.equal(same, corrupt_lg)
    with interventions.patch(model, "blocks.1.hook_resid_post", src, positions=torch.zeros(48, 23, dtype=torch.bool)):
        same = interventions.logits(model, corrupt, batch_size=7)  # per-example mask sliced per batch
    assert torch.equal(same, corrupt_lg)


def test_patching_sweep_normalises_between_corrupt_and_clean(setup):
    task, clean, corrupt, model, _, _ = setup
    res = interventions.patching(model, clean, corrupt, hooks=["blocks.0.hook_resid_pre", "blocks.2.hook_resid_post"],
                                 per="layer", progress=False)
    torch.testing.assert_close(res.normalized, torch.ones(2, 1), rtol=0, atol=1e-4)
    by_pos = interventions.patching(model, clean, corrupt, hooks="blocks.3.hook_resid_post", per="position",
                                    positions=[task.query, task.query + 1], metric="kl", progress=False)
    assert by_pos.scores.shape == (1, 2) and by_pos.clean == pytest.approx(0.0, abs=1e-6)
    heads = interventions.patching(model, clean, corrupt, hooks="blocks.1.attn.hook_z", per="head", metric="prob",
                                   progress=False)
    assert heads.sites == [0, 1] and len(heads.table()) == 2
    with pytest.raises(ValueError, match="never differ"):
        interventions.patching(model, clean, clean, hooks="blocks.0.hook_resid_pre", progress=False)


def test_knockout_zeroes_the_blocked_attention_and_renormalises(setup):
    task, clean, _, model, clean_lg, _ = setup
    q, k = task.query, task.bar + 1  # the query token may not look at the goal token
    with interventions.knockout(model, layer=1, query=[q], key=[k]):
        acts = activations.cache(model, clean, hooks="blocks.1.attn.hook_pattern", positions="query", progress=False)
        ko = interventions.logits(model, clean)
    pat = acts.get("blocks.1.attn.hook_pattern", flat=False)  # [n, head, key]
    assert bool((pat[:, :, k] == 0).all())
    torch.testing.assert_close(pat.sum(-1), torch.ones(pat.shape[:2]))
    assert not torch.allclose(ko[:, q:], clean_lg[:, q:]) and torch.equal(ko[:, :q], clean_lg[:, :q])
    with interventions.knockout(model, layer=1, query=None, key=[]):
        assert torch.equal(interventions.logits(model, clean), clean_lg)
    # blocking every key without renormalising silences the layer's attention = zero-ablating its z
    with interventions.knockout(model, layer=2, renormalize=False):
        a = interventions.logits(model, clean)
    with interventions.ablate(model, "blocks.2.attn.hook_z", "zero"):
        b = interventions.logits(model, clean)
    # the same function computed two ways (masked softmax vs zeroed z): float32 rounding only
    assert_close_to_scale(a, b, 1e-5, "float32 rounding only", "knockout vs zero-ablated z")


def test_ablations(setup):
    task, clean, corrupt, model, _, _ = setup
    hook = "blocks.1.attn.hook_z"
    with interventions.ablate(model, hook, "zero", heads=0, positions="query", data=clean):
        z = interventions.capture(model, hook, clean)
    q = task.query
    base = interventions.capture(model, hook, clean)
    assert bool((z[:, q, 0] == 0).all()) and torch.equal(z[:, q, 1], base[:, q, 1])
    assert torch.equal(z[:, q + 1], base[:, q + 1])
    with interventions.ablate(model, hook, "mean", reference=corrupt):
        m = interventions.capture(model, hook, clean)
    ref = interventions.capture(model, hook, corrupt).mean(0)
    torch.testing.assert_close(m, ref.expand_as(m))
    with interventions.ablate(model, "blocks.0.hook_resid_post", "resample", reference=corrupt, positions=[5]):
        r = interventions.capture(model, "blocks.0.hook_resid_post", clean)
    pool = interventions.capture(model, "blocks.0.hook_resid_post", corrupt)[:, 5]
    assert bool(((r[:, 5, None] - pool[None]).abs().amax(-1) < 1e-6).any(1).all())
    with pytest.raises(ValueError, match="reference"):
        interventions.ablate(model, hook, "mean")
    with pytest.raises(ValueError, match="method"):
        interventions.ablate(model, hook, "noise")


def test_steering_adds_the_direction_only_where_asked(setup):
    _, clean, _, model, _, _ = setup
    hook = "blocks.1.hook_resid_post"
    v = torch.randn(64, generator=torch.Generator().manual_seed(0))
    base = interventions.capture(model, hook, clean)
    with interventions.steer(model, hook, v, alpha=2.0, positions="position:goal", data=clean):
        s = interventions.capture(model, hook, clean)
    goal = clean.task.positions(clean, "goal")
    torch.testing.assert_close(s[goal], base[goal] + 2.0 * v)
    assert torch.equal(s[~goal], base[~goal])


def test_erasing_a_concept_drops_a_probe_to_chance(setup):
    task, _, _, model, _, _ = setup
    data = task.generate(800, seed=21)
    hook = "blocks.0.hook_resid_post"
    acts = activations.cache(model, data, hooks=hook, positions="parent", progress=False)
    y, _ = acts.labels("parent")
    train = acts.example_index < 600
    X = acts[hook]
    before = probes.LogisticProbe().fit(X[train], y[train]).score(X[~train], y[~train])
    chance = float((y[~train] == torch.bincount(y[train]).argmax()).float().mean())
    eraser = probes.LeaceEraser().fit(X, y)
    with interventions.erase(model, hook, eraser, positions="parent", data=data):
        erased = activations.cache(model, data, hooks=hook, positions="parent", progress=False)
    Xe = erased[hook]
    after = probes.LogisticProbe().fit(Xe[train], y[train]).score(Xe[~train], y[~train])
    assert before > chance + 0.2, (before, chance)
    assert abs(after - chance) < 0.05, (after, chance)


def test_metrics_match_the_models_module(setup):
    task, clean, _, model, clean_lg, _ = setup
    with torch_threads(1):
        ev = models.evaluate(model, clean)
    assert interventions.score(clean_lg, clean, "exact_path") == pytest.approx(ev.exact_teacher_forced)
    assert interventions.score(clean_lg, clean, "token_acc") == pytest.approx(ev.token)
    assert interventions.score(clean_lg, clean, "loss") == pytest.approx(ev.loss, rel=1e-5)
    assert interventions.run(model, clean, "kl", reference=clean_lg) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="unknown metric"):
        interventions.score(clean_lg, clean, "accuracy")
    with pytest.raises(ValueError, match="exactly one"), interventions.ablate(model, "resid_post", "zero"):
        pass
