"""The :class:`Activations` object returned by :func:`toolkit.activations.cache`.

One *row* per kept (example, position). For every hook, ``acts[hook]`` is a ``[n_rows, d]`` tensor
(per-row activations flattened; ``acts.row_shape(hook)`` gives the unflattened shape, e.g. ``(n_heads, seq)``
for an attention pattern, whose rows are query positions). Row metadata and labels are aligned to the rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from toolkit.activations.store import ShardReader


class LazyRows:
    """A read-only view of one hook in a disk store: ``len``, ``shape``, ``[slice]``, ``[LongTensor]``."""

    def __init__(self, reader: ShardReader, hook: str):
        self.reader, self.hook = reader, hook
        self.row_shape = tuple(reader.manifest["row_shapes"][hook])
        self.shape = (reader.manifest["n_rows"], math.prod(self.row_shape))
        self.dtype = reader.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: slice | torch.Tensor | int) -> torch.Tensor:
        if isinstance(idx, int):
            return self[idx:idx + 1][0] if idx >= 0 else self[len(self) + idx]
        if isinstance(idx, slice):
            start, stop, step = idx.indices(len(self))
            out = self.reader.read(self.hook, start, stop)[::step]
        else:
            out = self.reader.take(self.hook, torch.as_tensor(idx))
        return out.reshape(out.shape[0], -1)

    def __repr__(self) -> str:
        return f"LazyRows({self.hook!r}, shape={self.shape}, dtype={self.dtype})"


class Activations:
    """Activations of some hooks at some rows (example, position), with aligned metadata and labels.

    Attributes:
        hook_names: the cached hooks, in execution order.
        example_index, position, token: LongTensor ``[n_rows]`` per row.
        data: the SearchDataset (or token tensor) the rows come from; None when loaded without it.
        meta: what was cached (model name, positions, dtype, ...).
    """

    def __init__(self, tensors: dict[str, torch.Tensor] | None, rows: dict[str, torch.Tensor], data: Any,
                 meta: dict[str, Any], reader: ShardReader | None = None):
        self._tensors = tensors
        self._reader = reader
        self.example_index: torch.Tensor = rows["example_index"]
        self.position: torch.Tensor = rows["position"]
        self.token: torch.Tensor = rows["token"]
        self.data = data
        self.meta = meta
        self.hook_names: list[str] = list(meta["hooks"])
        self._row_shapes = {h: tuple(s) for h, s in meta["row_shapes"].items()}

    # ------------------------------------------------------------------ tensors
    def __len__(self) -> int:
        return int(self.example_index.shape[0])

    @property
    def n_rows(self) -> int:
        return len(self)

    def __contains__(self, hook: str) -> bool:
        return hook in self._row_shapes

    def _check(self, hook: str) -> None:
        if hook not in self._row_shapes:
            import difflib

            close = difflib.get_close_matches(hook, self.hook_names, n=4, cutoff=0.4)
            raise KeyError(f"hook {hook!r} was not cached; cached hooks: {self.hook_names}"
                           + (f" (closest: {close})" if close else "")
                           + "; cache it with activations.cache(model, data, hooks=[...])")

    def row_shape(self, hook: str) -> tuple[int, ...]:
        """Per-row shape of a hook before flattening, e.g. ``(64,)`` or ``(n_heads, seq)``."""
        self._check(hook)
        return self._row_shapes[hook]

    def get(self, hook: str, flat: bool = True) -> torch.Tensor:
        """``[n_rows, d]`` (``flat``) or ``[n_rows, *row_shape]``; reads a disk store fully into memory."""
        self._check(hook)
        t = self._tensors[hook] if self._tensors is not None else self._reader.read(hook)
        return t.reshape(len(self), -1) if flat else t.reshape(len(self), *self._row_shapes[hook])

    def __getitem__(self, hook: str) -> torch.Tensor:
        if not isinstance(hook, str):
            raise TypeError(f"index Activations by a hook name (one of {self.hook_names}); to pick rows use "
                            "acts.select(row_mask)")
        return self.get(hook)

    def lazy(self, hook: str) -> LazyRows | torch.Tensor:
        """A lazily read ``[n_rows, d]`` view for disk stores (the tensor itself when in memory)."""
        self._check(hook)
        if self._reader is None:
            return self.get(hook)
        return LazyRows(self._reader, hook)

    def batches(self, hook: str, batch_size: int = 4096, shuffle: bool = False, seed: int = 0
                ) -> Iterator[torch.Tensor]:
        """Iterate ``[<=batch_size, d]`` chunks of one hook; disk stores are read one chunk at a time."""
        view = self.lazy(hook)
        n = len(self)
        if shuffle:  # shuffle blocks of rows, then rows within a block: bounded reads from disk
            g = torch.Generator().manual_seed(seed)
            starts = torch.arange(0, n, batch_size)[torch.randperm(math.ceil(n / batch_size), generator=g)]
            for s in starts.tolist():
                chunk = view[s:s + batch_size]
                yield chunk[torch.randperm(len(chunk), generator=g)]
        else:
            for s in range(0, n, batch_size):
                yield view[s:s + batch_size]

    @property
    def d(self) -> dict[str, int]:
        """Flattened width of every hook."""
        return {h: math.prod(s) for h, s in self._row_shapes.items()}

    @property
    def nbytes(self) -> int:
        item = torch.empty(0, dtype=getattr(torch, self.meta["dtype"])).element_size()
        return sum(len(self) * d * item for d in self.d.values())

    @property
    def on_disk(self) -> bool:
        return self._reader is not None

    def layer(self, hook: str) -> int:
        """Block index of a hook (-1 for embeddings)."""
        from toolkit.activations.hooks import layer_of

        return layer_of(hook, int(self.meta.get("n_layers", 10**6)))

    # ------------------------------------------------------------------ labels
    @property
    def label_names(self) -> list[str]:
        return sorted(getattr(self.data, "labels", {}) or {})

    def label(self, name: str) -> Any:
        labels = getattr(self.data, "labels", None)
        if not labels:
            raise ValueError("these activations have no labels: cache a SearchDataset (task.generate(n)), or "
                             "pass data= to activations.load(path, data=...)")
        if name not in labels:
            raise KeyError(f"no label {name!r}; labels: {sorted(labels)}")
        return labels[name]

    def labels(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values [n_rows, *shape], valid [n_rows] bool)``: the label at every row, and where it is defined."""
        lab = self.label(name)
        return lab.values[self.example_index, self.position], lab.mask[self.example_index, self.position]

    def baseline_features(self, name: str) -> torch.Tensor | None:
        """The label's trivial-baseline features at every row, ``[n_rows, f]`` (None when the label has none)."""
        bf = self.label(name).baseline_features
        return None if bf is None else bf[self.example_index, self.position].float()

    # ------------------------------------------------------------------ subsets
    def select(self, rows: torch.Tensor) -> Activations:
        """A new in-memory Activations with only some rows (BoolTensor ``[n_rows]`` or row ids)."""
        rows = torch.as_tensor(rows)
        idx = rows.nonzero().flatten() if rows.dtype == torch.bool else rows.long()
        if self._tensors is not None:
            tensors = {h: t[idx] for h, t in self._tensors.items()}
        else:
            tensors = {h: self._reader.take(h, idx) for h in self.hook_names}
        meta = {**self.meta, "store": None}
        r = {"example_index": self.example_index[idx], "position": self.position[idx], "token": self.token[idx]}
        return Activations(tensors, r, self.data, meta)

    def at(self, positions: Any) -> Activations:
        """Rows at some positions: a position spec (``"query"``, ``"loss"``, a label name, a mask ``[n, seq]``)."""
        from toolkit.activations.positions import position_mask

        mask = position_mask(self.data, positions)
        return self.select(mask[self.example_index, self.position])

    def __repr__(self) -> str:
        where = f"store={self.meta.get('store')!r}" if self.on_disk else "in memory"
        return (f"Activations({len(self)} rows from {int(self.example_index.unique().numel()) if len(self) else 0} "
                f"examples, hooks={self.hook_names}, {self.nbytes / 2**20:.1f} MiB {where})")
