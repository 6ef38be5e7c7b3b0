"""activations.cache: exact agreement with run_with_cache, aligned rows/labels, positions, stop_at_layer, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from _tolerance import assert_close_to_scale

from toolkit import activations, models, tasks
from toolkit._threads import torch_threads

# The fast pass fuses QKV and orders float32 sums differently from run_with_cache: measured at most 7.4e-7 of a
# hook's scale on AMD (both kernel paths); 1e-5 leaves >10x room, and a wrong weight or position is off by >= 1e-2.
CACHE_REL = 1e-5


@pytest.fixture(scope="module")
def setup():
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(200, seed=3)
    model = models.build(task)
    with torch.no_grad(), warnings.catch_warnings(), torch_threads(1):
        warnings.simplefilter("ignore")
        _, full = model.run_with_cache(data.tokens)
    return task, data, model, full


def test_matches_run_with_cache(setup):
    task, data, model, full = setup
    hooks = ["hook_embed", "blocks.0.hook_resid_pre", "resid_post", "blocks.1.attn.hook_pattern",
             "blocks.2.attn.hook_z", "blocks.3.mlp.hook_post"]
    acts = activations.cache(model, data, hooks=hooks, positions="loss", batch_size=64, progress=False)
    assert acts.hook_names[0] == "hook_embed" and acts.hook_names[-1] == "blocks.3.hook_resid_post"
    assert len(acts) == int(data.loss_mask.sum())
    for h in acts.hook_names:
        ref = full[h].transpose(1, 2) if h.endswith("hook_pattern") else full[h]
        ref = ref[data.loss_mask]
        assert acts.get(h, flat=False).shape == ref.shape
        assert_close_to_scale(acts[h], ref.reshape(len(acts), -1), CACHE_REL, "float32 rounding only", h)
    assert acts.row_shape("blocks.1.attn.hook_pattern") == (2, task.seq_len)
    assert acts.row_shape("blocks.2.attn.hook_z") == (2, 32)


def test_rows_and_labels_align(setup):
    _, data, model, _ = setup
    acts = activations.cache(model, data, hooks="blocks.1.hook_resid_post", positions="parent", progress=False)
    lab = data.label("parent")
    values, valid = acts.labels("parent")
    assert bool(valid.all()) and torch.equal(values, lab.rows())
    assert torch.equal(acts.token, data.tokens[lab.mask])
    ex, pos = lab.mask.nonzero(as_tuple=True)
    assert torch.equal(acts.example_index, ex) and torch.equal(acts.position, pos)
    # a label defined elsewhere is reported invalid at these rows
    _, valid_goal = acts.labels("goal")
    assert not bool(valid_goal.any())
    assert acts.baseline_features("parent").shape[0] == len(acts)
    assert "goal" in acts.label_names


def test_positions_specs(setup):
    task, data, model, _ = setup
    pad = task.vocab.pad_id
    a = activations.cache(model, data, hooks="blocks.0.hook_resid_post", positions="all", progress=False)
    assert len(a) == int((data.tokens != pad).sum()) and bool((a.token != pad).all())
    q = activations.cache(model, data, hooks="blocks.0.hook_resid_post", positions="query", progress=False)
    assert len(q) == len(data) and bool((q.position == task.query).all())
    c = activations.cache(model, data, hooks="blocks.0.hook_resid_post", positions=lambda d: d.tokens == pad,
                          progress=False)
    assert bool((c.token == pad).all())
    with pytest.warns(UserWarning, match="both a label and a task position"):
        g = activations.cache(model, data, hooks="blocks.0.hook_resid_post", positions="goal", progress=False)
    assert torch.equal(g.position, data.label("goal").mask.nonzero()[:, 1])
    tok = activations.cache(model, data, hooks="blocks.0.hook_resid_post", positions="position:goal", progress=False)
    assert bool((tok.position == task.bar + 1).all())
    sub = a.at("query")
    torch.testing.assert_close(sub["blocks.0.hook_resid_post"], q["blocks.0.hook_resid_post"])
    with pytest.raises(ValueError, match="valid names"):
        activations.cache(model, data, hooks="resid_post", positions="nowhere", progress=False)
    with pytest.raises(ValueError, match="shape"):
        activations.cache(model, data, hooks="resid_post", positions=torch.ones(3, 3, dtype=torch.bool),
                          progress=False)


def test_stops_after_last_requested_layer(setup):
    _, data, model, full = setup
    activations.hook_names(model)  # the memoised firing-order pass runs the whole model once
    fired = set()

    def spy(t, hook):
        fired.add(hook.name)
        return t

    with model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_out"), spy)]):
        acts = activations.cache(model, data, hooks=["blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"],
                                 positions="query", progress=False)
    assert acts.meta["stop_at_layer"] == 2
    assert "blocks.1.hook_out" in fired and "blocks.2.hook_out" not in fired and "unembed.hook_out" not in fired
    q = data.task.positions(data, "query")
    torch.testing.assert_close(acts["blocks.2.hook_resid_pre"], full["blocks.2.hook_resid_pre"][q])


def test_unknown_hook_lists_close_matches(setup):
    _, data, model, _ = setup
    with pytest.raises(ValueError, match=r"blocks\.1\.hook_resid_post"):
        activations.cache(model, data, hooks="blocks.1.hook_resid_psot", progress=False)
    with pytest.raises(ValueError, match="did you mean"):
        activations.resolve(model, "resid_postt")
    assert activations.resolve(model, "blocks.1.hook_out") == ["blocks.1.hook_resid_post"]  # canonical alias
    assert activations.resolve(model, "blocks.*.attn.hook_pattern") == [
        f"blocks.{i}.attn.hook_pattern" for i in range(4)]


def test_dtype_tokens_and_errors(setup):
    _, data, model, full = setup
    acts = activations.cache(model, data.tokens, hooks="blocks.0.hook_resid_post", positions="all",
                             dtype=torch.float16, progress=False)
    assert acts["blocks.0.hook_resid_post"].dtype == torch.float16 and len(acts) == data.tokens.numel()
    torch.testing.assert_close(acts["blocks.0.hook_resid_post"].float(),
                               full["blocks.0.hook_resid_post"].reshape(-1, 64), rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="labels"):
        acts.labels("goal")
    with pytest.raises(KeyError, match="cached hooks"):
        acts["blocks.3.hook_resid_post"]
    with pytest.raises(ValueError, match="token ids"):
        activations.cache(model, data.tokens + 100, progress=False)


def test_prints_memory_estimate(setup, capsys):
    _, data, model, _ = setup
    activations.cache(model, data[:10], hooks="resid_post", positions="loss", progress=True)
    out = capsys.readouterr().out
    assert "activations.cache: 4 hook(s) x" in out and "KiB float32 in memory" in out


@pytest.mark.parametrize("tokens, problem", [
    (torch.zeros(5, 0, dtype=torch.long), r"got shape \(5, 0\), which holds no tokens \(no positions\)"),
    (torch.zeros(0, 7, dtype=torch.long), r"got shape \(0, 7\), which holds no tokens \(no examples\)"),
    (torch.zeros(4, 7), r"got dtype torch\.float32, which is not token ids"),
    (torch.zeros(4, 7, dtype=torch.int32), r"got dtype torch\.int32; convert with tokens\.long\(\)"),
    (torch.zeros(7, dtype=torch.long), r"got a 1-D tensor of shape \(7,\); add the batch axis with tokens\[None\]"),
])
def test_cache_refuses_token_tensors_that_are_not_n_by_seq_ids(setup, tokens, problem):
    _, _, model, _ = setup
    with pytest.raises(ValueError, match=r"LongTensor of token ids of shape \[n, seq\] with at least one example "
                                         rf"and one position; {problem}"):
        activations.cache(model, tokens, progress=False)


def test_trace_returns_logits_and_hooks_in_their_own_shapes(setup):
    """activations.trace: the explorers' one forward pass (same values as run_with_cache, mode restored)."""
    task, data, model, full = setup
    model.train()
    logits, hooks = activations.trace(model, data[:4], ("attn.hook_pattern", "hook_resid_post"))
    assert model.training  # restored
    model.eval()
    assert sorted(hooks) == sorted([f"blocks.{i}.attn.hook_pattern" for i in range(4)]
                                   + [f"blocks.{i}.hook_resid_post" for i in range(4)])
    assert hooks["blocks.1.attn.hook_pattern"].shape == full["blocks.1.attn.hook_pattern"][:4].shape
    assert torch.allclose(hooks["blocks.2.hook_resid_post"], full["blocks.2.hook_resid_post"][:4], atol=1e-5)
    assert logits.shape == (4, task.seq_len, model.cfg.d_vocab)
    with pytest.raises(ValueError, match="token id 999 but the model has only"):
        activations.trace(model, torch.full((1, 5), 999), ("hook_resid_post",))
