"""SAE training throughput: toolkit.unsupervised.SparseAutoencoder vs a minimal hand-written loop.

    .venv/bin/python benchmarks/sae_throughput.py [--steps 200] [--repeats 3] [--sizes 64x256,128x1024]

For each size (d_in x d_sae) it prints samples/s of (a) a minimal autograd + Adam ReLU-SAE loop with
no decoder constraint, no dead-latent tracking and no shuffling, measured in the same run, and (b) our
``fit`` (unit-norm decoder, parallel-gradient removal, dead-latent bookkeeping, shuffled batches) on
one thread and on two, with ``ratio=`` lines (ours / minimal, two threads / one thread). Medians of
``--repeats`` interleaved runs (ratios are medians of per-repeat ratios); the machine may be shared, so
compare ratios, not absolute numbers.
Targets (one core): >= 100k samples/s at 64x256, >= 30k samples/s at 128x1024.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from toolkit.unsupervised import SparseAutoencoder

TARGETS = {(64, 256): 100_000, (128, 1024): 30_000}


def minimal_loop(X: torch.Tensor, d_sae: int, steps: int, batch: int) -> float:
    """samples/s of the simplest correct ReLU-SAE training loop (autograd + Adam)."""
    d = X.shape[1]
    g = torch.Generator().manual_seed(0)
    W_enc = torch.nn.Parameter(torch.randn(d, d_sae, generator=g) / d ** 0.5)
    W_dec = torch.nn.Parameter(torch.randn(d_sae, d, generator=g) / d ** 0.5)
    b_enc, b_dec = torch.nn.Parameter(torch.zeros(d_sae)), torch.nn.Parameter(torch.zeros(d))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-3)
    n_batches = X.shape[0] // batch

    def step(i: int) -> None:
        x = X[(i % n_batches) * batch:(i % n_batches + 1) * batch]
        f = torch.relu((x - b_dec) @ W_enc + b_enc)
        loss = ((f @ W_dec + b_dec) - x).pow(2).sum(-1).mean() + 1e-3 * f.sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(5):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * batch / (time.perf_counter() - t)


def ours(X: torch.Tensor, d_sae: int, steps: int, batch: int, threads: int) -> float:
    sae = SparseAutoencoder(d_sae=d_sae, n_samples=steps * batch, batch_size=batch, l1_coefficient=1e-3,
                            progress=False, threads=threads, seed=0)
    sae.fit(X)
    return sae.n_samples_seen_ / sae.fit_time_s_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--sizes", default="64x256,128x1024,256x1024")
    args = ap.parse_args()
    before = torch.get_num_threads()
    print(f"torch {torch.__version__}, {before} threads available, batch {args.batch}, {args.steps} steps, "
          f"median of {args.repeats}")
    for size in args.sizes.split(","):
        d, m = (int(v) for v in size.split("x"))
        X = torch.randn(16 * args.batch, d, generator=torch.Generator().manual_seed(0))
        runs = []
        for _ in range(args.repeats):  # interleaved, so that each ratio compares runs under the same load
            torch.set_num_threads(1)
            b = minimal_loop(X, m, args.steps, args.batch)
            torch.set_num_threads(before)
            runs.append((b, ours(X, m, args.steps, args.batch, 1), ours(X, m, args.steps, args.batch, 2)))
        base, one, two = (statistics.median(r[i] for r in runs) for i in range(3))
        r_min = statistics.median(r[1] / r[0] for r in runs)
        r_thr = statistics.median(r[2] / r[1] for r in runs)
        target = TARGETS.get((d, m))
        verdict = "" if target is None else f"  target>={target / 1e3:.0f}k/s: {'PASS' if one >= target else 'FAIL'}"
        print(f"{size:>9}: minimal(1 thread) {base / 1e3:7.1f}k/s  ours(1 thread) {one / 1e3:7.1f}k/s  "
              f"ours(2 threads) {two / 1e3:7.1f}k/s{verdict}")
        print(f"{size:>9}: ratio={r_min:.2f} (ours/minimal, 1 thread)  ratio={r_thr:.2f} (2 threads / 1 thread)  "
              "[medians of per-repeat ratios]")


if __name__ == "__main__":
    main()
