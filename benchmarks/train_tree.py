"""Benchmark: train tree-8 from scratch to >= 99% exact paths on this CPU, and two per-step comparisons.

    python benchmarks/train_tree.py                 # full run (target: <= 3 minutes on 2 cores)
    python benchmarks/train_tree.py --quick         # smoke test: tiny step counts

Prints
  * ratio= bridge step time / bare-module step time (the bridge's hook machinery, same weights and batch);
  * ratio= training step with fresh data / with pooled data (``task.generate(128)`` every step vs indexing a
    pre-generated pool whose generation is amortised over the run);
  * wall time and steps to reach the target on a 1000-example evaluation set, then the greedy exact accuracy
    on 2000 fresh held-out examples.
Timings on a shared machine are noisy: medians of interleaved rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from toolkit import models, tasks  # noqa: E402
from toolkit.models.evaluate import num_threads, target_loss  # noqa: E402


def step_time(net, params, opt, tokens, mask) -> float:
    t = time.perf_counter()
    loss = target_loss(net(tokens), tokens, mask)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return time.perf_counter() - t


def bridge_overhead(task, rounds: int, steps: int) -> float:
    model = models.build(task)
    bare = models.fast_module(model)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    data = task.generate(128, seed=0)
    times: dict[str, list[float]] = {"bridge": [], "bare": []}
    model.train()
    bare.train()
    for _ in range(rounds):  # interleaved, so both see the same machine load
        for name, net in (("bridge", model), ("bare", bare)):
            times[name] += [step_time(net, params, opt, data.tokens, data.loss_mask) for _ in range(steps)]
    b, n = statistics.median(times["bridge"]), statistics.median(times["bare"])
    print(f"per training step (batch 128, median of {rounds * steps}): bridge {b * 1e3:.1f} ms, "
          f"bare module {n * 1e3:.1f} ms")
    print(f"ratio={b / n:.3f}  (bridge / bare module per step)")
    return n


def data_cost(task, rounds: int, steps: int, pool_size: int, run_steps: int, step_s: float) -> None:
    t = time.perf_counter()
    task.generate(pool_size, seed=1)
    pool_s = time.perf_counter() - t
    fresh = []
    for r in range(rounds * steps):
        t = time.perf_counter()
        task.generate(128, seed=1000 + r)
        fresh.append(time.perf_counter() - t)
    gen, idx = statistics.median(fresh), []
    pool = torch.zeros(pool_size, task.seq_len, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    for _ in range(rounds * steps):
        t = time.perf_counter()
        pool[torch.randint(pool_size, (128,), generator=g)]
        idx.append(time.perf_counter() - t)
    pooled = statistics.median(idx) + pool_s / run_steps
    print(f"data per step: fresh generate(128) {gen * 1e3:.2f} ms; pool of {pool_size} built in {pool_s:.2f} s "
          f"-> {pooled * 1e3:.2f} ms/step amortised over {run_steps} steps")
    print(f"ratio={(step_s + gen) / (step_s + pooled):.3f}  (training step with fresh data / with the pool, "
          f"bare-module step {step_s * 1e3:.1f} ms)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 measured fastest under load)")
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--steps", type=int, default=3000, help="schedule length (training stops at the target)")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny step counts, no target")
    args = p.parse_args()
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    print(f"torch {torch.__version__}, threads={args.threads}, {task!r}")
    rounds, steps = (2, 3) if args.quick else (5, 10)
    with num_threads(args.threads):
        bare_step = bridge_overhead(task, rounds, steps)
        data_cost(task, rounds, steps, 2000 if args.quick else 100_000, args.steps, bare_step)
    config = models.TrainConfig(steps=20 if args.quick else args.steps, eval_every=10 if args.quick else 100,
                                eval_size=200 if args.quick else 1000, pool_size=2000 if args.quick else 100_000,
                                target_accuracy=None if args.quick else args.target, threads=args.threads)
    model = models.build(task)
    t = time.perf_counter()
    hist = models.train(model, task, config, progress=False)
    wall = time.perf_counter() - t
    final = hist.final or {}
    print(f"trained tree-8 to exact {final.get('exact', float('nan')):.1%} (1000-example eval) in "
          f"{hist.steps_done} steps, wall {wall:.1f} s ({wall / max(1, hist.steps_done) * 1e3:.0f} ms/step incl. "
          f"evaluations and data){' — target reached' if hist.stopped_early else ''}")
    held = models.evaluate(model, task.generate(200 if args.quick else 2000, seed=2024, split="test"),
                           threads=args.threads)
    print(f"held-out greedy exact {held.exact:.2%} on {held.n} fresh examples")
    print(f"target_met={int(hist.stopped_early or (final.get('exact', 0) >= args.target))} wall_s={wall:.1f} "
          f"steps={hist.steps_done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
