"""Evidence for ``SparseAutoencoder``'s defaults: the same settings on a toy and on real-scale activations.

    .venv/bin/python benchmarks/sae_defaults.py                 # both datasets, seeds 0 and 1 (docs/SAE_DEFAULTS.md)
    .venv/bin/python benchmarks/sae_defaults.py --only toy      # or --only real; --seeds 0,1,2

Datasets:

* ``toy``: :func:`toolkit.unsupervised.ci_toy` (64-d, 128 ground-truth features, ~3 active): MMCS against the
  ground truth, explained variance, dead latents, L0.
* ``real``: residual-stream activations (``hidden_states[1]``: after the first block, before the final
  LayerNorm) of a GPT-2-small-shaped model (d_model 768, 12 heads, vocab 1024, 2 layers) built locally with
  ``transformers`` at its random initialisation, on random tokens. Random init leaves the residual norm at about
  5 (printed), far below a trained
  GPT-2's, so the activations are multiplied to a mean norm of ``--norm`` (default 100; a chosen scale, not one
  measured here) - the regime where the issue reported 98.4% dead latents. No ground truth: EV, dead, L0.

Every fit uses the SAE defaults except the columns named in the table (and ``n_samples``, kept small so a
768-d fit stays under ~30 s). Prints one row per (dataset, config, seed) and a markdown table of the means.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from toolkit import unsupervised as U

CONFIGS = {  # name -> settings that differ from the defaults
    "defaults": {},
    "normalise": {"normalize_activations": "expected_average_only_in"},
    "l1=0.3": {"l1_coefficient": 0.3},
    "l1=0.3 + normalise": {"l1_coefficient": 0.3, "normalize_activations": "expected_average_only_in"},
    "l1=1 + normalise": {"l1_coefficient": 1.0, "normalize_activations": "expected_average_only_in"},
    "topk k=8 + aux + normalise": {"architecture": "topk", "k": 8, "normalize_activations": "expected_average_only_in"},
    "topk k=32 + aux + normalise": {"architecture": "topk", "k": 32,
                                    "normalize_activations": "expected_average_only_in"},
}


def toy_data(seed: int):
    d = U.ci_toy(seed)
    return d, d.sample(60_000, torch.Generator().manual_seed(100 + seed))


@torch.no_grad()
def real_data(seed: int, norm: float, n_seq: int = 96, seq: int = 128) -> tuple[torch.Tensor, float]:
    """``[n_seq * seq, 768]`` residual activations scaled to mean norm ``norm``; also the raw mean norm."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=768, n_head=12, n_layer=2, vocab_size=1024, n_positions=seq)
    model = GPT2Model(cfg).eval()
    tokens = torch.randint(0, 1024, (n_seq, seq), generator=torch.Generator().manual_seed(seed))
    hs = torch.cat([model(tokens[i:i + 16], output_hidden_states=True).hidden_states[1]
                    for i in range(0, n_seq, 16)]).reshape(-1, 768)
    raw = float(hs.norm(dim=1).mean())
    return hs * (norm / raw), raw


def fit_row(X: torch.Tensor, settings: dict, seed: int, n_samples: int, features=None) -> dict:
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", U.SAEFitWarning)
        sae = U.SparseAutoencoder(n_samples=n_samples, seed=seed, progress=False, **settings).fit(X)
    secs = time.perf_counter() - t
    ev = sae.evaluate(X[:8192])
    out = {"ev": ev["explained_variance"], "dead": sae.n_dead_ / sae.d_sae_, "l0": ev["l0"], "seconds": secs,
           "warned": any(issubclass(w.category, U.SAEFitWarning) for w in caught)}
    if features is not None:
        out["mmcs"] = U.ground_truth_scores(sae.dictionary_, features)["mmcs"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--only", choices=("toy", "real"), default=None)
    ap.add_argument("--norm", type=float, default=100.0, help="mean residual norm of the scaled real-scale data")
    ap.add_argument("--toy-samples", type=int, default=300_000)
    ap.add_argument("--real-samples", type=int, default=30_720)
    ap.add_argument("--configs", default="", help="comma-separated subset of: " + ", ".join(CONFIGS))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [c.strip() for c in args.configs.split(",") if c.strip()] or list(CONFIGS)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; seeds {seeds}", flush=True)
    results: dict[tuple[str, str], list[dict]] = {}
    for dataset in ("toy", "real"):
        if args.only and dataset != args.only:
            continue
        for seed in seeds:
            if dataset == "toy":
                data, X = toy_data(seed)
                features, n_samples = data.features, args.toy_samples
                print(f"toy seed {seed}: X {tuple(X.shape)}, mean norm {float(X.norm(dim=1).mean()):.3f}", flush=True)
            else:
                X, raw = real_data(seed, args.norm)
                features, n_samples = None, args.real_samples
                print(f"real seed {seed}: X {tuple(X.shape)}, raw mean residual norm {raw:.3f} "
                      f"(std of a coordinate {float(X.std() * raw / args.norm):.4f}), scaled to {args.norm:g}",
                      flush=True)
            for name in names:
                r = fit_row(X, CONFIGS[name], seed, n_samples, features)
                results.setdefault((dataset, name), []).append(r)
                mm = f"mmcs {r['mmcs']:.3f}  " if "mmcs" in r else ""
                print(f"  {dataset} seed {seed} {name:<28} {mm}EV {r['ev']:.3f}  dead {r['dead']:6.1%}  "
                      f"L0 {r['l0']:7.1f}  warned {r['warned']!s:<5} {r['seconds']:5.1f}s", flush=True)
    print("\n| data | settings (rest default) | MMCS | EV | dead | L0 | SAEFitWarning | s/fit |")
    print("|---|---|---|---|---|---|---|---|")
    for (dataset, name), rs in results.items():
        cols = [" / ".join(format(r[key], fmt) for r in rs) if key in rs[0] else "-"
                for key, fmt in (("mmcs", ".3f"), ("ev", ".3f"), ("dead", ".1%"), ("l0", ".1f"))]
        secs = sum(r["seconds"] for r in rs) / len(rs)
        print(f"| {dataset} | {name} | {' | '.join(cols)} | {sum(r['warned'] for r in rs)}/{len(rs)} | {secs:.1f} |")


if __name__ == "__main__":
    main()
