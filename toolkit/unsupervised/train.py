"""The SAE training loop: data sources, hand-written gradients, decoder constraint, dead latents.

Used by :class:`toolkit.unsupervised.SparseAutoencoder`; readable on its own. Shapes: ``x [b, d_in]``,
``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]`` (unit rows), ``b_dec [d_in]``.

Gradients are written out by hand rather than taken from autograd: the SAE is two matrix products,
and writing the backward pass saves one full matrix product per step (the gradient through
``x - b_dec`` reduces to a vector-matrix product) plus autograd's bookkeeping - about 1.3-1.8x
faster on one CPU core (``benchmarks/sae_throughput.py``). ``tests/test_unsupervised_sae.py`` checks
them against autograd.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

# SAEs with d_in * d_sae at or below this train faster on one thread than on two (measured on a shared
# 2-core machine; see benchmarks/sae_throughput.py); threads="auto" uses 1 thread for them.
SMALL_SAE_WEIGHTS = 1 << 19


def auto_threads(n: int | str | None, d_in: int, d_sae: int, device: torch.device) -> int | None:
    """Resolve an SAE's ``threads``: ``"auto"`` -> 1 for small CPU SAEs, else None (leave torch's setting)."""
    if n == "auto":
        return 1 if (device.type == "cpu" and d_in * d_sae <= SMALL_SAE_WEIGHTS) else None
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be 'auto', None or a positive int, got {n!r}")
    return n




def generator(seed: int, salt: str) -> torch.Generator:
    """A torch Generator seeded from ``(seed, salt)``: different components given the same user seed
    (toy-data directions, SAE initialisation, random controls) must not draw identical numbers."""
    return torch.Generator().manual_seed((zlib.crc32(salt.encode()) * 1_000_003 + int(seed)) % (2 ** 63))


def as_2d_float(x: Any, what: str = "X") -> torch.Tensor:
    """Tensor / ndarray ``[n, d]`` -> float32 tensor; clear errors for anything else."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy array of shape [n_rows, d_in], "
                        f"got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-D [n_rows, d_in], got shape {tuple(x.shape)}; flatten "
                         f"positions first, e.g. X.reshape(-1, X.shape[-1]) or X[mask]")
    if not x.is_floating_point():
        x = x.float()
    return x.float() if x.dtype != torch.float32 else x


def batch_stream(source: Any, batch_size: int, generator: torch.Generator,
                 device: torch.device) -> Iterator[torch.Tensor]:
    """Yield ``[batch_size, d_in]`` float32 batches forever (or until an iterator runs dry).

    ``source`` is a tensor / ndarray ``[n, d_in]`` (shuffled epochs), a callable
    ``source(batch_size) -> [rows, d_in]`` (called again for every batch), or an iterable of
    ``[rows, d_in]`` chunks (re-cut to ``batch_size`` rows).
    """
    if isinstance(source, torch.Tensor | np.ndarray):
        data = as_2d_float(source)
        if data.shape[0] == 0:
            raise ValueError("X has no rows")
        chunk = batch_size * max(1, 64 * 1024 // batch_size)  # gather ~64k rows at once: fewer, larger ops
        while True:
            perm = torch.randperm(data.shape[0], generator=generator)
            usable = data.shape[0] - data.shape[0] % batch_size
            for c in range(0, usable, chunk):
                block = data.index_select(0, perm[c:min(c + chunk, usable)]).to(device, non_blocking=True)
                yield from block.split(batch_size)
            if data.shape[0] < batch_size:  # tiny data: sample with replacement
                idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
                yield data[idx].to(device)
        return
    if callable(source):
        chunks: Iterable[Any] = (source(batch_size) for _ in iter(int, 1))
    elif isinstance(source, Iterable):
        chunks = source
    else:
        raise TypeError("fit() takes a tensor/ndarray [n_rows, d_in], a callable source(batch_size) -> "
                        f"[rows, d_in], or an iterable of [rows, d_in] batches; got {type(source).__name__}")
    buf: list[torch.Tensor] = []
    have = 0
    for chunk in chunks:
        chunk = as_2d_float(chunk, "a batch from the activation source")
        buf.append(chunk)
        have += chunk.shape[0]
        while have >= batch_size:
            cat = torch.cat(buf) if len(buf) > 1 else buf[0]
            yield cat[:batch_size].to(device)
            rest = cat[batch_size:]
            buf, have = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)


