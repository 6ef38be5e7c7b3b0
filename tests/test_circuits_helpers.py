"""Helpers for the circuits tests: tiny native bridges whose weights are set by hand (and a test that the setter
writes what the bridge's ``W_Q`` / ``W_O`` / ``W_U``... read back), a GPT-NeoX bridge booted from a folder."""

from __future__ import annotations

import torch

from toolkit.models.build import boot

V = 6


def tiny(normalization: str | None = "LN", n_layers: int = 2, n_heads: int = 2, d_model: int = 16, d_head: int = 8,
         seed: int = 0, n_ctx: int = 8, d_vocab: int = V):
    return boot({"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "d_head": d_head, "d_mlp": 32,
                 "act_fn": "gelu", "normalization_type": normalization, "n_ctx": n_ctx, "d_vocab": d_vocab,
                 "seed": seed})


def params(model) -> dict[str, torch.Tensor]:
    """The native module's parameters by short name (``layers.0.attn.q.weight``, ``tok_embed.weight``...)."""
    return {k.replace("._original_component", ""): p for k, p in model.original_model.named_parameters()}


@torch.no_grad()
def set_head(model, layer: int, head: int, **w: torch.Tensor) -> None:
    """Write ``W_Q / W_K / W_V [d_model, d_head]``, ``W_O [d_head, d_model]``, ``b_Q / b_K / b_V [d_head]`` of one
    head in TransformerLens layout into the native linear layers."""
    p = params(model)
    dh = model.cfg.d_head
    rows = slice(head * dh, (head + 1) * dh)
    for name, value in w.items():
        kind, which = name.split("_")[0], name.split("_")[1].lower()
        if which == "o":
            p[f"layers.{layer}.attn.o.weight"][:, rows] = value.T
        elif kind == "W":
            p[f"layers.{layer}.attn.{which}.weight"][rows] = value.T
        else:
            p[f"layers.{layer}.attn.{which}.bias"][rows] = value


@torch.no_grad()
def zero(model, *names: str) -> None:
    """Zero parameters by short name (see :func:`params`)."""
    p = params(model)
    for n in names:
        p[n].zero_()


def neox(folder, n_layers: int = 2, seed: int = 0):
    """A tiny GPT-NeoX (rotary, parallel attention + MLP) saved to ``folder`` and booted as a TransformerBridge."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=n_layers, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)
    GPTNeoXForCausalLM(cfg).save_pretrained(folder)
    return TransformerBridge.boot_transformers(str(folder))


def test_set_head_writes_what_the_bridge_reads():
    model = tiny()
    g = torch.Generator().manual_seed(0)
    wq, wo, bv = torch.randn(16, 8, generator=g), torch.randn(8, 16, generator=g), torch.randn(8, generator=g)
    set_head(model, 1, 1, W_Q=wq, W_O=wo, b_V=bv)
    torch.testing.assert_close(model.W_Q[1, 1].detach(), wq)
    torch.testing.assert_close(model.W_O[1, 1].detach(), wo)
    torch.testing.assert_close(model.b_V[1, 1].detach(), bv)
    assert not torch.allclose(model.W_Q[1, 0].detach(), wq)  # the other head is untouched
    zero(model, "head.weight")
    assert float(model.W_U.detach().abs().sum()) == 0.0
