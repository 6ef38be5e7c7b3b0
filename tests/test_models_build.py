"""models.build / fast_module / task_of: sizes, metadata, seeds, and the hook-free training module."""

import pytest
import torch
from _tolerance import assert_close_to_scale

from toolkit import models, tasks


@pytest.fixture(scope="module")
def tree():
    return tasks.TreeSearch(n_nodes=8, max_path=4)


def test_default_size_matches_the_literature_recipe(tree):
    model = models.build(tree)
    cfg = model.cfg
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_mlp, cfg.d_head) == (64, 4, 2, 256, 32)
    assert cfg.d_vocab == len(tree.vocab) and cfg.n_ctx == tree.seq_len
    assert 190_000 < models.n_params(model) < 215_000
    logits = model(tree.generate(3, seed=0).tokens)
    assert logits.shape == (3, tree.seq_len, len(tree.vocab))


def test_metadata_records_task_and_rebuilds_it(tree):
    model = models.build(tree, n_layers=2, seed=3)
    info = model.searchlight
    assert info["task"] == tree.spec() and info["vocab"] == tree.vocab.to_dict()
    assert info["arch"]["n_layers"] == 2 and info["arch"]["seed"] == 3 and info["random_init"]
    rebuilt = models.task_of(model)
    assert rebuilt.spec() == tree.spec() and rebuilt.vocab == tree.vocab


def test_seed_controls_the_initial_weights(tree):
    a, b, c = models.build(tree, seed=1), models.build(tree, seed=1), models.build(tree, seed=2)
    w = "blocks.0.attn.q.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_build_does_not_touch_the_global_rng(tree):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    models.build(tree)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"d_modle": 64}, "unknown model option"),
    ({"d_model": 65}, "not divisible by n_heads"),
    ({"n_layers": 0}, "n_layers must be a positive integer"),
    ({"n_ctx": 5}, "shorter than the task's seq_len"),
])
def test_bad_options_name_the_fix(tree, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        models.build(tree, **kwargs)


def test_build_rejects_non_tasks():
    with pytest.raises(TypeError, match="needs a search task"):
        models.build("tree-8")


def test_fast_module_shares_weights_and_matches_the_bridge(tree):
    model = models.build(tree, n_layers=2)
    fast = models.fast_module(model)
    tokens = tree.generate(16, seed=1).tokens
    with torch.no_grad():
        # same weights, another op order (fused QKV): float32 rounding only; a stale weight is off by >= 1e-2
        assert_close_to_scale(fast(tokens), model(tokens), 1e-5, "float32 rounding only", "logits")
        next(model.parameters()).add_(0.5)  # an update through the bridge is seen by the fast module
        assert_close_to_scale(fast(tokens), model(tokens), 1e-5, "float32 rounding only", "logits after an update")
    bridge_ids = {id(p) for p in model.parameters()}
    assert {id(p) for p in fast.parameters()} <= bridge_ids


def test_models_without_metadata_get_a_clear_error():
    from toolkit.models.build import boot

    bare = boot({"d_model": 16, "n_layers": 1, "n_heads": 2, "d_head": 8, "d_mlp": 32, "n_ctx": 8, "d_vocab": 5})
    with pytest.raises(ValueError, match="no Searchlight metadata"):
        models.task_of(bare)