class SAEState:
    """Parameters, optimiser and dead-latent bookkeeping of one training run."""

    def __init__(self, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor,
                 lr: float, betas: tuple[float, float], freeze_decoder: bool):
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = W_enc, b_enc, W_dec, b_dec
        self.freeze_decoder = freeze_decoder
        params = [W_enc, b_enc, b_dec] + ([] if freeze_decoder else [W_dec])
        for p in params:
            p.requires_grad_(True)
            p.grad = torch.zeros_like(p)
        try:  # the fused kernel is ~10-20% faster per step on CPU; not every device/dtype has it
            self.opt = torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except RuntimeError:
            self.opt = torch.optim.Adam(params, lr=lr, betas=betas)
        d_sae = W_enc.shape[1]
        self.since_fired = torch.zeros(d_sae, dtype=torch.long, device=W_enc.device)  # samples since fired
        self.fire_count = torch.zeros(d_sae, device=W_enc.device)  # fires in the current window
        self.window_samples = 0

    def reset_adam_rows(self, idx: torch.Tensor) -> None:
        """Zero Adam's moments for resampled latents (columns of W_enc, rows of W_dec, entries of b_enc)."""
        for p, sl in ((self.W_enc, (slice(None), idx)), (self.b_enc, (idx,)), (self.W_dec, (idx,))):
            st = self.opt.state.get(p)
            if st:
                st["exp_avg"][sl] = 0
                st["exp_avg_sq"][sl] = 0


