"""Export / import SAEs in SAELens's on-disk layout (a folder with two or three files).

    folder/sae_weights.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]
    folder/cfg.json                  d_in, d_sae, architecture ("standard" | "topk"), hook_name, dtype, ...
    folder/sparsity.safetensors      "sparsity": log10 feature density [d_sae] (when known)

The cfg uses SAELens's pre-6.0 flat keys, which every SAELens version reads (``SAE.load_from_disk``);
``normalize_activations`` is always ``"none"`` on disk because the input scaling factor is folded into
the weights on export, as SAELens does. Weights are safetensors only - never pickle.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

WEIGHTS, CFG, SPARSITY = "sae_weights.safetensors", "cfg.json", "sparsity.safetensors"
_ARCH_OUT = {"relu": "standard", "topk": "topk"}
_ARCH_IN = {"standard": "relu", "topk": "topk"}


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def saelens_cfg(sae: Any, **metadata: Any) -> dict[str, Any]:
    """The cfg.json dict for a fitted :class:`SparseAutoencoder` (``metadata`` adds/overrides keys,
    e.g. ``model_name="tree-8"``, ``context_size=48``)."""
    hook = sae.hook_name or ""
    layer = None
    parts = hook.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        layer = int(parts[1])
    cfg: dict[str, Any] = {
        "architecture": _ARCH_OUT[sae.architecture],
        "d_in": int(sae.d_in_),
        "d_sae": int(sae.W_enc_.shape[1]),
        "dtype": "float32",
        "device": "cpu",
        "model_name": None,
        "hook_name": sae.hook_name,
        "hook_layer": layer,
        "hook_head_index": None,
        "activation_fn_str": "topk" if sae.architecture == "topk" else "relu",
        "activation_fn_kwargs": {"k": int(sae.k)} if sae.architecture == "topk" else {},
        "apply_b_dec_to_input": bool(sae.apply_b_dec_to_input),
        "finetuning_scaling_factor": False,
        "normalize_activations": "none",
        "context_size": None,
        "prepend_bos": False,
        "dataset_path": None,
        "sae_lens_training_version": None,
        "searchlight": {"training": {k: v for k, v in sae.get_params().items()
                                     if isinstance(v, int | float | str | bool | type(None) | tuple)},
                        "scaling_factor_folded": float(sae.scaling_factor_),
                        "n_samples_seen": int(getattr(sae, "n_samples_seen_", 0))},
    }
    if sae.architecture == "topk":
        cfg["k"] = int(sae.k)
    cfg.update(metadata)
    return cfg


def save_saelens(sae: Any, path: str | os.PathLike, **metadata: Any) -> str:
    """Write ``sae`` to the folder ``path`` (created if needed); returns the folder path."""
    from safetensors.torch import save_file

    if not hasattr(sae, "W_enc_"):
        raise RuntimeError("fit the SAE before saving it")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; SAELens's layout is a folder of files")
    folder.mkdir(parents=True, exist_ok=True)
    s = float(sae.scaling_factor_)  # fold the input scaling in: works on raw activations afterwards
    tensors = {"W_enc": sae.W_enc_ * s, "b_enc": sae.b_enc_, "W_dec": sae.W_dec_ / s, "b_dec": sae.b_dec_ / s}
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
    _atomic_write(folder / WEIGHTS, lambda tmp: save_file(tensors, tmp))
    cfg = saelens_cfg(sae, **metadata)
    _atomic_write(folder / CFG, lambda tmp: Path(tmp).write_text(json.dumps(cfg, indent=2) + "\n"))
    density = getattr(sae, "feature_density_", None)
    if density is not None:
        sparsity = {"sparsity": torch.log10(density.float().clamp_min(1e-10)).contiguous()}
        _atomic_write(folder / SPARSITY, lambda tmp: save_file(sparsity, tmp))
    return str(folder)


def load_saelens(path: str | os.PathLike, device: str = "cpu"):
    """Load a folder in SAELens's layout (ours, or a standard/topk SAE saved by SAELens) as a fitted
    :class:`SparseAutoencoder` ready for ``transform`` / ``reconstruct``."""
    from safetensors.torch import load_file

    from toolkit.unsupervised.sae import SparseAutoencoder

    folder = Path(path)
    if not (folder / WEIGHTS).is_file() or not (folder / CFG).is_file():
        raise FileNotFoundError(f"{folder} must contain {WEIGHTS} and {CFG} (SAELens's layout)")
    cfg = json.loads((folder / CFG).read_text())
    arch = cfg.get("architecture", "standard")
    if arch not in _ARCH_IN:
        raise ValueError(f"architecture {arch!r} is not supported; this loader reads {sorted(_ARCH_IN)}")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"normalize_activations={cfg['normalize_activations']!r} is not folded into the weights; "
                         "fold it in SAELens (sae.fold_activation_norm_scaling_factor) before exporting")
    w = load_file(str(folder / WEIGHTS), device=device)
    missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(w)
    if missing:
        raise ValueError(f"{folder / WEIGHTS} lacks {sorted(missing)}; found {sorted(w)}")
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    meta = cfg.get("metadata") or {}
    sae = SparseAutoencoder(d_sae=int(cfg["d_sae"]), architecture=_ARCH_IN[arch], k=k,
                            apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
                            hook_name=cfg.get("hook_name") or meta.get("hook_name"), device=device, progress=False)
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, shape in shapes.items():
        if tuple(w[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(w[name].shape)}, cfg.json says {shape}")
    sae.W_enc_, sae.b_enc_, sae.W_dec_, sae.b_dec_ = (w[n].float() for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
    sae.scaling_factor_, sae.d_in_, sae.d_sae_ = 1.0, d_in, d_sae
    if (folder / SPARSITY).is_file():
        sae.feature_density_ = 10 ** load_file(str(folder / SPARSITY))["sparsity"]
    sae.cfg_ = cfg
    return sae
