"""Train the checkpoints shipped in ``toolkit/models/checkpoints/``, reproducibly from each recipe's seed.

    python scripts/train_checkpoints.py                         # every recipe, CPU, into the package folder
    python scripts/train_checkpoints.py --only tree-8,tree-8-2L
    python scripts/train_checkpoints.py --device cuda --only maze-4x4,graph-10,tree-10 --out $OUT
    python scripts/train_checkpoints.py --only tree-8 --steps 20 --out /tmp/x     # smoke test

Each run writes ``NAME.safetensors`` + ``NAME.json`` (the checkpoint, with the held-out evaluation in its
sidecar) into ``--out`` and ``NAME.history.json`` + ``NAME.curve.png`` + ``NAME.log`` into ``--out/logs``.
Held-out evaluation: ``--eval-n`` fresh examples from the ``test`` split with seed ``HELDOUT_SEED`` (never used
for training or for the evaluations during training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HELDOUT_SEED = 2024  # the held-out evaluation right after training (on the training device)
VERIFY_SEED = 7777  # the independent check on CPU (--verify), a different sample of the same test split


@dataclass
class Recipe:
    task: dict[str, Any]  # task.spec()
    description: str
    arch: dict[str, Any] = field(default_factory=dict)  # overrides of models.DEFAULT_ARCH
    train: dict[str, Any] = field(default_factory=dict)  # overrides of models.TrainConfig
    gpu_train: dict[str, Any] = field(default_factory=dict)  # further overrides when --device cuda
    score: str = "exact"  # the EvalResult field the acceptance bar applies to
    bar: float = 0.99


# Long runs on a GPU: a time budget (the cosine schedule follows elapsed / max_seconds), bigger batches, a large
# pool generated in parallel. The step count actually run is recorded in each checkpoint's sidecar.
GPU_LONG = {"steps": 400_000, "batch_size": 512, "max_seconds": 300, "pool_size": 500_000, "workers": 4,
            "eval_every": 1000}
TREE8 = {"type": "tree", "n_nodes": 8, "max_path": 4}
TREE10 = {"type": "tree", "n_nodes": 10, "max_path": 6}
MAZE4 = {"type": "maze", "size": 4, "sep": False, "holdout": 0.0}
LOOKUP8 = {"type": "tree_lookup", "n_nodes": 8, "max_path": 4, "table_seed": 0}
GRAPH10 = {"type": "graph", "n_vertices": 10, "n_branches": 3, "n_distractors": 3, "n_queries": 6, "max_hops": 4,
           "reach_hops": [1, 2, 4]}
RECIPES: dict[str, Recipe] = {
    "tree-8": Recipe(TREE8, "binary tree, 8 nodes, root->goal paths of 1-4 edges; 4 layers, d_model 64",
                     train={"steps": 3000}),
    "tree-8-1L": Recipe(TREE8, "tree-8 task, 1 layer (depth control)", arch={"n_layers": 1},
                        train={"steps": 3000}, bar=0.0),
    "tree-8-2L": Recipe(TREE8, "tree-8 task, 2 layers (depth control)", arch={"n_layers": 2},
                        train={"steps": 3000}, bar=0.0),
    "tree-8-3L": Recipe(TREE8, "tree-8 task, 3 layers (depth control)", arch={"n_layers": 3},
                        train={"steps": 3000}, bar=0.0),
    # the negative control of toolkit.signatures: tree-8 prompts whose path is a fixed function of the goal token;
    # the same 4-layer d_model-64 model as tree-8, so a difference in the signatures comes from the task, not size
    "tree-lookup-8": Recipe(LOOKUP8, "tree-8 prompts whose path is a fixed table of the goal token (no search "
                            "needed; negative control); 4 layers, d_model 64", train={"steps": 1500}),
    "tree-10": Recipe(TREE10, "binary tree, 10 nodes, paths of 1-6 edges; 4 layers, d_model 64",
                      train={"steps": 6000}, gpu_train=GPU_LONG, bar=0.95),
    "tree-10-2L": Recipe(TREE10, "tree-10 task, 2 layers (depth control)", arch={"n_layers": 2},
                         train={"steps": 6000}, gpu_train=GPU_LONG, bar=0.0),
    "tree-10-6L": Recipe(TREE10, "tree-10 task, 6 layers, d_model 64", arch={"n_layers": 6},
                         train={"steps": 6000}, gpu_train=GPU_LONG, bar=0.95),
    "maze-4x4": Recipe(MAZE4, "4x4 perfect maze, shortest path origin->target; 4 layers, d_model 64",
                       train={"steps": 6000}, gpu_train=GPU_LONG, bar=0.95),
    "maze-4x4-6L": Recipe(MAZE4, "4x4 maze, 6 layers, d_model 64", arch={"n_layers": 6},
                          train={"steps": 6000}, gpu_train=GPU_LONG, bar=0.95),
    "graph-10": Recipe(GRAPH10, "DAG reachability, 10 vertices, 6 YES/NO queries; 4 layers, d_model 64",
                       train={"steps": 6000}, gpu_train=GPU_LONG, score="token_greedy", bar=0.95),
    "graph-10-6L": Recipe(GRAPH10, "graph-10 task, 6 layers, d_model 64", arch={"n_layers": 6},
                          train={"steps": 6000}, gpu_train=GPU_LONG, score="token_greedy", bar=0.95),
}


def train_one(name: str, recipe: Recipe, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from toolkit import models, tasks

    out, logs = Path(args.out), Path(args.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    task = tasks.from_spec(recipe.task)
    cfg_over = dict(recipe.train)
    if args.long or (args.device and args.device.startswith("cuda")):
        cfg_over.update(recipe.gpu_train)
    if args.steps:
        cfg_over["steps"] = args.steps
    if args.max_seconds:
        cfg_over["max_seconds"] = args.max_seconds
    if args.pool_size:
        cfg_over["pool_size"] = args.pool_size
    config = models.TrainConfig(**{**cfg_over, "device": args.device})
    model = models.build(task, **recipe.arch)
    print(f"[{name}] {task!r}, {models.n_params(model)} params, {config}", flush=True)

    def report(rec: dict[str, Any]) -> None:
        print(f"[{name}] step {rec['step']}: exact {rec['exact']:.3f}, token {rec['token']:.3f}, "
              f"train loss {rec['train_loss']:.4f}, {rec['elapsed_s']:.0f} s", flush=True)

    hist = models.train(model, task, config, progress=args.progress, callback=report)
    t0 = time.perf_counter()
    heldout = models.evaluate(model, task.generate(args.eval_n, seed=HELDOUT_SEED, split="test"))
    if next(model.parameters()).device.type != "cpu":
        model.to("cpu")
    print(f"[{name}] {hist!r}\n[{name}] held-out ({args.eval_n} examples, {time.perf_counter() - t0:.0f} s): "
          f"{heldout}", flush=True)
    extra = {"description": recipe.description, "heldout": heldout.to_dict(), "heldout_seed": HELDOUT_SEED,
             "heldout_split": "test", "score": recipe.score, "bar": recipe.bar,
             "trained_on": args.device or "cpu", "torch": torch.__version__,
             "device_name": torch.cuda.get_device_name() if (args.device or "").startswith("cuda") else "CPU"}
    model.searchlight["name"] = name
    models.save(model, out / name, extra=extra)
    (logs / f"{name}.history.json").write_text(json.dumps(
        {**hist.to_dict(), "loss": [round(x, 5) for x in hist.loss]}) + "\n")
    hist.plot().savefig(logs / f"{name}.curve.png", dpi=90)
    score = getattr(heldout, recipe.score)
    return {"name": name, "steps": hist.steps_done, "wall_s": round(hist.wall_s, 1), recipe.score: score,
            "exact": heldout.exact, "passes_bar": score >= recipe.bar}


def verify(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load ``--out/NAME`` on CPU, evaluate on ``--eval-n`` fresh examples (seed VERIFY_SEED) and record the
    result in the sidecar's ``extra["verified_cpu"]`` (weights are rewritten byte-identically)."""
    import torch

    from toolkit import models

    path = Path(args.out) / name
    model = models.load(path)
    task = models.task_of(model)
    side = models.read_sidecar(path)
    t0 = time.perf_counter()
    res = models.evaluate(model, task.generate(args.eval_n, seed=VERIFY_SEED, split="test"))
    print(f"[{name}] CPU verification ({args.eval_n} examples, seed {VERIFY_SEED}, "
          f"{time.perf_counter() - t0:.0f} s): {res}", flush=True)
    extra = dict(side.get("extra") or {})
    extra["verified_cpu"] = {**res.to_dict(), "seed": VERIFY_SEED, "split": "test", "torch": torch.__version__}
    models.save(model, path, extra=extra)
    recipe = RECIPES.get(name)
    score = getattr(res, recipe.score if recipe else "exact")
    return {"name": name, "verified": score, "exact": res.exact,
            "passes_bar": score >= (recipe.bar if recipe else 0.0)}


