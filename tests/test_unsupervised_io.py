"""Export / import in SAELens's layout round-trips (weights, cfg keys, scaling folded in)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from toolkit.unsupervised import SparseAutoencoder, ci_toy, load_saelens, save_saelens

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    d = ci_toy(0)
    return d, d.sample(2000, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("arch,extra", [("relu", {"l1_coefficient": 0.3}), ("topk", {"k": 3})])
def test_round_trip_preserves_outputs_and_writes_saelens_keys(tmp_path, data, arch, extra):
    d, X = data
    sae = SparseAutoencoder(d_sae=32, architecture=arch, n_samples=10_000, batch_size=256, progress=False,
                            normalize_activations="expected_average_only_in", hook_name="blocks.1.hook_resid_post",
                            **extra).fit(d.source(1))
    folder = sae.save(str(tmp_path / "sae"), model_name="tree-8")
    files = {p.name for p in (tmp_path / "sae").iterdir()}
    assert files == {"sae_weights.safetensors", "cfg.json", "sparsity.safetensors"}
    w = load_file(str(tmp_path / "sae" / "sae_weights.safetensors"))
    assert {k: tuple(v.shape) for k, v in w.items()} == {"W_enc": (64, 32), "b_enc": (32,), "W_dec": (32, 64),
                                                          "b_dec": (64,)}
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["d_in"] == 64 and cfg["d_sae"] == 32 and cfg["hook_name"] == "blocks.1.hook_resid_post"
    assert cfg["hook_layer"] == 1 and cfg["model_name"] == "tree-8"
    assert cfg["architecture"] == ("standard" if arch == "relu" else "topk")
    assert cfg["normalize_activations"] == "none"  # the scaling factor is folded into the weights
    assert cfg["apply_b_dec_to_input"] is True
    if arch == "topk":
        assert cfg["k"] == 3 and cfg["activation_fn_kwargs"] == {"k": 3}
    back = load_saelens(folder)
    assert back.scaling_factor_ == 1.0 and sae.scaling_factor_ != 1.0
    torch.testing.assert_close(back.transform(X), sae.transform(X), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(back.reconstruct(X), sae.reconstruct(X), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(back.feature_density_, sae.feature_density_.clamp_min(1e-10), rtol=1e-4, atol=0)
    save_saelens(back, tmp_path / "again")  # a loaded SAE can be saved again
    torch.testing.assert_close(load_saelens(tmp_path / "again").W_dec_, back.W_dec_)


def test_load_errors_name_the_fix(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        load_saelens(tmp_path)
    d, _ = data
    sae = SparseAutoencoder(d_sae=8, n_samples=1024, batch_size=256, progress=False).fit(d.source(1))
    folder = tmp_path / "s"
    sae.save(str(folder))
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "architecture": "jumprelu"}))
    with pytest.raises(ValueError, match="jumprelu"):
        load_saelens(folder)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "d_sae": 9}))
    with pytest.raises(ValueError, match="cfg.json says"):
        load_saelens(folder)
    with pytest.raises(RuntimeError, match="fit"):
        save_saelens(SparseAutoencoder(), tmp_path / "x")
    assert not list(folder.glob(".*"))  # atomic writes leave no temp files behind
