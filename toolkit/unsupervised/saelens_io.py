"""Export / import SAEs in SAELens's on-disk layout (a folder with two or three files).

    folder/sae_weights.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]
    folder/cfg.json                  d_in, d_sae, architecture ("standard" | "topk"), hook_name, dtype, ...
    folder/sparsity.safetensors      "sparsity": log10 feature density [d_sae] (when known)

The cfg carries SAELens's pre-6.0 flat keys, which every SAELens version reads (``SAE.load_from_disk``), and
the same facts under ``metadata`` (SAELens 6's field, which keeps unknown keys): there
``metadata["searchlight"]`` holds the toolkit's training settings (``l1_coefficient``, ``architecture``, ``k``,
``normalize_activations``, ``n_samples``, ``seed``, ...), so a round trip through SAELens keeps them and
:func:`read_saelens` restores them. ``normalize_activations`` is always ``"none"`` on disk because the input
scaling factor is folded into the weights on export, as SAELens does. SAEs on ``attn.hook_z`` are stored
flat (``d_in = n_heads * d_head``) with ``reshape_activations="hook_z"``, SAELens's convention.
Weights are safetensors only - never pickle.

This module knows the file layout only; building a :class:`~toolkit.unsupervised.SparseAutoencoder` from it is
``toolkit.unsupervised.sae.load_saelens`` (so that this module never imports ``sae``: no import cycle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from toolkit._io import atomic_write
from toolkit.activations.hooks import layer_of

WEIGHTS, CFG, SPARSITY = "sae_weights.safetensors", "cfg.json", "sparsity.safetensors"
_ARCH_OUT = {"relu": "standard", "topk": "topk"}
_ARCH_IN = {"standard": "relu", "topk": "topk"}
_META_KEYS = ("model_name", "hook_name", "hook_head_index", "context_size", "prepend_bos", "dataset_path",
              "sae_lens_training_version")
RESHAPES = ("none", "hook_z")


def reshape_for(hook_name: str | None) -> str:
    """SAELens's ``reshape_activations`` for a hook: ``"hook_z"`` for ``...hook_z`` (per-head outputs
    ``[..., n_heads, d_head]`` flattened to ``n_heads * d_head``), else ``"none"``."""
    return "hook_z" if (hook_name or "").endswith("hook_z") else "none"


def training_settings(sae: Any) -> dict[str, Any]:
    """The SAE's constructor settings that JSON can hold (tuples become lists), plus what fit learned about
    the data: ``scaling_factor_folded`` and ``n_samples_seen``."""
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sae.get_params().items()
              if isinstance(v, int | float | str | bool | type(None) | tuple) and k != "n_threads"}
    return {"training": params, "scaling_factor_folded": float(sae.scaling_factor_),
            "n_samples_seen": int(getattr(sae, "n_samples_seen_", 0))}


def saelens_cfg(sae: Any, **metadata: Any) -> dict[str, Any]:
    """The cfg.json dict for a fitted :class:`SparseAutoencoder` (``metadata`` adds/overrides keys,
    e.g. ``model_name="tree-8"``, ``context_size=48``), flat and under ``metadata`` (SAELens 6)."""
    hook = sae.hook_name or ""
    layer = layer_of(hook, -1) if hook else -1
    cfg: dict[str, Any] = {
        "architecture": _ARCH_OUT[sae.architecture],
        "d_in": int(sae.d_in_),
        "d_sae": int(sae.W_enc_.shape[1]),
        "dtype": "float32",
        "device": "cpu",
        "model_name": None,
        "hook_name": sae.hook_name,
        "hook_layer": layer if layer >= 0 else None,
        "hook_head_index": None,
        "activation_fn_str": "topk" if sae.architecture == "topk" else "relu",
        "activation_fn_kwargs": {"k": int(sae.k)} if sae.architecture == "topk" else {},
        "apply_b_dec_to_input": bool(sae.apply_b_dec_to_input),
        "finetuning_scaling_factor": False,
        "normalize_activations": "none",
        "reshape_activations": reshape_for(sae.hook_name),
        "context_size": None,
        "prepend_bos": False,
        "dataset_path": None,
        "sae_lens_training_version": None,
    }
    if sae.architecture == "topk":
        cfg["k"] = int(sae.k)
    cfg.update(metadata)
    cfg["metadata"] = {**{key: cfg[key] for key in _META_KEYS}, "hook_layer": cfg["hook_layer"],
                       **{key: v for key, v in metadata.items() if key not in cfg or key in _META_KEYS},
                       "searchlight": training_settings(sae)}
    return cfg


def save_saelens(sae: Any, path: str | os.PathLike, **metadata: Any) -> str:
    """Write a fitted :class:`SparseAutoencoder` to the folder ``path`` (created if needed); returns the folder
    path. ``metadata``: extra cfg keys (e.g. ``model_name="tree-8"``), also stored under ``cfg["metadata"]``."""
    from safetensors.torch import save

    if not hasattr(sae, "W_enc_"):
        raise RuntimeError("fit the SAE before saving it")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; SAELens's layout is a folder of files")
    folder.mkdir(parents=True, exist_ok=True)
    s = float(sae.scaling_factor_)  # fold the input scaling in: works on raw activations afterwards
    tensors = {"W_enc": sae.W_enc_ * s, "b_enc": sae.b_enc_, "W_dec": sae.W_dec_ / s, "b_dec": sae.b_dec_ / s}
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(folder / WEIGHTS, save(tensors))
    atomic_write(folder / CFG, json.dumps(saelens_cfg(sae, **metadata), indent=2) + "\n")
    density = getattr(sae, "feature_density_", None)
    if density is not None:
        sparsity = {"sparsity": torch.log10(density.float().clamp_min(1e-10)).contiguous()}
        atomic_write(folder / SPARSITY, save(sparsity))
    return str(folder)


def read_saelens(path: str | os.PathLike, device: str = "cpu") -> dict[str, Any]:
    """Read and check a folder in SAELens's layout (ours, or a standard/topk SAE saved by SAELens).

    Returns ``{"cfg": dict, "weights": {W_enc, b_enc, W_dec, b_dec}, "density": [d_sae] or None,
    "params": SparseAutoencoder keyword arguments}``: the toolkit's saved training settings when the folder
    has them (``cfg["metadata"]["searchlight"]``, or the top-level ``searchlight`` key older exports wrote),
    overridden by what the file itself says (architecture, k, d_sae, apply_b_dec_to_input, hook_name).
    """
    from safetensors.torch import load_file

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
    meta = cfg.get("metadata") or {}
    hook = cfg.get("hook_name") or meta.get("hook_name")
    reshape = cfg.get("reshape_activations") or "none"
    if reshape not in RESHAPES:
        raise ValueError(f"reshape_activations={reshape!r} is not supported; this loader reads {RESHAPES}")
    if reshape != reshape_for(hook):
        raise ValueError(f"reshape_activations={reshape!r} does not fit hook_name={hook!r}: SAELens reshapes "
                         "exactly the hook_z SAEs ([..., n_heads, d_head] -> n_heads * d_head)")
    w = load_file(str(folder / WEIGHTS), device=device)
    missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(w)
    if missing:
        raise ValueError(f"{folder / WEIGHTS} lacks {sorted(missing)}; found {sorted(w)}")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, shape in shapes.items():
        if tuple(w[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(w[name].shape)}, cfg.json says {shape}")
    saved = meta.get("searchlight") or cfg.get("searchlight") or {}
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in (saved.get("training") or {}).items()}
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    params.update(d_sae=d_sae, architecture=_ARCH_IN[arch], k=k, hook_name=hook, device=device, progress=False,
                  apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)))
    density = None
    if (folder / SPARSITY).is_file():
        density = 10 ** load_file(str(folder / SPARSITY))["sparsity"]
    return {"cfg": cfg, "weights": {n: w[n].float() for n in shapes}, "density": density, "params": params}
