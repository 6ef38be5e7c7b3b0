"""Your own model, no SearchDataset anywhere (issue #18): a tiny GPT-NeoX (an architecture no other test uses) saved
to a folder with a WordLevel tokenizer, booted as a TransformerBridge, then cache -> sweep with own labels -> SAE
with defaults -> the three explorers on plain tokens with vocab=."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from toolkit import activations, probes, unsupervised, widgets

VOCAB = ["<pad>", "(", ")", "a", "b", "c"]


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>")
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)
    folder = tmp_path_factory.mktemp("neox")
    hf = GPTNeoXForCausalLM(cfg)
    hf.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model = TransformerBridge.boot_transformers(str(folder))
    tokens = torch.randint(1, len(VOCAB), (120, 16), generator=torch.Generator().manual_seed(0))
    depth = (tokens == 1).long().cumsum(1) - (tokens == 2).long().cumsum(1)  # bracket depth so far [n, seq]
    acts = activations.cache(model, tokens, progress=False)
    return model, tokenizer, tokens, depth, acts, hf


def test_sweep_takes_own_labels_as_values_or_values_and_mask(own):
    _, _, tokens, depth, acts, _ = own
    defined = depth >= 0  # a depth below zero is an unmatched ')': undefined there
    res = probes.sweep(acts, labels={"inside": depth > 0, "depth": (depth.clamp(min=0), defined),
                                     "depth_float": depth.float()}, n_boot=20, progress=False)
    table = res.table()
    assert set(table.label) == {"inside", "depth", "depth_float"}
    kinds = dict(zip(table.label, table.kind))
    assert kinds == {"inside": "binary", "depth": "multiclass", "depth_float": "regression"}
    rows = table[table.label == "depth"].iloc[0]
    assert rows.n_train + rows.n_test == int(defined.sum())  # only where the mask says the label is defined
    assert rows.baseline_name == "current token" and 0 <= rows.baseline <= 1
    assert json.loads(json.dumps(res.to_dict()))["rows"][0]["label"] in kinds  # the result stays JSON-able
    # the current token alone decodes 'inside' only partly; the residual stream carries the running depth
    inside = table[table.label == "inside"]
    assert (inside.score > inside.baseline).all()


def test_sweep_names_the_fix_for_bad_own_labels(own):
    _, _, tokens, depth, acts, _ = own
    with pytest.raises(ValueError, match=r"\[n, seq\] or \[n, seq, k\].*\[120, 16\]"):
        probes.sweep(acts, labels={"depth": depth[:, :8]}, progress=False)
    with pytest.raises(ValueError, match="mask must be a BoolTensor of shape"):
        probes.sweep(acts, labels={"depth": (depth, (depth > 0).long())}, progress=False)
    with pytest.raises(ValueError, match=r"labels=\{name: values"):
        probes.sweep(acts, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        probes.sweep(acts, labels={"x": torch.full(tokens.shape, float("nan"))}, progress=False)


def test_sae_with_defaults_is_useful_or_warns(own):
    _, _, _, _, acts, _ = own
    hook = "blocks.1.hook_resid_post"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sae = unsupervised.SparseAutoencoder(n_samples=20_000, progress=False, hook_name=hook).fit(acts[hook])
    fit_warnings = [w for w in caught if issubclass(w.category, unsupervised.SAEFitWarning)]
    X = acts[hook]
    ev = 1 - ((sae.reconstruct(X) - X) ** 2).sum() / ((X - X.mean(0)) ** 2).sum()
    assert fit_warnings or (ev > 0.5 and sae.fit_metrics_["l0"] <= acts[hook].shape[-1])  # useful: sparse too


def test_explorers_on_plain_tokens_with_vocab(own):
    model, tokenizer, tokens, depth, acts, _ = own
    att = widgets.AttentionExplorer(model, tokens, vocab=tokenizer, max_examples=4)
    assert "task" not in att.views and "L0H0 pattern" in att.views["heatmap"].value
    att.controls["layer"].value = 1
    assert "L1H0 pattern" in att.views["heatmap"].value
    assert att._tokens() == tokenizer.convert_ids_to_tokens(tokens[0].tolist())
    assert widgets.AttentionExplorer(model, tokens, vocab=VOCAB, max_examples=2)._tokens() == att._tokens()

    res = probes.sweep(acts, labels={"inside": depth > 0}, n_boot=0, progress=False)
    pe = widgets.ProbeExplorer(res, acts, vocab=tokenizer)
    idx, y, pred = pe.predictions()
    assert len(idx) == len(acts) and pe.figures["example"] is not None and pe.figures["confusion"] is not None

    hook = "blocks.1.hook_resid_post"
    relu = _Relu(unsupervised.PCA(8).fit(acts[hook]))
    fb = widgets.FeatureBrowser(relu, acts, tokens, vocab=tokenizer, hook=hook, labels={"inside": depth > 0})
    assert "example" not in fb.views and fb.figures["dashboard"] is not None
    assert "inside" in fb.target_names[0]
    fb.controls["example"].value = 3
    where = fb.views["where"].value
    assert "most active latents on example 3" in where
    assert all(f"{p}:{t}" in where for p, t in enumerate(tokenizer.convert_ids_to_tokens(tokens[3].tolist())))


class _Relu:
    def __init__(self, pca):
        self.pca = pca

    def transform(self, X):
        return torch.as_tensor(self.pca.transform(X)).clamp(min=0)


def test_task_explorers_say_what_they_need(own):
    model, _, tokens, _, _, _ = own
    with pytest.raises(TypeError, match="AttentionExplorer\\(model, tokens, vocab=...\\)"):
        widgets.SearchStateExplorer(model, tokens, {})
    with pytest.raises(TypeError, match="maze SearchDataset"):
        widgets.MazeEditor(model, tokens)
    with pytest.raises(ValueError, match="needs vocab="):
        widgets.AttentionExplorer(model, tokens)


def test_an_in_memory_hf_model_gets_the_save_and_boot_hint(own):
    from toolkit import models

    _, _, tokens, _, _, hf = own
    with pytest.raises(TypeError, match=r"save_pretrained\(folder\).*boot_transformers\(folder\)"):
        widgets.AttentionExplorer(hf, tokens, vocab=VOCAB)
    with pytest.raises(TypeError, match="needs a TransformerBridge"):
        models.check_bridge(object(), "activations.cache")