CARD_HEAD = """# Searchlight model card

Every checkpoint here is a `TransformerBridge` built by `toolkit.models.build` (TransformerLens-native
architecture: learned token and position embeddings, pre-LayerNorm blocks, GELU MLP, untied unembedding), d_model 64,
2 heads of d_head 32, d_mlp 256, trained by `scripts/train_checkpoints.py` from init seed 0 and data seed 0.
Load one with `models.pretrained(name)`; `models.pretrained(name, random_init=True)` gives the exact weights its
training started from (the control every probe result should be compared against).

Recipe (all models): AdamW lr 3e-3, betas (0.9, 0.99), weight decay 0.01 on matrices, 100 warm-up steps then cosine
to 10%, gradient clipping 1.0, loss on the target tokens only (`loss_mask`), batches sampled from a pool of
`task.generate(..., split="train")` examples. Greedy accuracy: every target token is the model's own argmax, fed
back for the next one; an example is *exact* when all its targets are right (graph: each YES/NO answer is scored,
*per-answer*; *exact* = all 6 answers right).

Evaluation: **held-out** = 2000 fresh examples from the `test` split (seed {heldout}), evaluated right after training
on the training device; **CPU check** = 2000 other fresh examples (seed {verify}), evaluated here on CPU with the
saved file. Both are fresh draws from the training distribution, not held-out tree/maze shapes
(`TreeSearch(holdout=...)` / `MazeSearch(holdout=...)` exist for that; these checkpoints were not trained with it).
The tree checkpoints use `long_branch=False`: on long paths the goal is often simply the deepest leaf, a shortcut
a model may use (compare accuracy by difficulty; `TreeSearch(long_branch=True)` removes it). The depth controls
show how little depth this task needs: 1 layer fails (33% exact), 2 layers already reach 97-98%.

Caveats: the long runs (`steps x batch` marked *) ran on a GPU under a time budget (the cosine schedule follows
elapsed time), so their step count depends on the machine; `--steps N` with the recorded N reproduces the schedule.
GPU kernels are not bit-deterministic: a rerun gives a similar model, not the same weights. Training curves:
`logs/NAME.history.json` (loss per step, evaluations by difficulty) and `logs/*.log`.

"""


