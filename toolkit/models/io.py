"""Save and load models: safetensors weights + a JSON sidecar. Loading never unpickles anything.

``save(model, "dir/tree-8")`` writes ``dir/tree-8.safetensors`` (weights) and ``dir/tree-8.json`` (architecture,
task spec and vocabulary, training summary with measured accuracy, toolkit version, weights checksum). Both files
are written atomically (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from toolkit._io import atomic_write
from toolkit.models.build import ARCH_KEYS, boot, meta

FORMAT = "searchlight-model"
FORMAT_VERSION = 1


def paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights.safetensors, sidecar.json)`` for a checkpoint path given with or without a suffix."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder; give a file name such as {p / 'my-model'}")
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if hasattr(x, "item") and not isinstance(x, str):  # numpy scalars
        return x.item()
    return x


def save(model: Any, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and metadata; returns the ``.safetensors`` path.

    ``extra`` (JSON-able) is stored under ``"extra"`` in the sidecar, e.g. a description or an evaluation.
    """
    from toolkit import __version__

    info = meta(model)
    weights_path, sidecar_path = paths(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    blob = save_bytes(tensors, metadata={"format": FORMAT})
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "toolkit_version": __version__,
        "torch_version": torch.__version__,
        "name": info.get("name"),
        "arch": info["arch"],
        "task": info["task"],
        "vocab": info["vocab"],
        "training": info.get("training"),
        "n_params": sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()),
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "weights_file": weights_path.name,
        "extra": extra,
    }
    atomic_write(weights_path, blob)
    atomic_write(sidecar_path, (json.dumps(_jsonable(sidecar), indent=1) + "\n").encode())
    return weights_path


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (no weights are read)."""
    _, sidecar_path = paths(path)
    if not sidecar_path.exists():
        raise FileNotFoundError(f"no checkpoint metadata at {sidecar_path}; a Searchlight checkpoint is a "
                                ".safetensors file plus a .json sidecar written by models.save()")
    try:
        side = json.loads(sidecar_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{sidecar_path} is not valid JSON ({err}); re-save the model with models.save()") from None
    if not isinstance(side, dict) or side.get("format") != FORMAT:
        raise ValueError(f"{sidecar_path} is not a Searchlight checkpoint sidecar (no \"format\": \"{FORMAT}\")")
    if side.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{sidecar_path} uses checkpoint format {side['format_version']}, newer than this toolkit "
                         f"understands ({FORMAT_VERSION}); update the toolkit")
    for key in ("arch", "task", "vocab"):
        if key not in side:
            raise ValueError(f"{sidecar_path} lacks the {key!r} entry; re-save the model with models.save()")
    return side


def _read_weights(weights_path: Path, expected_sha: str | None) -> dict[str, torch.Tensor]:
    if not weights_path.exists():
        raise FileNotFoundError(f"weights file {weights_path} is missing (its .json sidecar exists)")
    blob = weights_path.read_bytes()
    head = blob[:4]
    if head[:1] == b"\x80" or head == b"PK\x03\x04":
        kind = "a zip archive (torch.save format)" if head == b"PK\x03\x04" else "a Python pickle"
        raise ValueError(f"{weights_path} is {kind}, not a safetensors file. Searchlight never unpickles files "
                         "(unpickling can run arbitrary code); convert it with safetensors.torch.save_file or "
                         "re-save the model with models.save()")
    try:
        tensors = load_bytes(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ValueError(f"{weights_path} is not a readable safetensors file ({err}); re-save the model with "
                         "models.save()") from None
    if expected_sha is not None and hashlib.sha256(blob).hexdigest() != expected_sha:
        raise ValueError(f"{weights_path} does not match its .json sidecar (weights checksum differs); the two "
                         "files come from different saves — re-save the model with models.save()")
    return tensors


def _check_vocab(side: dict[str, Any], task: Any, where: str) -> None:
    """Raise when the checkpoint's vocabulary differs from ``task``'s (the task code or spec changed)."""
    ours = task.vocab.to_dict()
    theirs = side["vocab"]
    if ours == theirs:
        return
    a, b = theirs.get("tokens", []), ours["tokens"]
    diffs = [f"position {i}: checkpoint {x!r} vs task {y!r}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(a) != len(b):
        diffs.insert(0, f"checkpoint has {len(a)} tokens, task has {len(b)}")
    if theirs.get("pad") != ours["pad"]:
        diffs.insert(0, f"pad token: checkpoint {theirs.get('pad')!r} vs task {ours['pad']!r}")
    raise ValueError(f"vocabulary of {where} does not match {task!r}: " + "; ".join(diffs[:6])
                     + ("; ..." if len(diffs) > 6 else "") + ". Retrain the checkpoint for the current task "
                     "(scripts/train_checkpoints.py) or use the task version it was trained with")


def load(path: str | os.PathLike, device: str | torch.device | None = None, task: Any = None) -> Any:
    """Load a checkpoint written by :func:`save` into a fresh ``TransformerBridge`` (eval mode).

    Checks, each failing with a message that says what differs: the sidecar format; that the weights file is
    safetensors (a pickle or ``torch.save`` file is refused without being executed); the weights checksum; that
    every tensor name and shape matches the architecture in the sidecar; that the vocabulary matches the
    sidecar's ``d_vocab``, the current task code, and ``task`` when one is given.
    """
    weights_path, _ = paths(path)
    side = read_sidecar(path)
    arch = side["arch"]
    unknown = sorted(set(arch) - set(ARCH_KEYS) - {"d_vocab"})
    if unknown:
        raise ValueError(f"{weights_path.name}: unknown architecture field(s) {unknown} in the sidecar; "
                         "update the toolkit or re-save the model")
    n_vocab = len(side["vocab"].get("tokens", []))
    if arch.get("d_vocab") != n_vocab:
        raise ValueError(f"{weights_path.name}: config d_vocab={arch.get('d_vocab')} but the stored vocabulary has "
                         f"{n_vocab} tokens; the sidecar is inconsistent — re-save the model")
    tensors = _read_weights(weights_path, side.get("weights_sha256"))

    model = boot(arch, device=None)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = [f"missing tensor {k} {expected[k]}" for k in sorted(set(expected) - set(found))]
    problems += [f"unexpected tensor {k} {found[k]}" for k in sorted(set(found) - set(expected))]
    problems += [f"{k}: file has shape {found[k]}, expected {expected[k]}"
                 for k in sorted(set(found) & set(expected)) if found[k] != expected[k]]
    if problems:
        raise ValueError(f"{weights_path.name} does not match the architecture in its sidecar {_arch_str(arch)}: "
                         + "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
                         + ". Re-save the model with models.save() so weights and config agree")

    if task is not None:
        _check_vocab(side, task, weights_path.name)
    else:
        current = _task_or_none(side)
        if current is not None:
            _check_vocab(side, current, weights_path.name)

    model.load_state_dict(tensors, strict=True)
    if device is not None:
        model.to(device)
    model.eval()
    model.searchlight = {
        "arch": arch,
        "task": side["task"],
        "vocab": side["vocab"],
        "training": side.get("training"),
        "name": side.get("name"),
        "random_init": False,
        "extra": side.get("extra"),
    }
    return model


def _arch_str(arch: dict[str, Any]) -> str:
    keys = ("d_model", "n_layers", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx")
    return "(" + ", ".join(f"{k}={arch.get(k)}" for k in keys) + ")"


def _task_or_none(side: dict[str, Any]) -> Any:
    """The task described by a sidecar, rebuilt with the current toolkit code (None when not available)."""
    from toolkit import tasks

    try:
        return tasks.from_spec(side["task"])
    except (ValueError, TypeError):  # a task type this toolkit version does not know: nothing to compare with
        return None
