"""Generation speed of the search tasks (tokens + all labels + structures).

    .venv/bin/python benchmarks/bench_tasks.py [--repeats 5] [--n 20000]

For each task prints the median over repeats of examples/s, then two ratio lines:

* ``ratio=`` examples/s divided by the target (trees 20k/s, mazes 5k/s on one core; >= 1 passes);
* ``ratio_vs_loop=`` batched generation against generating the same number of examples one at a time
  (``generate(1)`` in a Python loop, measured in the same run on fewer examples), i.e. what vectorising buys.

The machine may be shared: medians are quoted, and both ratios come from the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from toolkit import tasks

TARGETS = {"tree-8": 20_000.0, "maze-4x4": 5_000.0, "graph-10": None}


def examples_per_s(task, n: int, repeats: int, one_at_a_time: bool = False) -> float:
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        if one_at_a_time:
            for i in range(n):
                task.generate(1, seed=r * n + i)
        else:
            task.generate(n, seed=r)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=20_000, help="examples per batched call")
    parser.add_argument("--loop-n", type=int, default=300, help="examples for the one-at-a-time baseline")
    args = parser.parse_args()
    for task in (tasks.TreeSearch(), tasks.MazeSearch(), tasks.GraphSearch()):
        task.generate(16)  # warm-up (imports, allocator)
        batched = examples_per_s(task, args.n, args.repeats)
        looped = examples_per_s(task, args.loop_n, args.repeats, one_at_a_time=True)
        target = TARGETS.get(task.name)
        print(f"{task.name:<9} n={args.n} batched {batched:,.0f} examples/s   one-at-a-time {looped:,.0f} examples/s")
        if target is not None:
            print(f"  ratio={batched / target:.2f}  (target {target:,.0f} examples/s; >= 1 passes)")
        print(f"  ratio_vs_loop={batched / looped:.1f}")


if __name__ == "__main__":
    main()
