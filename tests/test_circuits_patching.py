"""circuits: path patching finds the one path a hand-built 2-layer model uses; attribution patching agrees with real
patching of every head on a near-linear tiny model, and the agreement drops for shuffled estimates."""

from __future__ import annotations

import json

import pytest
import torch
from test_circuits_helpers import V, neox, params, set_head, tiny, zero

from toolkit import circuits


def _one_path_model():
    """No LayerNorm. Dims 4..7 hold the embeddings; head L0H0 reads them and writes dims 8..15; head L1H1 attends
    uniformly (W_Q = W_K = 0), reads dims 8..15 through V and writes dims 0..3, the only dims W_U reads. Every other
    head, MLP and bias writes nothing. So the input reaches the logits only along L0H0 -> L1H1.v -> logits."""
    model = tiny(normalization=None)
    p = params(model)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        emb = torch.zeros(V, 16)
        emb[:, 4:8] = torch.randn(V, 4, generator=g)
        p["tok_embed.weight"].copy_(emb)
        p["pos.weight"].zero_()
        p["head.weight"][:, 4:] = 0
        for layer in range(2):
            zero(model, f"layers.{layer}.mlp.fc_out.weight", f"layers.{layer}.mlp.fc_out.bias",
                 f"layers.{layer}.attn.o.bias")
    wo = torch.zeros(8, 16)
    wo[:, 8:] = torch.randn(8, 8, generator=g)
    set_head(model, 0, 0, W_O=wo)
    set_head(model, 0, 1, W_O=torch.zeros(8, 16))
    wv, wo1 = torch.zeros(16, 8), torch.zeros(8, 16)
    wv[8:] = torch.randn(8, 8, generator=g)
    wo1[:, :4] = torch.randn(8, 4, generator=g)
    set_head(model, 1, 1, W_Q=torch.zeros(16, 8), W_K=torch.zeros(16, 8), b_Q=torch.zeros(8), b_K=torch.zeros(8),
             W_V=wv, W_O=wo1)
    set_head(model, 1, 0, W_V=torch.zeros(16, 8), b_V=torch.zeros(8))
    return model


def _logit_diff(lg, clean, corrupt):
    return (lg[:, -1, 0] - lg[:, -1, 1]).mean()


def test_path_patching_finds_the_only_path():
    model = _one_path_model()
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, V, (16, 8), generator=g)
    corrupt = torch.randint(0, V, (16, 8), generator=g)
    res = circuits.path_patching(model, clean, corrupt, sender=(0, 0),
                                 receivers=[(1, 1, "v"), (1, 1, "q"), (1, 1, "k"), (1, 0, "v"), "logits"],
                                 metric=_logit_diff, progress=False)
    assert abs(res.corrupt - res.clean) > 0.1
    norm = dict(zip(res.receivers, res.normalized.tolist(), strict=True))
    assert norm["L1H1.v"] == pytest.approx(1.0, abs=1e-4)
    for other in ("L1H1.q", "L1H1.k", "L1H0.v", "logits"):
        assert abs(norm[other]) < 1e-4, other
    # the other layer-0 head writes nothing, so no path from it carries anything
    silent = circuits.path_patching(model, clean, corrupt, sender="L0H1", receivers=[(1, 1, "v")],
                                    metric=_logit_diff, progress=False)
    assert abs(float(silent.normalized[0])) < 1e-4
    # corrupting the sender at the first half of the positions only: part of the effect
    half = circuits.path_patching(model, clean, corrupt, sender=(0, 0), receivers=[(1, 1, "v")],
                                  sender_positions=[0, 1, 2, 3], metric=_logit_diff, progress=False)
    assert 0.05 < abs(float(half.normalized[0] - 1.0)) and len(half.table()) == 1
    assert json.loads(json.dumps(res.to_dict()))["receivers"][0] == "L1H1.v"
    with pytest.raises(ValueError, match="later block"):
        circuits.path_patching(model, clean, corrupt, sender=(1, 0), receivers=[(1, 1, "v")], progress=False)


@pytest.mark.parametrize("which", ["native", "neox"])
def test_path_patching_with_nothing_corrupted_changes_nothing(which, tmp_path):
    """On any bridge (a LayerNorm model with MLPs, GPT-NeoX with parallel attention + MLP and rotary): corrupting
    the sender at no position, or patching the receiver at no position, leaves the clean metric; the frozen run is
    the clean run."""
    model = tiny() if which == "native" else neox(tmp_path)
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, V, (16, 8), generator=g)
    corrupt = torch.randint(0, V, (16, 8), generator=g)
    recv = [(1, 0, "q"), (1, 1, "k"), (1, 1, "v"), "logits"]
    full = circuits.path_patching(model, clean, corrupt, sender=(0, 1), receivers=recv, metric=_logit_diff,
                                  progress=False)
    assert float(full.effect.abs().max()) > 1e-4  # something goes through these paths
    none = circuits.path_patching(model, clean, corrupt, sender=(0, 1), receivers=recv, metric=_logit_diff,
                                  sender_positions=[], progress=False)
    torch.testing.assert_close(none.effect, torch.zeros(4), rtol=0, atol=1e-5)
    recv_none = circuits.path_patching(model, clean, corrupt, sender="MLP0", receivers=recv[:3], metric=_logit_diff,
                                       receiver_positions=[], progress=False)
    torch.testing.assert_close(recv_none.effect, torch.zeros(3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("which", ["native", "neox"])
def test_attribution_patching_agrees_with_real_patching(which, tmp_path):
    model = tiny(n_layers=3, n_heads=4, d_model=32, seed=1) if which == "native" else neox(tmp_path, n_layers=3)
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, V, (32, 8), generator=g)
    corrupt = clean.clone()
    corrupt[:, 3] = (clean[:, 3] + 1) % V  # one token changed: small, near-linear effects
    est = circuits.attribution_patching(model, clean, corrupt, metric=_logit_diff)
    assert est.estimate.shape == (3, 4) and est.per_position.shape == (3, 4, 8)
    assert len(json.loads(json.dumps(est.to_dict()))["estimate"]) == 3 and len(est.table()) == 12
    assert float(est.per_position[..., :3].abs().max()) < 1e-6  # positions before the change: nothing to patch
    agr = circuits.patching_agreement(model, clean, corrupt, metric=_logit_diff, k=4, estimate=est.estimate)
    assert agr["pearson"] > 0.9 and agr["spearman"] > 0.8 and agr["top_k_overlap"] >= 0.75
    shuffled = est.estimate.flatten()[torch.randperm(12, generator=g)].view(3, 4)
    bad = circuits.agreement(shuffled, agr["truth"], k=4)
    assert bad["pearson"] < agr["pearson"] - 0.2
    if which == "neox":
        return
    with pytest.raises(TypeError, match="differentiable"):
        circuits.attribution_patching(model, clean, corrupt, metric=lambda lg, c, x: lg[:, -1, 0].mean().item())