def write_card(out: Path) -> Path:
    """MODEL_CARD.md in ``out`` from the sidecars there (numbers are read, never typed)."""
    from toolkit import models
    from toolkit._io import atomic_write

    rows, details = [], []
    for side_path in sorted(out.glob("*.json"), key=lambda q: q.stem):
        try:
            side = models.read_sidecar(side_path)
        except ValueError:
            continue
        name, extra, tr = side_path.stem, side.get("extra") or {}, side.get("training") or {}
        score = extra.get("score", "exact")
        what = "per-answer" if score == "token_greedy" else "exact"
        held, cpu = extra.get("heldout") or {}, extra.get("verified_cpu") or {}
        cfg = tr.get("config", {})
        budget = "*" if cfg.get("max_seconds") else ""
        arch = side["arch"]
        device = extra.get("device_name", extra.get("trained_on", "?"))
        rows.append(f"| `{name}` | {extra.get('description', '')} | {arch['n_layers']} | {side['n_params']:,} | "
                    f"{device} | {tr.get('steps')} x {cfg.get('batch_size')}{budget} | "
                    f"{tr.get('wall_s')} s | {what} {held.get(score, float('nan')):.2%} | "
                    f"{what} {cpu.get(score, float('nan')):.2%}"
                    + (f" (exact {cpu.get('exact', float('nan')):.2%})" if score != "exact" else "") + " |")
        by = cpu.get("by_difficulty") or {}
        cells = ", ".join(f"{k}: {v['exact']:.1%} (n={v['n']})" for k, v in by.items())
        note = f" Note: {extra['note']}." if extra.get("note") else ""
        details.append(f"- `{name}` — task `{side['task']}`; CPU check exact by difficulty: {cells}.{note}")
    table = ("| name | what | layers | params | trained on | steps x batch | train wall | held-out | CPU check |\n"
             "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    text = (CARD_HEAD.format(heldout=HELDOUT_SEED, verify=VERIFY_SEED) + table
            + "\n\nDifficulty is the task's `meta['difficulty']` (trees and mazes: path length; graphs: the largest "
              "hop distance of a YES query).\n\n" + "\n".join(details) + "\n")
    path = out / "MODEL_CARD.md"
    atomic_write(path, text)
    return path


def main(argv: list[str] | None = None) -> int:
    from toolkit.models import CHECKPOINT_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated names (default all): {', '.join(RECIPES)}")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--out", default=str(CHECKPOINT_DIR), help="output folder (default: the package folder)")
    p.add_argument("--steps", type=int, default=None, help="override every recipe's step count (smoke tests)")
    p.add_argument("--max-seconds", type=float, default=None, help="override every recipe's time budget")
    p.add_argument("--pool-size", type=int, default=None, help="override every recipe's pool size")
    p.add_argument("--eval-n", type=int, default=2000, help="held-out examples for the final evaluation")
    p.add_argument("--long", action="store_true", help="use the GPU recipes (time budget, big pool) on any device")
    p.add_argument("--verify", action="store_true",
                   help="do not train: evaluate the checkpoints already in --out on CPU and record the result")
    p.add_argument("--card", action="store_true", help="only (re)write MODEL_CARD.md in --out from the sidecars")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if args.card:
        print(write_card(Path(args.out)))
        return 0
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"unknown checkpoint name(s) {unknown}; valid names: {', '.join(RECIPES)}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = []
    failed = []
    for name in names:
        try:
            results.append(verify(name, args) if args.verify else train_one(name, RECIPES[name], args))
            print(json.dumps(results[-1]), flush=True)
        except Exception:  # keep going: one broken recipe must not cost the others (long GPU runs)
            traceback.print_exc()
            failed.append(name)
    print("summary:", json.dumps(results, indent=1), "failed:", failed, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
