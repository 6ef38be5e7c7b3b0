"""Metrics for dictionaries, with SAELens's names where they exist.

Reconstruction (any method with codes and a reconstruction): ``l0, l1, mse, explained_variance,
l2_ratio`` (``||x_hat|| / ||x||``; below 1 = shrinkage), ``shrinkage`` (``1 - l2_ratio``),
``dead_latents / dense_latents`` (fractions), ``feature_density [d_sae]``.

Against ground-truth directions (synthetic data): ``mmcs`` (mean over true features of the best cosine
to any learned direction; Sharkey et al. 2022), ``fraction_recovered`` (share of true features with best
cosine > 0.9), ``mcc`` (mean cosine of a one-to-one Hungarian matching), ``uniqueness`` (do distinct
latents find distinct features?). Without ground truth: :func:`mmcs_between` a dictionary and one twice
its size (Sharkey et al.'s signal for choosing dictionary size).

For a model: :func:`spliced_scores` splices the reconstruction into a forward pass and reports
``ce_loss_score`` / ``kl_div_score`` / accuracy recovered (SAELens's definitions, zero-ablation baseline).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _t(x: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return x.detach().float().cpu()


def unit_rows(d: Any) -> torch.Tensor:
    """Rows scaled to unit norm (zero rows stay zero)."""
    d = _t(d)
    if d.ndim != 2:
        raise ValueError(f"a dictionary must be 2-D [n_directions, d], got shape {tuple(d.shape)}")
    return d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)


def cosine_matrix(learned: Any, true: Any) -> torch.Tensor:
    """``|cos|`` between every true direction and every learned one: ``[n_true, n_learned]``.

    Absolute value: PCA/ICA directions have arbitrary sign (an SAE latent's sign is fixed by its ReLU,
    and a latent pointing opposite to a feature is rare in practice).
    """
    a, b = unit_rows(true), unit_rows(learned)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: true directions have d={a.shape[1]}, learned have d={b.shape[1]}")
    return (a @ b.T).abs()


def mmcs(learned: Any, true: Any) -> float:
    """Mean max cosine similarity: mean over true features of the best ``|cos|`` to any learned direction."""
    return float(cosine_matrix(learned, true).max(1).values.mean())


def fraction_recovered(learned: Any, true: Any, threshold: float = 0.9) -> float:
    """Share of true features whose best learned direction has ``|cos| > threshold``."""
    return float((cosine_matrix(learned, true).max(1).values > threshold).float().mean())


def mcc(learned: Any, true: Any) -> float:
    """Mean ``|cos|`` over the optimal one-to-one (Hungarian) matching of true and learned directions.

    Unlike MMCS, one learned direction cannot be credited for several features; unmatched true features
    (more features than learned directions) count as 0.
    """
    from scipy.optimize import linear_sum_assignment

    c = cosine_matrix(learned, true).numpy()
    rows, cols = linear_sum_assignment(-c)
    return float(c[rows, cols].sum() / c.shape[0])


def uniqueness(learned: Any, true: Any, threshold: float = 0.9) -> float:
    """Among learned directions that match some true feature (``|cos| > threshold``), the fraction of
    *distinct* features they match. 1.0 = no duplicates; lower = several latents share a feature.
    Returns nan when no learned direction matches any feature."""
    c = cosine_matrix(learned, true)
    best, which = c.max(0)
    hit = best > threshold
    if not bool(hit.any()):
        return float("nan")
    return float(which[hit].unique().numel() / int(hit.sum()))


def mmcs_between(dict_a: Any, dict_b: Any) -> float:
    """MMCS of ``dict_a`` against ``dict_b`` as if ``dict_a`` were the truth (no ground truth needed).

    Train dictionaries of size m and 2m; a high ``mmcs_between(small, large)`` says the larger one re-finds
    the smaller one's directions - the size is large enough (Sharkey et al. 2022).
    """
    return mmcs(dict_b, dict_a)


def ground_truth_scores(learned: Any, true: Any, threshold: float = 0.9) -> dict[str, float]:
    """``{mmcs, fraction_recovered, mcc, uniqueness}`` of a learned dictionary against true directions."""
    return {"mmcs": mmcs(learned, true), "fraction_recovered": fraction_recovered(learned, true, threshold),
            "mcc": mcc(learned, true), "uniqueness": uniqueness(learned, true, threshold)}


def reconstruction_metrics(x: Any, x_hat: Any, codes: Any | None = None,
                           dense_threshold: float = 0.1) -> dict[str, Any]:
    """SAELens-named metrics of a reconstruction ``x_hat [n, d]`` of ``x [n, d]`` with ``codes [n, k]``.

    ``mse`` is the per-row squared error summed over ``d`` and averaged over rows (SAELens's convention);
    ``explained_variance`` is ``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``; ``l2_ratio`` is the mean
    of ``||x_hat|| / ||x||``. With ``codes``: ``l0`` (mean active codes per row), ``l1`` (mean sum of
    ``|codes|``), ``feature_density [k]``, ``dead_latents`` / ``dense_latents`` (fraction of latents
    never active on ``x`` / active on more than ``dense_threshold`` of rows).
    """
    x, x_hat = _t(x), _t(x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_hat {tuple(x_hat.shape)} must have the same shape")
    err = (x - x_hat).pow(2).sum(1)
    var = (x - x.mean(0)).pow(2).sum()
    norm_in = x.norm(dim=1)
    out: dict[str, Any] = {
        "mse": float(err.mean()),
        "explained_variance": float(1 - err.sum() / var.clamp_min(1e-12)),
        "l2_ratio": float((x_hat.norm(dim=1) / norm_in.clamp_min(1e-12)).mean()),
    }
    out["shrinkage"] = 1.0 - out["l2_ratio"]
    if codes is not None:
        codes = _t(codes)
        active = codes != 0
        density = active.float().mean(0)
        out.update(l0=float(active.sum(1).float().mean()), l1=float(codes.abs().sum(1).mean()),
                   dead_latents=float((density == 0).float().mean()),
                   dense_latents=float((density > dense_threshold).float().mean()), feature_density=density)
    return out


# --------------------------------------------------------------------------- splicing into a model
def _masked_ce(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-target CE and correctness at ``mask[:, 1:]`` (the house convention of toolkit.tasks.base)."""
    lp = torch.log_softmax(logits[:, :-1].float(), -1)
    tgt = tokens[:, 1:]
    m = mask[:, 1:]
    ce = -lp.gather(-1, tgt[..., None])[..., 0]
    return ce[m], (lp.argmax(-1) == tgt)[m].float()


@torch.no_grad()
def spliced_scores(model: Any, tokens: torch.Tensor, hook_name: str, sae: Any, loss_mask: torch.Tensor | None = None,
                   batch_size: int = 256) -> dict[str, float]:
    """Splice ``sae.reconstruct`` into ``model`` at ``hook_name`` and compare with the clean model and with
    zero-ablating the hook (SAELens's conventions).

    Args:
        model: a ``transformer_lens.TransformerBridge`` (anything with ``run_with_hooks``).
        tokens: ``[n, seq]``. loss_mask: ``[n, seq]`` bool, True at target tokens (default: every position
            after the first). sae: any object with ``reconstruct([..., d]) -> [..., d]``.

    Returns ``ce_loss_clean, ce_loss_with_sae, ce_loss_with_ablation, ce_loss_score`` (fraction of the
    ablation's CE increase that the SAE recovers: 1 = as good as clean), ``kl_div_with_sae,
    kl_div_with_ablation, kl_div_score``, ``accuracy_clean / _with_sae / _with_ablation`` and
    ``accuracy_recovered``, all averaged over target positions.
    """
    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [n, seq], got shape {tuple(tokens.shape)}")
    if loss_mask is None:
        loss_mask = torch.ones_like(tokens, dtype=torch.bool)
        loss_mask[:, 0] = False
    if loss_mask.shape != tokens.shape or loss_mask.dtype != torch.bool:
        raise ValueError(f"loss_mask must be bool with the shape of tokens {tuple(tokens.shape)}")
    if hook_name not in getattr(model, "hook_dict", {hook_name: None}):
        raise KeyError(f"model has no hook {hook_name!r}; e.g. blocks.0.hook_resid_post (see model.hook_dict)")

    def splice(act, hook):
        return sae.reconstruct(act).to(device=act.device, dtype=act.dtype)

    def ablate(act, hook):
        return torch.zeros_like(act)

    sums = {k: 0.0 for k in ("ce_c", "ce_s", "ce_a", "acc_c", "acc_s", "acc_a", "kl_s", "kl_a")}
    n_tgt = 0
    for i in range(0, tokens.shape[0], batch_size):
        tok, m = tokens[i:i + batch_size], loss_mask[i:i + batch_size]
        clean = model(tok)
        spliced = model.run_with_hooks(tok, fwd_hooks=[(hook_name, splice)])
        ablated = model.run_with_hooks(tok, fwd_hooks=[(hook_name, ablate)])
        lp_clean = torch.log_softmax(clean[:, :-1].float(), -1)[m[:, 1:]]
        for tag, logits in (("c", clean), ("s", spliced), ("a", ablated)):
            ce, acc = _masked_ce(logits, tok, m)
            sums[f"ce_{tag}"] += float(ce.sum())
            sums[f"acc_{tag}"] += float(acc.sum())
            if tag != "c":
                lp = torch.log_softmax(logits[:, :-1].float(), -1)[m[:, 1:]]
                sums[f"kl_{tag}"] += float((lp_clean.exp() * (lp_clean - lp)).sum())
        n_tgt += int(m[:, 1:].sum())
    if n_tgt == 0:
        raise ValueError("loss_mask selects no target positions")
    r = {k: v / n_tgt for k, v in sums.items()}

    def frac(clean, with_sae, ablation):
        return float((ablation - with_sae) / (ablation - clean)) if ablation != clean else float("nan")

    return {"ce_loss_clean": r["ce_c"], "ce_loss_with_sae": r["ce_s"], "ce_loss_with_ablation": r["ce_a"],
            "ce_loss_score": frac(r["ce_c"], r["ce_s"], r["ce_a"]),
            "kl_div_with_sae": r["kl_s"], "kl_div_with_ablation": r["kl_a"],
            "kl_div_score": frac(0.0, r["kl_s"], r["kl_a"]),
            "accuracy_clean": r["acc_c"], "accuracy_with_sae": r["acc_s"], "accuracy_with_ablation": r["acc_a"],
            "accuracy_recovered": frac(-r["acc_c"], -r["acc_s"], -r["acc_a"])}
