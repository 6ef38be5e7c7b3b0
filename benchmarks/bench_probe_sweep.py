"""Benchmark: probes.sweep vs one scikit-learn LogisticRegression per (layer, label) on tree-8, and the
acceptance tables of the probing chapter.

Workload: the shipped tree-8 model, ``--n`` test examples, hooks ``blocks.0.hook_resid_pre`` + every
``hook_resid_post``, labels ``parent``, ``goal``, ``ancestor_1..4`` at their own positions; (a) pooled over
positions, (b) one probe per (label, position, layer) - the layer x position maps.

Like for like (``--repeats`` interleaved runs, medians): the sweep fits only the real probes here
(``control=False, baseline=False, n_boot=0``, no twin);
scikit-learn gets the same train/test split (``probes.split``), standardised features, ``C=1``, ``lbfgs``,
``max_iter=1000`` and one BLAS thread (its fastest setting on the shared machine). Both are scored on the same
held-out rows; "equal accuracy" = every cell within 1 point. The full sweep (control task, trivial baseline,
random-init twin, bootstrap) is timed as well and its tables are printed (``--tables``).

    .venv/bin/python benchmarks/bench_probe_sweep.py [--n 4000] [--tables]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from toolkit import activations, models, probes

LABELS = ["parent", "goal", "ancestor_1", "ancestor_2", "ancestor_3", "ancestor_4"]


def sklearn_cells(acts, is_test, grouped: bool):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    out = {}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label in LABELS:
            y, valid = acts.labels(label)
            keys = torch.unique(acts.position[valid]).tolist() if grouped else [None]
            for key in keys:
                rows = valid if key is None else valid & (acts.position == key)
                tr, te = rows & ~is_test, rows & is_test
                if int(tr.sum()) < 40 or int(te.sum()) < 10:
                    continue
                for hook in acts.hook_names:
                    X = acts[hook]
                    mu, sd = X[tr].mean(0), X[tr].std(0, unbiased=False).clamp_min(1e-6)
                    Xtr, Xte = ((X[tr] - mu) / sd).numpy(), ((X[te] - mu) / sd).numpy()
                    clf = LogisticRegression(C=1.0, max_iter=1000).fit(Xtr, y[tr].numpy())
                    out[(label, key, hook)] = float(clf.score(Xte, y[te].numpy()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--tables", action="store_true", help="print the acceptance tables of the full sweep")
    ap.add_argument("--tol", type=float, default=1e-4, help="the sweep's L-BFGS gradient tolerance")
    ap.add_argument("--skip-full", action="store_true", help="skip the full sweep")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = models.pretrained("tree-8")
    twin = models.pretrained("tree-8", random_init=True)
    data = models.task_of(model).generate(args.n, seed=123, split="test")
    hooks = ["blocks.0.hook_resid_pre", "resid_post"]
    acts = activations.cache(model, data, hooks=hooks, positions="all", progress=False)
    is_test = probes.split(acts)
    print(f"tree-8, {args.n} examples, {len(acts)} rows, {len(acts.hook_names)} hooks, labels {LABELS}")
    for grouped in (False, True):
        name = "by position" if grouped else "pooled"
        t_ours, t_sk = [], []
        for _ in range(args.repeats):  # interleaved, so load drifting on the shared machine hits both alike
            t = time.perf_counter()
            res = probes.sweep(acts, labels=LABELS, control=False, baseline=False, n_boot=0, tol=args.tol,
                               group_by="position" if grouped else None, progress=False)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            ref = sklearn_cells(acts, is_test, grouped)
            t_sk.append(time.perf_counter() - t)
        ours = {(r["label"], r["group"], r["hook"]): r["score"] for r in res.rows}
        common = sorted(set(ours) & set(ref), key=str)
        diff = np.array([ours[k] - ref[k] for k in common])
        a, b = statistics.median(t_ours), statistics.median(t_sk)
        print(f"{name}: {len(common)} cells (ours {len(ours)}, sklearn {len(ref)}); sweep {a:.1f} s "
              f"{[round(x, 1) for x in t_ours]}, sklearn {b:.1f} s {[round(x, 1) for x in t_sk]}; accuracy "
              f"difference: mean {diff.mean():+.4f}, max |.| {np.abs(diff).max():.4f}, "
              f"{(np.abs(diff) <= 0.01).mean():.1%} of cells within 1 point")
        print(f"ratio=sweep_vs_sklearn_{name.replace(' ', '_')} {b / a:.2f} (target >= 5)")
    if args.skip_full:
        return
    tw = activations.cache(twin, data, hooks=hooks, positions="all", progress=False)
    t = time.perf_counter()
    full = probes.sweep(acts, labels=LABELS, random_acts=tw, progress=False)
    t_pooled = time.perf_counter() - t
    t = time.perf_counter()
    bypos = probes.sweep(acts, labels=LABELS, random_acts=tw, group_by="position", progress=False)
    t_pos = time.perf_counter() - t
    print(f"full sweep (probe + control + trivial baseline + random-init twin + 200 bootstraps): pooled "
          f"{t_pooled:.1f} s ({len(full.rows)} cells), by position {t_pos:.1f} s ({len(bypos.rows)} cells)")
    if args.tables:
        import pandas as pd

        pd.set_option("display.width", 200)
        cols = ["label", "hook", "n_test", "score", "score_lo", "score_hi", "chance", "baseline", "control",
                "selectivity", "random_init", "found"]
        print(full.table()[cols].round(3).to_string())
        for label in LABELS:
            for value in ("score", "baseline", "random_init", "selectivity", "found"):
                print(f"--- {label}: {value} (rows: hook, columns: position)")
                print(bypos.map(label, value).round(2).to_string())


if __name__ == "__main__":
    main()
