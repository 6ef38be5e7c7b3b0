"""An SAE on the tree-8 model's mid-layer residual stream, scored against the search labels beside a control.

    .venv/bin/python benchmarks/sae_tree8.py [--hook blocks.1.hook_resid_post] [--n 2000] [--d-sae 512] [--k 8]

Trains a TopK SAE (and, with the same budget, the frozen-random-decoder control) on activations at every
labelled position of ``n`` held-out tree examples, then prints per label the best latent's score
(``|2 AUC - 1|`` for binary / one-vs-rest sub-labels, ``|r|`` for regression) for the SAE and the control,
the number of sub-labels where the SAE beats the control by a margin, the strong latents that match no label,
and the loss / accuracy recovered when the SAE is spliced into the model. ``ratio=`` lines compare the SAE's
mean best score with the control's, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from toolkit import models, tasks
from toolkit import unsupervised as U


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tree-8")
    ap.add_argument("--hook", default="blocks.1.hook_resid_post", help="mid-layer of the 4-layer model")
    ap.add_argument("--n", type=int, default=2000, help="examples (held-out split)")
    ap.add_argument("--d-sae", type=int, default=512)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--n-samples", type=int, default=1_000_000)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = models.pretrained(args.model)
    task = tasks.from_spec(model.searchlight["task"])
    data = task.generate(args.n, seed=10_000 + args.seed, split="test")
    t = time.perf_counter()
    rep = U.model_label_report(model, data, args.hook, architecture="topk", k=args.k, d_sae=args.d_sae,
                               n_samples=args.n_samples, batch_size=512, seed=args.seed,
                               threshold=args.threshold)
    secs = time.perf_counter() - t
    m, mc = rep.metrics["sae"], rep.metrics["control"]
    print(f"{args.model} {args.hook}: {rep.info['n_rows']} rows x {rep.sae.d_in_} dims; TopK k={args.k}, "
          f"{args.d_sae} latents, {args.n_samples:,} samples; {secs:.0f}s for SAE + control + matching + splicing")
    print(f"SAE:     L0 {m['l0']:.1f}  explained variance {m['explained_variance']:.3f}  dead {m['dead_latents']:.1%}  "
          f"CE-loss score {rep.spliced['ce_loss_score']:.3f}  accuracy {rep.spliced['accuracy_with_sae']:.3f} "
          f"(clean {rep.spliced['accuracy_clean']:.3f}, zero-ablated {rep.spliced['accuracy_with_ablation']:.3f})")
    sc = rep.info["spliced_control"]
    print(f"control: L0 {mc['l0']:.1f}  explained variance {mc['explained_variance']:.3f}  dead "
          f"{mc['dead_latents']:.1%}  CE-loss score {sc['ce_loss_score']:.3f}  accuracy {sc['accuracy_with_sae']:.3f}")
    by_label: dict[str, list[dict]] = {}
    for r in rep.rows:
        by_label.setdefault(r["label"].split("=")[0].split("[")[0], []).append(r)
    print(f"\n{'label':<18} {'subs':>4} {'SAE best':>9} {'ctrl best':>9} {'SAE mean':>9} {'ctrl mean':>9} "
          f"{'SAE>ctrl+0.1':>12}")
    for name, rows in by_label.items():
        s = [r["sae"] for r in rows]
        c = [r["control"] for r in rows]
        wins = sum(r["margin"] > 0.1 for r in rows)
        print(f"{name:<18} {len(rows):4d} {max(s):9.3f} {max(c):9.3f} {statistics.mean(s):9.3f} "
              f"{statistics.mean(c):9.3f} {wins:8d}/{len(rows)}")
    s_all = statistics.mean(r["sae"] for r in rep.rows)
    c_all = statistics.mean(r["control"] for r in rep.rows)
    print(f"\nratio={s_all / c_all:.2f} (mean best-latent score over {len(rep.rows)} sub-labels: SAE {s_all:.3f} / "
          f"frozen-decoder control {c_all:.3f})")
    n_match = sum(r["matched"] for r in rep.match.latents)
    print(f"SAE latents matching a label (score >= {args.threshold}): {n_match}/{len(rep.match.latents)}; "
          f"strong but unlabelled: {len(rep.match.unlabelled)} (first: {rep.match.unlabelled[:10]})")


if __name__ == "__main__":
    main()
