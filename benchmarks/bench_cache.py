"""Benchmark: activations.cache vs the naive loop, and vs a bare forward pass.

Workload: resid_post of every layer at the loss positions of 20k tree-8 examples (the shipped model).
Each method runs in its own fresh interpreter (so peak RSS is its own), same batch size, one torch thread unless
said otherwise:

* ``bare``      ``model(tokens)`` per batch under ``torch.no_grad`` (nothing kept): the floor
* ``naive``     ``model.run_with_cache(tokens)`` per batch (every hook, gradients on, as most notebooks do), then
                slice ``cache[f"blocks.{l}.hook_resid_post"][loss_mask]`` and concatenate at the end
* ``naive_default``  the same with torch's default thread count (what that notebook gets without a
                thread setting; on a busy 2-core machine the thread pool is much slower than one thread)
* ``naive_nograd``  the naive loop inside ``torch.no_grad()``
* ``toolkit``   ``activations.cache(model, data, hooks="resid_post", positions="loss")`` - its defaults: the
                hook-free float32 fast pass (:mod:`toolkit.activations.fast_forward`), 1 thread
* ``toolkit_bridge``  the same with ``fast=False``: hooks on the bridge slice rows as they are produced
* ``toolkit_bf16``  opt-in ``matmul_dtype=torch.bfloat16`` (matrix products in bfloat16, the rest float32)

Peak RSS is sampled every 2 ms during the measured phase (after imports, model and data are ready); both the
absolute peak and the increase over the pre-phase RSS are reported. Prints ``ratio=`` lines (medians of
``--repeats`` runs) measured in this run.

    .venv/bin/python benchmarks/bench_cache.py [--n 20000] [--batch-size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("bare", "naive_default", "naive", "naive_nograd", "toolkit", "toolkit_bridge", "toolkit_bf16")


def child(method: str, n: int, batch_size: int) -> None:
    import warnings

    import psutil
    import torch

    sys.path.insert(0, str(ROOT))
    from toolkit import activations, models

    warnings.simplefilter("ignore")
    if method != "naive_default":
        torch.set_num_threads(1)
    model = models.pretrained("tree-8")
    task = models.task_of(model)
    data = task.generate(n, seed=2024, split="test")
    tokens, loss = data.tokens, data.loss_mask
    activations.hook_names(model)  # memoised one-off (part of set-up, as for every method)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    if method == "bare":
        with torch.no_grad():
            for s in range(0, n, batch_size):
                model(tokens[s:s + batch_size])
        out = None
    elif method in ("naive", "naive_default", "naive_nograd"):
        ctx = torch.no_grad() if method == "naive_nograd" else torch.enable_grad()
        parts: dict[int, list] = {l: [] for l in range(model.cfg.n_layers)}
        with ctx:
            for s in range(0, n, batch_size):
                _, cache = model.run_with_cache(tokens[s:s + batch_size])
                m = loss[s:s + batch_size]
                for l in parts:
                    parts[l].append(cache[f"blocks.{l}.hook_resid_post"][m].detach())
                del cache
        out = {l: torch.cat(p) for l, p in parts.items()}
    else:
        opts = {"toolkit": {}, "toolkit_bridge": {"fast": False}, "toolkit_bf16": {"matmul_dtype": torch.bfloat16}}
        acts = activations.cache(model, data, hooks="resid_post", positions="loss", batch_size=batch_size,
                                 progress=False, **opts[method])
        out = {l: acts[f"blocks.{l}.hook_resid_post"] for l in range(model.cfg.n_layers)}
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    checksum = None if out is None else [float(out[l].double().sum()) for l in sorted(out)]
    rows = None if out is None else int(out[0].shape[0])
    print(json.dumps({"method": method, "wall_s": wall, "peak_mib": peak[0] / 2**20,
                      "delta_mib": (peak[0] - base) / 2**20, "base_mib": base / 2**20, "rows": rows,
                      "checksum": checksum}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=METHODS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.n, args.batch_size)
        return
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for r in range(args.repeats):
        for m in METHODS:  # interleaved, so load on the shared machine hits every method alike
            res = subprocess.run([sys.executable, __file__, "--child", m, "--n", str(args.n), "--batch-size",
                                  str(args.batch_size)], capture_output=True, text=True, check=True)
            runs[m].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"  repeat {r + 1} {m:13s} {runs[m][-1]['wall_s']:7.2f} s  peak {runs[m][-1]['peak_mib']:7.1f} MiB "
                  f"(+{runs[m][-1]['delta_mib']:.1f})", flush=True)
    med = {m: {k: statistics.median(x[k] for x in runs[m]) for k in ("wall_s", "peak_mib", "delta_mib")}
           for m in METHODS}
    a = runs["naive"][0]["checksum"]
    same = {m: all(abs(x - y) <= 1e-3 * max(1.0, abs(x)) for x, y in zip(a, runs[m][0]["checksum"]))
            for m in ("toolkit", "toolkit_bridge", "toolkit_bf16")}
    print(f"workload: resid_post x {len(a)} layers at the loss positions of {args.n} tree-8 examples "
          f"({runs['toolkit'][0]['rows']} rows), batch {args.batch_size}, {args.repeats} repeats; "
          f"same sums as naive (1e-3): {same}")
    for m in METHODS:
        print(f"{m:13s} median {med[m]['wall_s']:7.2f} s   peak RSS {med[m]['peak_mib']:7.1f} MiB   "
              f"increase during the run {med[m]['delta_mib']:7.1f} MiB")
    t, nv = med["toolkit"], med["naive"]
    print(f"ratio=speedup_vs_naive {nv['wall_s'] / t['wall_s']:.2f} (target >= 3; both on one thread)")
    print(f"ratio=speedup_vs_naive_default_threads {med['naive_default']['wall_s'] / t['wall_s']:.2f}")
    print(f"ratio=speedup_vs_naive_nograd {med['naive_nograd']['wall_s'] / t['wall_s']:.2f}")
    print(f"ratio=speedup_bridge_path_vs_naive {nv['wall_s'] / med['toolkit_bridge']['wall_s']:.2f} (fast=False)")
    print(f"ratio=speedup_bf16_vs_naive {nv['wall_s'] / med['toolkit_bf16']['wall_s']:.2f} "
          "(opt-in matmul_dtype=torch.bfloat16; not the default)")
    print(f"ratio=peak_rss_vs_naive {t['peak_mib'] / nv['peak_mib']:.3f} (target <= 0.25)")
    print(f"ratio=rss_increase_vs_naive {t['delta_mib'] / max(nv['delta_mib'], 1e-9):.3f} (target <= 0.25)")
    print(f"ratio=overhead_vs_bare_forward {t['wall_s'] / med['bare']['wall_s']:.3f} (target <= 1.15; "
          "medians of separate processes)")
    overhead_in_process(args.n, args.batch_size, args.repeats)


def overhead_in_process(n: int, batch_size: int, repeats: int) -> None:
    """Bare forward vs cache alternated in one process (less exposed to load drifting between processes)."""
    import warnings

    import torch

    sys.path.insert(0, str(ROOT))
    from toolkit import activations, models

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    model = models.pretrained("tree-8")
    data = models.task_of(model).generate(n, seed=2024, split="test")
    activations.hook_names(model)

    def bare() -> None:
        with torch.no_grad():
            for s in range(0, n, batch_size):
                model(data.tokens[s:s + batch_size])

    def toolkit() -> None:
        activations.cache(model, data, hooks="resid_post", positions="loss", batch_size=batch_size, progress=False)

    times: dict[str, list[float]] = {"bare": [], "toolkit": []}
    for _ in range(repeats):
        for name, fn in (("bare", bare), ("toolkit", toolkit)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    b, t = statistics.median(times["bare"]), statistics.median(times["toolkit"])
    print(f"in one process, alternated: bare {[round(x, 2) for x in times['bare']]} s, toolkit "
          f"{[round(x, 2) for x in times['toolkit']]} s")
    print(f"ratio=overhead_vs_bare_forward_in_process {t / b:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
