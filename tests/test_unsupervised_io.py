"""Export / import in SAELens's layout round-trips (weights, cfg keys, scaling folded in)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

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


def test_round_trip_keeps_training_settings_in_saelens_metadata(tmp_path, data):
    d, X = data
    sae = SparseAutoencoder(d_sae=24, l1_coefficient=0.2, n_samples=4096, batch_size=256, seed=7, lr=3e-3,
                            normalize_activations="expected_average_only_in", hook_name="blocks.0.hook_resid_pre",
                            progress=False).fit(X)
    folder = sae.save(str(tmp_path / "sae"), model_name="my-llama")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    meta = cfg["metadata"]  # SAELens 6 keeps this dict (and unknown keys in it) through its own save/load
    assert meta["hook_name"] == "blocks.0.hook_resid_pre" and meta["model_name"] == "my-llama"
    saved = meta["searchlight"]["training"]
    assert (saved["l1_coefficient"], saved["seed"], saved["n_samples"], saved["lr"]) == (0.2, 7, 4096, 3e-3)
    assert saved["normalize_activations"] == "expected_average_only_in" and saved["architecture"] == "relu"
    assert meta["searchlight"]["scaling_factor_folded"] == pytest.approx(sae.scaling_factor_)
    assert meta["searchlight"]["n_samples_seen"] == sae.n_samples_seen_
    back = load_saelens(folder)
    params, mine = back.get_params(), sae.get_params()
    for key in ("l1_coefficient", "seed", "n_samples", "lr", "batch_size", "normalize_activations", "architecture",
                "resample_at", "adam_betas", "hook_name", "d_sae"):
        assert params[key] == mine[key], key
    torch.testing.assert_close(back.transform(X), sae.transform(X), rtol=1e-4, atol=1e-5)
    # a folder without our metadata (e.g. written by SAELens) loads with the file's own facts and defaults
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "metadata"}))
    plain = load_saelens(folder)
    assert plain.get_params()["l1_coefficient"] == SparseAutoencoder().l1_coefficient
    assert plain.hook_name == "blocks.0.hook_resid_pre" and plain.d_sae == 24


def test_hook_z_sae_uses_saelens_flat_convention(tmp_path, data):
    _, X = data
    Z = X.reshape(-1, 4, 16)  # [rows, n_heads, d_head]; SAELens flattens hook_z to n_heads * d_head = 64
    sae = SparseAutoencoder(d_sae=16, architecture="topk", k=3, n_samples=4096, batch_size=256, progress=False,
                            hook_name="blocks.1.attn.hook_z").fit(Z)
    assert sae.d_in_ == 64
    torch.testing.assert_close(sae.transform(Z), sae.transform(X))
    assert sae.reconstruct(Z).shape == Z.shape and sae.reconstruct(X).shape == X.shape
    folder = sae.save(str(tmp_path / "z"))
    cfg = json.loads((tmp_path / "z" / "cfg.json").read_text())
    assert cfg["d_in"] == 64 and cfg["reshape_activations"] == "hook_z" and cfg["hook_layer"] == 1
    back = load_saelens(folder)
    torch.testing.assert_close(back.reconstruct(Z), sae.reconstruct(Z), rtol=1e-4, atol=1e-5)
    other = SparseAutoencoder(d_sae=16, n_samples=1024, batch_size=256, progress=False,
                              hook_name="blocks.1.hook_resid_post").fit(X)
    other.save(str(tmp_path / "o"))
    assert json.loads((tmp_path / "o" / "cfg.json").read_text())["reshape_activations"] == "none"
    (tmp_path / "z" / "cfg.json").write_text(json.dumps({**cfg, "reshape_activations": "none"}))
    with pytest.raises(ValueError, match="reshape_activations"):
        load_saelens(folder)


def _imports(module: str) -> set[str]:
    """Every module a file imports, at module level or inside functions (relative imports resolved)."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def test_no_import_cycle_between_sae_and_saelens_io():
    io_imports = _imports("toolkit.unsupervised.saelens_io")
    assert not {"toolkit.unsupervised", "toolkit.unsupervised.sae"} & io_imports, io_imports
    assert "toolkit.unsupervised.saelens_io" in _imports("toolkit.unsupervised.sae")  # one direction only
    fresh = subprocess.run([sys.executable, "-c", "import toolkit.unsupervised.saelens_io as m; print(m.CFG)"],
                           capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0 and fresh.stdout.strip() == "cfg.json", fresh.stderr