@torch.no_grad()
def encode_pre(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor,
               apply_b_dec: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_centred [b, d_in], pre-activations [b, d_sae])``."""
    xc = x - b_dec if apply_b_dec else x
    return xc, torch.addmm(b_enc, xc, W_enc)


@torch.no_grad()
def activate(pre: torch.Tensor, architecture: str, k: int | None) -> torch.Tensor:
    """ReLU, or TopK (keep the k largest pre-activations per row, then ReLU). Returns ``[b, d_sae]``."""
    if architecture == "relu":
        return torch.relu(pre)
    vals, idx = pre.topk(k, dim=1)
    return torch.zeros_like(pre).scatter_(1, idx, vals.clamp_(min=0))


@torch.no_grad()
def train_step(st: SAEState, x: torch.Tensor, architecture: str, k: int | None, l1: float,
               apply_b_dec: bool, dead: torch.Tensor | None, aux_k: int, aux_coefficient: float,
               want_stats: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """One optimiser step on ``x [b, d_in]``; returns how often each latent fired ``[d_sae]`` and stats.

    Loss: ``mean_b ||x_hat - x||^2 + l1 * mean_b sum_j f_j`` (ReLU; decoder rows have unit norm, so
    this is SAELens's decoder-norm-weighted L1), or ``mean_b ||x_hat - x||^2 + aux`` (TopK), where the
    auxiliary loss (Gao et al. 2024) makes the ``aux_k`` largest *dead* latents reconstruct the residual.
    """
    W_enc, b_enc, W_dec, b_dec = st.W_enc, st.b_enc, st.W_dec, st.b_dec
    b = x.shape[0]
    xc, pre = encode_pre(x, W_enc, b_enc, b_dec, apply_b_dec)
    f = activate(pre, architecture, k)
    counts = torch.count_nonzero(f, dim=0)
    e = torch.addmm(b_dec, f, W_dec).sub_(x)  # x_hat - x
    stats: dict[str, float] = {}
    if want_stats:
        mse = e.pow(2).sum(1).mean()
        stats = {"mse": float(mse), "l1": float(f.sum(1).mean()), "l0": float(counts.sum() / b),
                 "explained_variance": float(1 - e.pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12))}
    g = e.mul_(2.0 / b)  # d loss / d x_hat
    gW_dec = f.T @ g if not st.freeze_decoder else None
    gb_dec = g.sum(0)
    df = g @ W_dec.T
    if architecture == "relu" and l1 > 0:
        df.add_(l1 / b)
    df = torch.ops.aten.threshold_backward(df, f, 0.0)  # zero where the latent did not fire
    if architecture == "topk" and dead is not None and aux_coefficient > 0:
        n_dead = int(dead.sum())
        if n_dead > 0:
            ka = min(aux_k, n_dead)
            vals, idx = pre.masked_fill(~dead, float("-inf")).topk(ka, dim=1)
            fa = torch.zeros_like(pre).scatter_(1, idx, vals.clamp_(min=0))
            scale = aux_coefficient * min(n_dead / aux_k, 1.0)
            ga = (fa @ W_dec).add_(g, alpha=b / 2.0)  # e_hat - residual, where residual = x - x_hat
            if want_stats:
                stats["aux_loss"] = float(ga.pow(2).sum(1).mean() * scale)
            ga.mul_(2.0 * scale / b)
            if gW_dec is not None:
                gW_dec.addmm_(fa.T, ga)
            df.add_(torch.ops.aten.threshold_backward(ga @ W_dec.T, fa, 0.0))
    gb_enc = df.sum(0)
    W_enc.grad = xc.T @ df
    b_enc.grad = gb_enc
    b_dec.grad = gb_dec - W_enc @ gb_enc if apply_b_dec else gb_dec
    if gW_dec is not None:  # remove the gradient component parallel to each unit-norm decoder row
        gW_dec.sub_((gW_dec * W_dec).sum(1, keepdim=True) * W_dec)
        W_dec.grad = gW_dec
    st.opt.step()
    if not st.freeze_decoder:
        W_dec.div_(W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return counts, stats


@torch.no_grad()
def resample_dead(st: SAEState, dead_idx: torch.Tensor, x: torch.Tensor, architecture: str, k: int | None,
                  apply_b_dec: bool, generator: torch.Generator) -> int:
    """Anthropic-style resampling: point dead latents at the residuals of high-loss inputs.

    Inputs are drawn with probability proportional to their squared reconstruction loss; each dead
    latent's decoder row becomes that input's unit residual, its encoder column the same direction scaled
    to 0.2x the mean alive encoder norm, its bias 0, and its Adam moments are reset.
    """
    n = int(dead_idx.numel())
    if n == 0:
        return 0
    xc, pre = encode_pre(x, st.W_enc, st.b_enc, st.b_dec, apply_b_dec)
    resid = x - torch.addmm(st.b_dec, activate(pre, architecture, k), st.W_dec)
    loss = resid.pow(2).sum(1)
    probs = loss.pow(2)
    if float(probs.sum()) <= 0:
        return 0
    rows = torch.multinomial(probs.cpu(), n, replacement=n > x.shape[0], generator=generator).to(x.device)
    dirs = resid[rows]
    dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(1e-12)
    alive = torch.ones(st.W_enc.shape[1], dtype=torch.bool, device=x.device)
    alive[dead_idx] = False
    enc_norm = st.W_enc[:, alive].norm(dim=0).mean() if bool(alive.any()) else torch.tensor(1.0)
    if not st.freeze_decoder:
        st.W_dec[dead_idx] = dirs
    st.W_enc[:, dead_idx] = dirs.T * (0.2 * enc_norm)
    st.b_enc[dead_idx] = 0.0
    st.reset_adam_rows(dead_idx)
    st.since_fired[dead_idx] = 0
    return n


def lr_factor(step: int, n_steps: int, warmup: float, decay: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of steps, linear decay to 0 over the last ``decay``."""
    w, dcy = int(warmup * n_steps), int(decay * n_steps)
    if w and step < w:
        return (step + 1) / w
    if dcy and step >= n_steps - dcy:
        return max(n_steps - step, 1) / dcy
    return 1.0


def first_rows(stream: Iterator[torch.Tensor], n_min: int) -> list[torch.Tensor]:
    """Pull batches until at least ``n_min`` rows have been seen (used to initialise b_dec / scaling)."""
    out: list[torch.Tensor] = []
    have = 0
    for batch in stream:
        out.append(batch)
        have += batch.shape[0]
        if have >= n_min:
            break
    return out


Callback = Callable[[dict[str, float]], None]
