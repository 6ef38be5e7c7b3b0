"""Activations from a tiny TransformerBridge, splicing an SAE in, and the label report beside a control."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from _tolerance import assert_close_to_scale

from toolkit.tasks.base import Label
from toolkit.unsupervised import (
    activation_source,
    collect_activations,
    dataset_labels,
    model_label_report,
    spliced_scores,
)

HOOK = "blocks.0.hook_resid_post"
pytestmark = pytest.mark.slow  # importing transformer_lens and booting a model takes >10 s on a loaded machine


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    cfg = TransformerBridgeConfig(d_model=16, d_head=8, n_layers=2, n_ctx=12, n_heads=2, d_vocab=7, d_mlp=32,
                                  act_fn="gelu", seed=0)
    return TransformerBridge.boot_native(cfg)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 7, (40, 12), generator=torch.Generator().manual_seed(0))


class Identity:
    def reconstruct(self, x):
        return x


class Zero:
    def reconstruct(self, x):
        return torch.zeros_like(x)


def test_collect_matches_run_with_cache_and_source_streams(model, tokens):
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, 3:] = True
    X = collect_activations(model, tokens, HOOK, mask, batch_size=16)
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == HOOK)
    assert_close_to_scale(X, cache[HOOK][mask], 1e-5, "the same forward pass in batches: float32 rounding only", HOOK)
    src = activation_source(model, tokens, HOOK, mask, examples_per_chunk=8, repeat=False)
    chunks = list(src)
    assert sum(c.shape[0] for c in chunks) == int(mask.sum())
    assert all(c.shape[1] == 16 for c in chunks)
    with pytest.raises(KeyError, match="hook_resid"):
        collect_activations(model, tokens, "blocks.0.hook_nope")
    with pytest.raises(ValueError, match="bool"):
        collect_activations(model, tokens, HOOK, mask.long())


def test_spliced_scores_identity_recovers_everything_zero_nothing(model, tokens):
    same = spliced_scores(model, tokens, HOOK, Identity())
    assert same["ce_loss_with_sae"] == pytest.approx(same["ce_loss_clean"], abs=1e-5)
    assert same["ce_loss_score"] == pytest.approx(1.0, abs=1e-4)
    assert same["kl_div_with_sae"] == pytest.approx(0.0, abs=1e-5)
    assert same["accuracy_with_sae"] == pytest.approx(same["accuracy_clean"])
    zero = spliced_scores(model, tokens, HOOK, Zero())
    assert zero["ce_loss_score"] == pytest.approx(0.0, abs=1e-6)
    assert zero["kl_div_score"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(KeyError, match="no hook"):
        spliced_scores(model, tokens, "blocks.9.hook_resid_post", Identity())


def _fake_dataset(tokens):
    """Labels in the toolkit.tasks format: one that is a function of the current token (learnable from
    the residual stream) and one that is pure noise."""
    n, seq = tokens.shape
    mask = torch.zeros(n, seq, dtype=torch.bool)
    mask[:, 2:] = True
    is_three = Label("is_three", "binary", (tokens == 3).long(), mask)
    noise = Label("noise", "binary", (torch.rand(n, seq, generator=torch.Generator().manual_seed(5)) < 0.5).long(),
                  mask)
    loss_mask = torch.ones(n, seq, dtype=torch.bool)
    loss_mask[:, 0] = False
    return SimpleNamespace(tokens=tokens, loss_mask=loss_mask, labels={"is_three": is_three, "noise": noise})


def test_model_label_report_against_control(model, tokens):
    ds = _fake_dataset(tokens)
    mask, labels, kinds = dataset_labels(ds)
    assert int(mask.sum()) == 40 * 10 and kinds == {"is_three": "binary", "noise": "binary"}
    rep = model_label_report(model, ds, HOOK, architecture="topk", k=4, d_sae=32, n_samples=20_000, batch_size=128)
    rows = {r["label"]: r for r in rep.table}
    assert set(rows) == {"is_three", "noise"}
    assert rows["is_three"]["sae"] > 0.7  # the token identity is plainly in the residual stream
    assert rows["noise"]["sae"] < 0.3  # a label unrelated to the activations is matched by nothing
    assert rep.spliced is not None and "ce_loss_score" in rep.spliced
    assert "spliced_control" in rep.info
    assert rep.sae.hook_name == HOOK
    assert "SAE" in rep.summary()
    with pytest.raises(ValueError, match="positions"):
        dataset_labels(ds, positions="some")
