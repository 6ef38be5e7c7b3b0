"""circuits: direct logit attribution sums to the logit (native LN model and GPT-NeoX from a folder) and finds the one
head that writes a token; the logit lens ends at the model's logits; QK / OV readouts are the weight products."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_circuits_helpers import V, neox, params, set_head, tiny, zero

from toolkit import circuits, interventions


@pytest.fixture(scope="module")
def neox_model(tmp_path_factory):
    return neox(tmp_path_factory.mktemp("neox"))


def _tokens(n=12, seq=8, seed=0):
    return torch.randint(0, V, (n, seq), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("which", ["native", "neox"])
def test_dla_terms_sum_to_the_logit_difference(which, neox_model):
    model = tiny() if which == "native" else neox_model
    tokens = _tokens()
    res = circuits.direct_logit_attribution(model, tokens, token=2, minus=torch.arange(12) % V, positions=[-1, 3])
    lg = interventions.logits(model, tokens)[:, [7, 3]]
    want = lg[..., 2] - lg.gather(-1, (torch.arange(12) % V)[:, None, None].expand(12, 2, 1))[..., 0]
    torch.testing.assert_close(res.contributions.sum(-1), want, rtol=0, atol=1e-4)
    assert res.contributions.shape == (12, 2, len(res.components)) and res.positions == [7, 3]
    heads = [c for c in res.components if c.startswith("L") and "H" in c]
    assert len(heads) == model.cfg.n_layers * model.cfg.n_heads and "MLP1" in res.components
    assert ("pos_embed" in res.components) == (which == "native")  # rotary NeoX has no position embedding term
    # minus=b is the difference of the two single-logit attributions
    a = circuits.direct_logit_attribution(model, tokens, token=2, positions=-1).contributions
    b = circuits.direct_logit_attribution(model, tokens, token=torch.arange(12) % V, positions=-1).contributions
    torch.testing.assert_close(res.contributions[:, :1], a - b, rtol=0, atol=1e-5)
    table = res.table()
    assert set(table.columns) >= {"position", "component", "mean", "std"} and len(table) == 2 * len(res.components)
    assert json.loads(json.dumps(res.to_dict()))["max_abs_remainder"] < 1e-4


def test_dla_gives_everything_to_the_only_head_writing_the_token():
    model = tiny()
    t = 4
    p = params(model)
    with torch.no_grad():
        p["tok_embed.weight"][:, 12:] = 0  # embeddings / positions never touch dims 12..15
        p["pos.weight"][:, 12:] = 0
        for layer in range(2):  # MLPs and output biases write nothing
            zero(model, f"layers.{layer}.mlp.fc_out.weight", f"layers.{layer}.mlp.fc_out.bias",
                 f"layers.{layer}.attn.o.bias")
        zero(model, "layers.0.attn.o.weight", "ln_out.bias")  # no layer-0 head writes
        p["ln_out.weight"].fill_(1.0)
        wo = torch.zeros(8, 16)
        wo[:, 12:] = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
        set_head(model, 1, 0, W_O=wo)  # L1H0 writes only into dims 12..15
        set_head(model, 1, 1, W_O=torch.randn(8, 16, generator=torch.Generator().manual_seed(2)).index_fill(
            1, torch.arange(12, 16), 0.0))  # L1H1 writes only outside them
        u = torch.zeros(16)
        u[12:] = torch.tensor([1.0, -1.0, 2.0, -2.0])  # sums to 0: LayerNorm centering adds nothing
        p["head.weight"][t] = u
    res = circuits.direct_logit_attribution(model, _tokens(), token=t, positions=None)
    mean = res.mean.abs()  # [P, C]
    i = res.components.index("L1H0")
    assert float(mean[:, i].min()) > 1e-2
    others = torch.cat([mean[:, :i], mean[:, i + 1:]], 1)
    assert float(others.max()) < 1e-5
    torch.testing.assert_close(res.contributions[..., i], res.logits, rtol=0, atol=1e-5)
    assert res.top(1)[0][0] == "L1H0"


@pytest.mark.parametrize("which", ["native", "neox"])
def test_logit_lens_last_depth_is_the_model_output(which, neox_model):
    model = tiny() if which == "native" else neox_model
    tokens = _tokens()
    lens = circuits.logit_lens(model, tokens, positions=None, token=1)
    assert lens.logits.shape == (model.cfg.n_layers, 12, 8, V)
    torch.testing.assert_close(lens.logits[-1], interventions.logits(model, tokens), rtol=0, atol=1e-5)
    assert float(lens.table().query("layer == 1").agrees_with_final.min()) == 1.0
    assert lens.prob.shape == (model.cfg.n_layers, 12, 8) and not torch.allclose(lens.prob[0], lens.prob[-1])
    assert len(json.loads(json.dumps(lens.to_dict()))["rows"]) == model.cfg.n_layers * 8


def test_readouts_are_the_weight_products():
    model = tiny()
    W_E, W_pos, W_U = model.W_E.detach(), model.W_pos.detach(), model.W_U.detach()
    L, H = 1, 0
    q = (W_E + W_pos[5]) @ model.W_Q[L, H].detach() + model.b_Q[L, H].detach()
    k = (W_E + W_pos[2]) @ model.W_K[L, H].detach() + model.b_K[L, H].detach()
    qk = circuits.qk_readout(model, L, H, ln=False, query_position=5, key_position=2)
    torch.testing.assert_close(qk, torch.einsum("qd,kd->qk", q, k) / math.sqrt(8))
    ov = circuits.ov_readout(model, L, H, ln=False)
    want = torch.einsum("vm,md,de,eu->vu", W_E, model.W_V[L, H].detach(), model.W_O[L, H].detach(), W_U) \
        + (model.b_V[L, H].detach() @ model.W_O[L, H].detach() @ W_U)
    torch.testing.assert_close(ov, want, rtol=1e-5, atol=1e-5)
    # ln=True: the embeddings go through ln1 (LayerNorm by hand), the output through ln_final's centering and weight
    ln1 = params(model)["layers.1.ln1.weight"], params(model)["layers.1.ln1.bias"]
    x = W_E - W_E.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * ln1[0].detach() + ln1[1].detach()
    out = (x @ model.W_V[L, H].detach() + model.b_V[L, H].detach()) @ model.W_O[L, H].detach()
    out = (out - out.mean(-1, keepdim=True)) * params(model)["ln_out.weight"].detach()
    torch.testing.assert_close(circuits.ov_readout(model, L, H), out @ W_U, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="heads 0..1"):
        circuits.ov_readout(model, 1, 2)


def test_a_copying_head_has_a_diagonal_ov_readout():
    model = tiny(normalization=None, n_layers=1)
    p = params(model)
    eye = torch.zeros(16, 8)
    eye[:V, :V] = torch.eye(V)
    with torch.no_grad():
        p["tok_embed.weight"].zero_()
        p["tok_embed.weight"][:, :V] = torch.eye(V)  # token t -> dim t
        p["head.weight"].copy_(p["tok_embed.weight"])  # W_U = W_E^T
    set_head(model, 0, 0, W_V=eye, W_O=eye.T, b_V=torch.zeros(8))
    torch.testing.assert_close(circuits.ov_readout(model, 0, 0, ln=False), torch.eye(V))
    other = circuits.ov_readout(model, 0, 1, ln=False)  # a random head does not copy
    assert not bool((other.argmax(1) == torch.arange(V)).all())


def test_readouts_on_a_rotary_model_refuse_positions(neox_model):
    assert circuits.qk_readout(neox_model, 1, 2).shape == (V, V)
    assert circuits.ov_readout(neox_model, 0, 3).shape == (V, V)
    with pytest.raises(ValueError, match="no learned position embedding"):
        circuits.qk_readout(neox_model, 0, 0, query_position=1)
