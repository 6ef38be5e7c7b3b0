"""Explorer responsiveness: value change -> finished redraw, headless, for the shipped model sizes.

    .venv/bin/python benchmarks/bench_widgets.py [--changes 15] [--only FeatureBrowser]

For every explorer and kind of control change, sets the control from code (as a click would through the
kernel) and times until every view has been redrawn (PNG bytes / HTML set on the widgets); the median over
``--changes`` changes is printed with two ratios:

* ``ratio=`` median / 150 ms (the target; <= 1 passes);
* ``ratio_vs_figure=`` median / the median time to draw one small matplotlib figure to PNG, drawn right before
  each timed change (interleaved, so both see the same machine load): a cost in "figures" that stays comparable
  between runs on a shared machine whose load drifts during a run.

Every change is drawn from scratch (the explorers' PNG cache is off), except the ``revisit`` lines, which step
through values already shown once (what stepping back and forth through layers or latents costs).

Models are ``models.pretrained("tree-8")`` / ``("maze-4x4")`` when shipped, otherwise freshly built ones of the
same architecture (redraw cost depends on the architecture, not on the weights); the output says which.
Browser-side rendering and comm latency are not included (see tests/browser for the end-to-end check).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

TARGET_MS = 150.0


def figure_ms() -> float:
    """Milliseconds to build one small figure and encode it to PNG (the baseline unit)."""
    from toolkit import viz

    t0 = time.perf_counter()
    fig = viz.new_figure(3, 2, layout=None)
    ax = fig.add_subplot()
    ax.plot(range(10))
    ax.set_title("baseline")
    viz.to_png(fig, dpi=80)
    return (time.perf_counter() - t0) * 1000


def figure_baseline_ms(repeats: int) -> float:
    return statistics.median(figure_ms() for _ in range(repeats))


def model_for(task: Any, name: str) -> tuple[Any, str]:
    from toolkit import models

    if name in models.available():
        return models.pretrained(name), f"pretrained {name!r}"
    return models.build(task), f"built {task.name} (no shipped {name!r} checkpoint; same architecture)"


def measure(explorer: Any, changes: list[Callable[[], None]], n: int, cached: bool = False) -> tuple[float, float]:
    """``(median ms per change, median ms of the baseline figure drawn before each change)``.
    ``cached=False`` disables the explorer's PNG cache (every redraw is drawn); ``cached=True`` runs through the
    changes once first, so the timed ones revisit cached pictures."""
    explorer.cache_size = 64 if cached else 0
    explorer._cache.clear()
    cycle = itertools.cycle(changes)
    for _ in range(len(changes) if cached else min(3, len(changes))):  # warm-up (fills the cache if on)
        explorer.time_update(next(cycle))
    times, base = [], []
    for _ in range(n):
        base.append(figure_ms())
        times.append(explorer.time_update(next(cycle)))
    return statistics.median(times), statistics.median(base)


def setter(widget: Any, value: Any) -> Callable[[], None]:
    return lambda: setattr(widget, "value", value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=15, help="timed changes per control kind")
    parser.add_argument("--only", default="", help="only explorers whose name contains this (e.g. Feature)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from toolkit import activations, probes, tasks, unsupervised, widgets

    tree = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = tree.generate(256, seed=0, split="test")
    model, which = model_for(tree, "tree-8")
    print(f"tree model: {which}")
    acts = activations.cache(model, data, hooks=["blocks.0.hook_resid_pre", "resid_post"], positions="all",
                             progress=False)
    sweep = probes.sweep(acts, labels=["parent", "ancestor_1", "on_path", "depth"], n_boot=0, progress=False)
    maze = tasks.MazeSearch(size=4)
    maze_data = maze.generate(8, seed=0, split="test")
    maze_model, which = model_for(maze, "maze-4x4")
    print(f"maze model: {which}")
    hook = "blocks.1.hook_resid_post"
    sae = unsupervised.SparseAutoencoder(d_sae=256, n_samples=50_000, batch_size=512, progress=False, hook_name=hook)
    sae.fit(acts[hook])

    base = figure_baseline_ms(max(15, args.changes))
    print(f"baseline: one small figure to PNG, median {base:.1f} ms (at the start; every line below has its own, "
          "measured interleaved with its changes)")
    results: list[tuple[str, float, float]] = []

    def run(name: str, explorer: Any, changes: list[Callable[[], None]], cached: bool = False) -> None:
        ms, fig_ms = measure(explorer, changes, args.changes, cached=cached)
        results.append((name, ms, fig_ms))

    def wanted(name: str) -> bool:
        return args.only.lower() in name.lower()

    if wanted("AttentionExplorer"):
        att = widgets.AttentionExplorer(model, data)
        c = att.controls
        run("AttentionExplorer layer", att, [setter(c["layer"], v) for v in (1, 2, 3, 0)])
        run("AttentionExplorer head", att, [setter(c["head"], v) for v in (1, 0)])
        run("AttentionExplorer query", att, [setter(c["query"], v) for v in (10, 17, 5, 16)])
        run("AttentionExplorer example", att, [setter(c["example"], v) for v in (3, 9, 1, 0)])

    if wanted("SearchStateExplorer"):
        ss = widgets.SearchStateExplorer(model, data, sweep.probes, label="ancestor_1")
        hooks = [h for _, h in ss.controls["layer"].options]
        run("SearchStateExplorer layer", ss, [setter(ss.controls["layer"], h) for h in hooks])
        run("SearchStateExplorer layer, revisit", ss, [setter(ss.controls["layer"], h) for h in hooks], cached=True)
        run("SearchStateExplorer example", ss, [setter(ss.controls["example"], v) for v in (3, 9, 1, 0)])

    if wanted("ProbeExplorer"):
        pe = widgets.ProbeExplorer(sweep, acts)
        cells = [(lab, h) for lab in pe.labels for h in pe.hooks]
        run("ProbeExplorer cell", pe, [lambda cell=cell: pe.select(*cell) for cell in cells])
        run("ProbeExplorer colour", pe, [setter(pe.controls["value"], v) for v in
                                         ("selectivity", "vs baseline", "score")])

    if wanted("FeatureBrowser"):
        fb = widgets.FeatureBrowser(sae, acts, data, hook=hook)
        lat = [v for _, v in fb.controls["latent"].options[:8]]
        lat = lat[1:] + lat[:1]  # start away from the current latent
        run("FeatureBrowser latent", fb, [setter(fb.controls["latent"], v) for v in lat])
        run("FeatureBrowser latent, revisit", fb, [setter(fb.controls["latent"], v) for v in lat], cached=True)
        ex = list(fb.controls["example"].options[:5])
        ex = ex[1:] + ex[:1]
        run("FeatureBrowser example", fb, [setter(fb.controls["example"], v) for v in ex])

    if wanted("MazeEditor"):
        me = widgets.MazeEditor(maze_model, maze_data)
        run("MazeEditor click", me, [lambda r=r, c=c: me.click(r, c, "wall →") for r in range(4) for c in range(3)])

    if not results:
        raise SystemExit(f"--only {args.only!r} matches no explorer")
    print(f"\n{'explorer / control':<36} {'median ms':>9} {'figure ms':>9}")
    for name, ms, fig_ms in results:
        print(f"{name:<36} {ms:9.1f} {fig_ms:9.1f}   ratio={ms / TARGET_MS:.2f}   ratio_vs_figure={ms / fig_ms:.2f}")
    worst = max(results, key=lambda r: r[1])
    print(f"\nslowest: {worst[0]} {worst[1]:.1f} ms  ratio={worst[1] / TARGET_MS:.2f} (target {TARGET_MS:.0f} ms)")


if __name__ == "__main__":
    main()
