"""Checkpoints shipped with the toolkit (``toolkit/models/checkpoints/``), trained by
``scripts/train_checkpoints.py``; see ``checkpoints/MODEL_CARD.md`` for how each was trained and how well it does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from toolkit.models.build import boot
from toolkit.models.io import load, read_sidecar

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


def available() -> dict[str, str]:
    """``{name: one-line description}`` of the shipped checkpoints."""
    out = {}
    for sidecar in sorted(CHECKPOINT_DIR.glob("*.json"), key=lambda p: p.stem):
        try:
            side = read_sidecar(sidecar)
        except (ValueError, FileNotFoundError):
            continue
        extra = side.get("extra") or {}
        desc = extra.get("description", str(side["task"]))
        result = extra.get("verified_cpu") or extra.get("heldout") or {}
        score = extra.get("score", "exact")
        if score in result:
            what = "per-answer accuracy" if score == "token_greedy" else "exact-path accuracy"
            desc += f" — held-out {what} {result[score]:.1%} (greedy, n={result.get('n')})"
        out[sidecar.stem] = desc
    return out


def pretrained(name: str, random_init: bool = False, seed: int | None = None,
               device: str | torch.device | None = None) -> Any:
    """A shipped model by name (e.g. ``"tree-8"``), as a ``TransformerBridge`` in eval mode.

    Args:
        name: one of :func:`available`.
        random_init: return the same architecture with *untrained* random weights (the control every probe
            result should be compared against). By default these are exactly the weights training started from
            (the checkpoint's init seed); pass ``seed`` for another random draw.
        seed: init seed for ``random_init=True``.
        device: where to put the weights.
    """
    names = available()
    if name not in names:
        listing = "\n".join(f"  {k}: {v}" for k, v in names.items()) or "  (none shipped)"
        raise ValueError(f"unknown pretrained model {name!r}; available:\n{listing}")
    if seed is not None and not random_init:
        raise ValueError("seed only applies with random_init=True (it seeds the fresh random weights)")
    path = CHECKPOINT_DIR / name
    if not random_init:
        model = load(path, device=device)
        model.searchlight["name"] = name
        return model
    side = read_sidecar(path)
    arch = dict(side["arch"])
    if seed is not None:
        arch["seed"] = seed
    model = boot(arch, device=device)
    model.searchlight = {"arch": arch, "task": side["task"], "vocab": side["vocab"], "training": None,
                         "name": name, "random_init": True}
    return model
