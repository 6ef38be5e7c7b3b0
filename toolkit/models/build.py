"""Build a tiny transformer (a ``TransformerBridge``) sized for a search task.

Every model built here carries a small ``model.searchlight`` dict that says which task it was built for, so
that :func:`toolkit.models.evaluate`, :func:`toolkit.models.save` and the rest of the toolkit never have to be
told again::

    model.searchlight = {
        "arch": {...},              # the TransformerBridgeConfig fields needed to rebuild the model
        "task": {"type": "tree", "n_nodes": 8, ...},   # task.spec(); tasks.from_spec() rebuilds it
        "vocab": {"tokens": [...], "pad": "PAD"},
        "training": {...} | None,   # filled in by train() / load()
        "name": "tree-8" | None,    # set by pretrained()
        "random_init": bool,
    }
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformer_lens import TransformerBridge, TransformerBridgeConfig

# Defaults from the literature and trial runs: d_model 64, 4 layers, 2 heads, d_mlp 256 (~200k params).
DEFAULT_ARCH: dict[str, Any] = {
    "d_model": 64,
    "n_layers": 4,
    "n_heads": 2,
    "d_mlp": 256,
    "act_fn": "gelu",
    "normalization_type": "LN",
    "seed": 0,
}
# Everything `build` accepts as an override (d_head and n_ctx are derived unless given).
ARCH_KEYS = (*DEFAULT_ARCH, "d_head", "n_ctx")


def _check_task(task: Any) -> None:
    missing = [a for a in ("vocab", "seq_len", "spec") if not hasattr(task, a)]
    if missing:
        raise TypeError(f"build() needs a search task (e.g. tasks.TreeSearch(...)) with .vocab, .seq_len and "
                        f".spec(); {type(task).__name__} lacks {missing}")


def arch_for(task: Any, **overrides: Any) -> dict[str, Any]:
    """The architecture dict :func:`build` would use for ``task`` (defaults + ``overrides``)."""
    _check_task(task)
    unknown = sorted(set(overrides) - set(ARCH_KEYS))
    if unknown:
        raise TypeError(f"unknown model option(s) {unknown}; valid options: {list(ARCH_KEYS)}")
    arch = {**DEFAULT_ARCH, **overrides}
    for key in ("d_model", "n_layers", "n_heads", "d_mlp"):
        if isinstance(arch[key], bool) or not isinstance(arch[key], int) or arch[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {arch[key]!r}")
    if arch.get("d_head") is None:
        if arch["d_model"] % arch["n_heads"]:
            raise ValueError(f"d_model={arch['d_model']} is not divisible by n_heads={arch['n_heads']}; "
                             "choose n_heads that divides d_model or pass d_head explicitly")
        arch["d_head"] = arch["d_model"] // arch["n_heads"]
    n_ctx = arch.get("n_ctx") or int(task.seq_len)
    if n_ctx < task.seq_len:
        raise ValueError(f"n_ctx={n_ctx} is shorter than the task's seq_len={task.seq_len}; "
                         "leave n_ctx unset to use the task's length")
    arch["n_ctx"] = n_ctx
    arch["d_vocab"] = len(task.vocab)
    return arch


def task_info(task: Any) -> dict[str, Any]:
    """The JSON-able description of ``task`` stored on models and in checkpoints: ``task.spec()``."""
    return copy.deepcopy(task.spec())


def boot(arch: dict[str, Any], device: str | torch.device | None = None) -> TransformerBridge:
    """A randomly initialised bridge from an architecture dict (no task metadata attached)."""
    cfg = TransformerBridgeConfig(**arch)
    model = TransformerBridge.boot_native(cfg, device=device)
    model.eval()
    return model


def build(task: Any, device: str | torch.device | None = None, **overrides: Any) -> TransformerBridge:
    """A fresh, randomly initialised transformer sized for ``task``.

    Args:
        task: a :class:`toolkit.tasks.base.Task` (needs ``.vocab``, ``.seq_len``, ``.spec()``).
        device: where the weights live (default CPU).
        **overrides: ``d_model``, ``n_layers``, ``n_heads``, ``d_mlp``, ``d_head``, ``act_fn``,
            ``normalization_type``, ``n_ctx``, ``seed`` (weight-init seed; default 0).

    Returns:
        a ``TransformerBridge`` in eval mode; ``model(tokens [n, seq])`` -> logits ``[n, seq, d_vocab]``.
        ``model.searchlight`` records the task, vocabulary and architecture.
    """
    arch = arch_for(task, **overrides)
    model = boot(arch, device)
    model.searchlight = {
        "arch": arch,
        "task": task_info(task),
        "vocab": task.vocab.to_dict(),
        "training": None,
        "name": None,
        "random_init": True,
    }
    return model


def check_bridge(model: Any, who: str) -> None:
    """One clear error when ``model`` is not a TransformerBridge, with the fix for an in-memory HF model."""
    if hasattr(model, "hook_dict") and hasattr(model, "cfg"):
        return
    if hasattr(model, "save_pretrained") and hasattr(model, "config"):
        raise TypeError(f"{who} runs TransformerBridge models; this is a Hugging Face {type(model).__name__} in "
                        "memory. Save it to a folder and boot the bridge from there (booting an in-memory model "
                        "makes transformer_lens reach for the hub): model.save_pretrained(folder); "
                        "tokenizer.save_pretrained(folder); bridge = TransformerBridge.boot_transformers(folder) "
                        "(from transformer_lens.model_bridge import TransformerBridge)")
    raise TypeError(f"{who} needs a TransformerBridge (models.build(task), models.pretrained(name) or "
                    f"TransformerBridge.boot_transformers(folder)); got {type(model).__name__}")


def n_params(model: torch.nn.Module) -> int:
    """Number of trainable parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def meta(model: Any) -> dict[str, Any]:
    """``model.searchlight``, or a clear error when the model was not built by the toolkit."""
    info = getattr(model, "searchlight", None)
    if not isinstance(info, dict) or "task" not in info:
        raise ValueError("this model has no Searchlight metadata (model.searchlight); build it with "
                         "models.build(task), load it with models.load(path) or models.pretrained(name)")
    return info


def task_of(model: Any) -> Any:
    """Rebuild the task a model was built for (from ``model.searchlight['task']``)."""
    from toolkit import tasks

    return tasks.from_spec(meta(model)["task"])


def fast_module(model: TransformerBridge) -> torch.nn.Module:
    """A plain (hook-free) ``NativeModel`` that *shares* the bridge's parameters.

    Training or evaluating through it updates/reads exactly the bridge's weights, without the bridge's hook
    machinery. Same outputs as ``model(tokens)`` up to float rounding.
    """
    from transformer_lens.model_bridge.sources.native.model import NativeModel

    cfg = copy.deepcopy(model.cfg)
    with torch.random.fork_rng(devices=[]):
        plain = NativeModel(cfg)
    src = {name.replace("._original_component", ""): p
           for name, p in model.original_model.named_parameters(remove_duplicate=False)}
    for name, _ in list(plain.named_parameters()):
        if name not in src:
            raise RuntimeError(f"cannot map parameter {name!r} of the plain module onto the bridge; "
                               "train the bridge directly (fast=False)")
        owner, _, attr = name.rpartition(".")
        setattr(plain.get_submodule(owner) if owner else plain, attr, src[name])
    device = next(model.parameters()).device
    return plain.to(device).train(model.training)
