"""Activations on disk: one safetensors file per shard of examples, a JSON manifest, lazy reads.

Layout of a store folder::

    manifest.json              what was cached (hooks, row shapes, dtype, fingerprints) and which shards exist
    rows.safetensors           example_index / position / token of every row
    shard_00000.safetensors    rows of examples [0, shard_examples), one tensor per hook
    shard_00001.safetensors    ...

Every file is written to a temporary name in the same folder and moved into place with ``os.replace``, so a
killed run leaves only whole shards; re-running the same ``activations.cache(..., store=path)`` call skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from toolkit._io import atomic_write

MANIFEST = "manifest.json"
ROWS = "rows.safetensors"
FORMAT = "searchlight-activations/1"


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write a safetensors file atomically (:func:`toolkit._io.atomic_write`)."""
    atomic_write(path, save({k: v.contiguous() for k, v in tensors.items()}))


def atomic_write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON atomically (:func:`toolkit._io.atomic_write`)."""
    atomic_write(path, json.dumps(obj, indent=1))


def fingerprint(*tensors: torch.Tensor, extra: Any = None) -> str:
    """A short sha256 over tensor bytes (and a JSON-able extra) to recognise the same model / data."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if extra is not None:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    params = {id(p): p for p in model.parameters()}.values()
    return fingerprint(*params)


def read_manifest(path: Path) -> dict[str, Any] | None:
    f = path / MANIFEST
    if not f.exists():
        return None
    with open(f) as fh:
        m = json.load(fh)
    if m.get("format") != FORMAT:
        raise ValueError(f"{f} is not a Searchlight activation store (format {m.get('format')!r}); "
                         "pick another folder for store=")
    return m


def shard_ok(path: Path, hooks: list[str]) -> bool:
    """True when a shard file exists, opens, and holds every hook."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return set(hooks) <= set(f.keys())
    except Exception:  # noqa: BLE001 - any unreadable file is simply recomputed
        return False


class ShardReader:
    """Read rows of one store lazily: only the shards that hold the requested rows are touched."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        m = read_manifest(self.path)
        if m is None:
            raise FileNotFoundError(f"no activation store at {self.path} (missing {MANIFEST}); create one with "
                                    "activations.cache(model, data, ..., store=path)")
        if not m.get("complete"):
            done = sum(1 for s in m["shards"] if (self.path / s["file"]).exists())
            raise ValueError(f"the store at {self.path} is incomplete ({done}/{len(m['shards'])} shards); re-run "
                             "the same activations.cache(..., store=path) call to finish it")
        self.manifest = m
        self.dtype = getattr(torch, m["dtype"])
        self.row_starts = [s["rows"][0] for s in m["shards"]]
        self.row_stops = [s["rows"][1] for s in m["shards"]]
        self._handles: dict[int, Any] = {}

    def _open(self, k: int) -> Any:
        if k not in self._handles:
            self._handles[k] = safe_open(str(self.path / self.manifest["shards"][k]["file"]), framework="pt")
        return self._handles[k]

    def rows(self) -> dict[str, torch.Tensor]:
        with safe_open(str(self.path / ROWS), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}

    def read(self, hook: str, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Rows ``[start, stop)`` of one hook, ``[stop - start, *row_shape]``."""
        n = self.manifest["n_rows"]
        stop = n if stop is None else min(stop, n)
        shape = tuple(self.manifest["row_shapes"][hook])
        parts = []
        for k, (a, b) in enumerate(zip(self.row_starts, self.row_stops)):
            lo, hi = max(a, start), min(b, stop)
            if lo < hi:
                parts.append(self._open(k).get_slice(hook)[lo - a:hi - a])
        if not parts:
            return torch.empty(0, *shape, dtype=self.dtype)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def take(self, hook: str, index: torch.Tensor) -> torch.Tensor:
        """Arbitrary rows (a LongTensor of row ids), reading shard by shard."""
        index = torch.as_tensor(index, dtype=torch.long)
        shape = tuple(self.manifest["row_shapes"][hook])
        out = torch.empty(len(index), *shape, dtype=self.dtype)
        starts = torch.tensor(self.row_starts)
        shard = torch.searchsorted(starts, index, right=True) - 1
        for k in shard.unique().tolist():
            sel = (shard == k).nonzero().flatten()
            a, b = self.row_starts[k], self.row_stops[k]
            local = index[sel] - a
            lo, hi = int(local.min()), int(local.max()) + 1
            block = self._open(k).get_slice(hook)[lo:hi]
            out[sel] = block[local - lo]
            del block, a, b
        return out
