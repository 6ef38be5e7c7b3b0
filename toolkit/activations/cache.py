"""Run a model over a whole dataset and keep only the activations you ask for.

    acts = activations.cache(model, data, hooks="resid_post", positions="loss")
    acts["blocks.1.hook_resid_post"]          # [n_rows, d_model]
    values, valid = acts.labels("parent")      # aligned to the rows

How it stays cheap: one forward pass per batch without gradients; the requested positions are sliced out as the
activations are produced (nothing else is kept); the pass stops after the last requested block; each batch is
cut after its last requested position (the model is causal, so earlier positions do not change). Models of the
plain architecture run through the hook-free pass of :mod:`.fast_forward` (checked against the bridge first);
others, and hooked models (inside an intervention), run the bridge with hooks that do the slicing. With
``store=path`` rows go to disk shard by shard (see :mod:`.store`).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from toolkit._threads import torch_threads
from toolkit.activations import fast_forward
from toolkit.activations import store as st
from toolkit.activations.batching import batch_rows
from toolkit.activations.hooks import HookSpec, position_dim, resolve, stop_layer
from toolkit.activations.positions import PositionSpec, position_mask, tokens_of
from toolkit.activations.result import Activations
from toolkit.models.build import check_bridge


def _device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _row_shapes(model: Any, names: list[str], tokens: torch.Tensor, stop: int | None) -> dict[str, tuple]:
    """Per-position shapes of every hook, from one forward pass on one example."""
    shapes: dict[str, tuple] = {}

    def grab(t: torch.Tensor, hook: Any) -> torch.Tensor:
        shapes[hook.name] = tuple(t.shape)
        return t

    points = {name: model.hook_dict[name] for name in names}
    with torch.no_grad(), model.hooks(fwd_hooks=[(n, grab) for n in names]), batch_rows(0, 1):
        model(tokens[:1].to(_device(model)), stop_at_layer=stop)
    seq = tokens.shape[1]
    out = {}
    for name in names:
        shape = shapes.get(points[name].name)
        if shape is None:
            raise RuntimeError(f"hook {name!r} did not fire during a forward pass; pick another hook")
        dim = position_dim(name)
        if len(shape) <= dim or shape[dim] != seq:
            raise ValueError(f"hook {name!r} has shape {shape} with no position axis of length {seq} at dim {dim};"
                             " activations.cache needs per-position hooks")
        rest = list(shape[1:dim] + shape[dim + 1:])
        if dim == 2:  # attention [n, head, q, k]: rows are queries, keys padded to the full sequence
            rest[-1] = seq
        out[name] = tuple(rest)
    return out


def check_tokens(data: Any) -> None:
    """Refuse token tensors that are not ``[n, seq]`` integer ids with ``n >= 1`` and ``seq >= 1``: one
    ValueError naming the expected shape (other types are left to :func:`tokens_of`'s TypeError)."""
    tokens = data.tokens if hasattr(data, "tokens") else data
    if not isinstance(tokens, torch.Tensor):
        return
    shape = tuple(tokens.shape)
    if tokens.ndim != 2:
        problem = f"got a {tokens.ndim}-D tensor of shape {shape}" + ("; add the batch axis with tokens[None]"
                                                                        if tokens.ndim == 1 else "")
    elif tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        problem = f"got dtype {tokens.dtype}, which is not token ids"
    elif tokens.dtype != torch.long:
        problem = f"got dtype {tokens.dtype}; convert with tokens.long()"
    elif 0 in shape:
        problem = f"got shape {shape}, which holds no tokens" + (" (no examples)" if shape[0] == 0 else
                                                                  " (no positions)")
    else:
        return
    raise ValueError(f"activations.cache needs data = a SearchDataset (task.generate(n)) or a LongTensor of token ids "
                     f"of shape [n, seq] with at least one example and one position; {problem}")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class _Capture:
    """Slices the kept positions out of each activation into preallocated buffers (as hooks or fast-pass output)."""

    def __init__(self, names: list[str], shapes: dict[str, tuple], dtype: torch.dtype, seq: int):
        self.names, self.shapes, self.dtype, self.seq = names, shapes, dtype, seq
        self.mask: torch.Tensor | None = None
        self.out: dict[str, torch.Tensor] = {}
        self.offset = 0

    def write(self, name: str, t: torch.Tensor, mask: torch.Tensor, offset: int) -> None:
        """Store ``t[mask]`` (``t``: [batch, seq, ...], patterns [batch, head, q, k]) at buffer row ``offset``."""
        if position_dim(name) == 2:
            rows = t.transpose(1, 2)[mask]  # [rows, head, k]
            if rows.shape[-1] < self.seq:
                rows = torch.nn.functional.pad(rows, (0, self.seq - rows.shape[-1]))
        else:
            rows = t[mask]
        buf = self.out[name]
        buf[offset:offset + rows.shape[0]] = rows.to(device=buf.device, dtype=self.dtype)

    def hook_for(self, name: str):
        def fn(t: torch.Tensor, hook: Any) -> torch.Tensor:
            self.write(name, t, self.mask, self.offset)
            return t

        return fn


def cache(model: Any, data: Any, hooks: HookSpec = "resid_post", positions: PositionSpec = "all",
          batch_size: int = 256, dtype: torch.dtype = torch.float32, store: str | Path | None = None,
          progress: bool = True, overwrite: bool = False, shard_examples: int | None = None,
          threads: int | None = 1, fast: bool = True, matmul_dtype: torch.dtype | None = None) -> Activations:
    """Cache activations of ``hooks`` at ``positions`` over every example of ``data``.

    Args:
        model: a TransformerBridge (e.g. ``models.pretrained("tree-8")``).
        data: a SearchDataset (labels come along) or a LongTensor ``[n, seq]`` of tokens.
        hooks: hook name(s) or pattern(s), e.g. ``"resid_post"`` (every layer), ``"blocks.1.attn.hook_pattern"``,
            ``["hook_embed", "resid_post"]``; see :func:`toolkit.activations.hook_names`.
        positions: ``"all"`` (non-padding), ``"loss"``, ``"prompt"``, a label name (its mask), a task position
            name (``"query"``), a BoolTensor ``[n, seq]`` or a callable ``data -> mask``.
        batch_size: examples per forward pass.
        dtype: storage dtype (float32, float16, bfloat16).
        store: folder for an on-disk, resumable cache; None keeps everything in memory.
        progress: show a progress bar and print a memory estimate first.
        overwrite: with ``store``, discard an existing store made from a different model / data / hooks.
        shard_examples: examples per disk shard (a multiple of ``batch_size``; default about 64 MiB per shard).
        threads: torch threads while caching (default 1, measured fastest on a shared 2-core machine; None keeps
            torch's setting).
        fast: run plain models through the hook-free pass of :mod:`.fast_forward` (same values as the hooks up to
            float rounding, checked on a few examples first). It is skipped, with the reason in
            ``acts.meta["forward"]``, when the model is hooked (e.g. inside an intervention), is not of the plain
            architecture, or a requested hook is not one it produces. ``False`` always runs the bridge.
        matmul_dtype: ``torch.bfloat16`` runs the fast pass's matrix products in bfloat16 (float32 everywhere
            else): about 3.5x faster products on CPUs with AVX512-BF16 or AMX (much slower on CPUs without them);
            activations are off by 0.3-0.7% RMS on tree-8, single entries by up to ~20% where two attention scores
            nearly tie. None (default) keeps float32. Needs the fast pass.

    Returns:
        :class:`Activations`: ``acts[hook] -> [n_rows, d]``, ``acts.example_index / position / token``,
        ``acts.labels(name)``.
    """
    check_bridge(model, "activations.cache")
    check_tokens(data)
    with torch_threads(threads):
        return _cache(model, data, hooks, positions, batch_size, dtype, store, progress, overwrite, shard_examples,
                      fast, matmul_dtype)


def _cache(model: Any, data: Any, hooks: HookSpec, positions: PositionSpec, batch_size: int, dtype: torch.dtype,
           store: str | Path | None, progress: bool, overwrite: bool, shard_examples: int | None, fast: bool,
           matmul_dtype: torch.dtype | None) -> Activations:
    tokens = tokens_of(data)
    n, seq = tokens.shape
    cfg = model.cfg
    if n == 0:
        raise ValueError("data is empty; generate at least one example")
    if int(tokens.max()) >= cfg.d_vocab or int(tokens.min()) < 0:
        raise ValueError(f"token ids must lie in [0, {cfg.d_vocab}) for this model; cache the model on data from "
                         "the task it was built for")
    if seq > cfg.n_ctx:
        raise ValueError(f"sequences have {seq} positions but the model's n_ctx is {cfg.n_ctx}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    names = resolve(model, hooks)
    mask = position_mask(data, positions)
    stop = stop_layer(names, cfg.n_layers)
    shapes = _row_shapes(model, names, tokens, stop)
    runner, forward = fast_forward.choose(model, names, tokens, fast, matmul_dtype)
    rows_per_ex = mask.sum(1)
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = rows_per_ex.cumsum(0)
    n_rows = int(offsets[-1])
    ex_idx, pos = mask.nonzero(as_tuple=True)
    rows = {"example_index": ex_idx, "position": pos, "token": tokens[ex_idx, pos]}
    item = torch.empty(0, dtype=dtype).element_size()
    width = sum(math.prod(s) for s in shapes.values())
    meta = {"hooks": names, "row_shapes": {h: list(s) for h, s in shapes.items()}, "dtype": str(dtype)[6:],
            "n_rows": n_rows, "n_examples": n, "seq": seq, "n_layers": cfg.n_layers,
            "positions": positions if isinstance(positions, str) else "custom", "stop_at_layer": stop,
            "model": (getattr(model, "searchlight", None) or {}).get("name"), "store": None, "forward": forward,
            "matmul_dtype": str(matmul_dtype or torch.float32)[6:]}
    if progress:
        where = f"on disk at {store}" if store is not None else "in memory"
        print(f"activations.cache: {len(names)} hook(s) x {n_rows:,} rows ({n:,} examples) x {width:,} values = "
              f"{_fmt_bytes(n_rows * width * item)} {meta['dtype']} {where}"
              + (f"; stopping after block {stop - 1}" if stop is not None else "") + f"; forward: {forward}")
    # rows needed per example -> cut each batch after its last kept position
    last = torch.where(mask.any(1), seq - 1 - mask.flip(1).int().argmax(1), torch.zeros(n, dtype=torch.long))
    cap = _Capture(names, shapes, dtype, seq)
    device = _device(model)

    def run_batch(s: int, e: int) -> None:
        length = int(last[s:e].max()) + 1
        cap.mask = mask[s:e, :length].to(device)
        cap.offset = int(offsets[s]) - base
        if runner is not None:
            def emit(name: str, t: torch.Tensor, start: int, first: int) -> None:
                cap.write(name, t, cap.mask[first:first + t.shape[0], start:], int(offsets[s + first]) - base)

            runner(tokens[s:e, :length].to(device), cap.mask, emit)
            return
        with batch_rows(s, e):
            model(tokens[s:e, :length].to(device), stop_at_layer=stop)

    fwd_hooks = [] if runner is not None else [(name, cap.hook_for(name)) for name in names]
    if store is None:
        cap.out = {h: torch.empty(n_rows, *shapes[h], dtype=dtype) for h in names}
        base = 0
        with torch.no_grad(), model.hooks(fwd_hooks=fwd_hooks):
            for s in tqdm(range(0, n, batch_size), desc="caching", unit="batch", disable=not progress):
                run_batch(s, min(n, s + batch_size))
        return Activations(cap.out, rows, data, meta)

    # ---------------------------------------------------------------- on disk, shard by shard
    path = Path(store)
    if shard_examples is None:
        per_ex = max(1, n_rows * width * item // n)
        shard_examples = max(batch_size, (64 * 2**20 // per_ex) // batch_size * batch_size)
    if shard_examples % batch_size:
        raise ValueError(f"shard_examples={shard_examples} must be a multiple of batch_size={batch_size}")
    meta["fingerprint"] = {
        "model": st.model_fingerprint(model),
        "data": st.fingerprint(tokens, mask),
        "config": st.fingerprint(extra=[names, meta["dtype"], batch_size, shard_examples, stop]
                                 + ([meta["matmul_dtype"]] if matmul_dtype not in (None, torch.float32) else [])),
    }
    shards = [{"file": st.shard_name(k), "examples": [a, min(n, a + shard_examples)],
               "rows": [int(offsets[a]), int(offsets[min(n, a + shard_examples)])]}
              for k, a in enumerate(range(0, n, shard_examples))]
    old = st.read_manifest(path) if path.exists() else None
    if old is not None and old.get("fingerprint") != meta["fingerprint"]:
        if not overwrite:
            raise ValueError(f"the store at {path} was made from a different model, data, hooks or batching "
                             f"({old.get('fingerprint')} vs {meta['fingerprint']}); pass overwrite=True to replace "
                             "it or choose another store= folder")
        shutil.rmtree(path)
        old = None
    elif old is None and path.exists() and any(path.iterdir()):
        raise ValueError(f"store folder {path} exists and is not an activation store; choose an empty or new folder")
    path.mkdir(parents=True, exist_ok=True)
    for tmp in path.glob("*.safetensors.*.tmp"):  # left behind by a run that was killed mid-write
        tmp.unlink(missing_ok=True)
    manifest = {"format": st.FORMAT, **meta, "store": str(path), "shard_examples": shard_examples,
                "shards": shards, "complete": False}
    if not (path / st.ROWS).exists():
        st.atomic_save(rows, path / st.ROWS)
    st.atomic_write_json(manifest, path / st.MANIFEST)
    todo = [k for k, sh in enumerate(shards) if not st.shard_ok(path / sh["file"], names)]
    if progress and len(todo) < len(shards):
        print(f"activations.cache: resuming, {len(shards) - len(todo)}/{len(shards)} shards already on disk")
    bar = tqdm(total=sum(shards[k]["examples"][1] - shards[k]["examples"][0] for k in todo), desc="caching",
               unit="ex", disable=not progress)
    with torch.no_grad(), model.hooks(fwd_hooks=fwd_hooks):
        for k in todo:
            a, b = shards[k]["examples"]
            r0, r1 = shards[k]["rows"]
            cap.out = {h: torch.empty(r1 - r0, *shapes[h], dtype=dtype) for h in names}
            base = r0
            for s in range(a, b, batch_size):
                run_batch(s, min(b, s + batch_size))
                bar.update(min(b, s + batch_size) - s)
            st.atomic_save(cap.out, path / shards[k]["file"])
    bar.close()
    manifest["complete"] = True
    st.atomic_write_json(manifest, path / st.MANIFEST)
    return load(path, data)


def load(path: str | Path, data: Any = None) -> Activations:
    """Open an on-disk store lazily. Pass the same ``data`` it was cached from to get labels."""
    reader = st.ShardReader(path)
    m = reader.manifest
    rows = reader.rows()
    if data is not None:
        tokens = tokens_of(data)
        if tuple(tokens.shape)[0] != m["n_examples"] or not torch.equal(
                tokens[rows["example_index"], rows["position"]], rows["token"]):
            raise ValueError(f"data does not match the store at {path} (different tokens); pass the dataset it was "
                             "cached from")
    meta = {k: m[k] for k in ("hooks", "row_shapes", "dtype", "n_rows", "n_examples", "seq", "n_layers",
                              "positions", "stop_at_layer", "model", "store")}
    meta.update(forward=m.get("forward"), matmul_dtype=m.get("matmul_dtype", "float32"))
    return Activations(None, rows, data, meta, reader=reader)
