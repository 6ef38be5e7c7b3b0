"""Attribution patching: a linear estimate of every head's activation-patching effect from one backward pass.

    est = circuits.attribution_patching(model, clean, corrupt, metric="logit_diff")
    est.estimate                          # [n_layers, n_heads]
    agr = circuits.patching_agreement(model, clean, corrupt, metric="logit_diff")
    agr["pearson"], agr["spearman"], agr["top_k_overlap"]

Activation patching of head ``(l, h)`` here means: run the **clean** input with that head's ``hook_z`` (at every
position, every example) taken from the corrupted run, and measure the change of the metric ``M``
(``"logit_diff"`` / ``"prob"`` / ``"kl"`` or a callable ``(logits, clean, corrupt) -> tensor`` as in
:func:`toolkit.interventions.patching`). Attribution patching (Nanda 2023; Syed et al. 2023) replaces the
``n_layers * n_heads`` patched runs by a first-order Taylor expansion around the clean run::

    M(patched) - M(clean) ~= sum_{n, pos, d} (z_corrupt - z_clean)[n, pos, l, h, d] * dM/dz[n, pos, l, h, d]

with the gradient from one forward + backward pass on the clean input (all examples in one batch: ``M`` is a mean
over them) and ``z_corrupt`` from one corrupted forward pass. ``per_position=True`` keeps the sum per position
(``[n_layers, n_heads, seq]``). The estimate is exact when ``M`` is linear in the head's output (e.g. a direct
path to a logit difference, no LayerNorm in between) and degrades where the patch moves the model far, e.g. past
a saturated softmax. :func:`patching_agreement` measures how far: it runs the real patching of every head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from toolkit._result import frame, plain
from toolkit._threads import torch_threads
from toolkit.activations.cache import _device
from toolkit.activations.positions import tokens_of
from toolkit.circuits.components import metric_name, run_cache
from toolkit.interventions.core import logits as run_logits
from toolkit.interventions.patching import metric_tensor, patching


@dataclass
class AttributionPatchingResult:
    """Estimated effect of patching each head's corrupted ``hook_z`` into the clean run.

    Attributes:
        estimate: ``[n_layers, n_heads]`` (summed over positions); per_position: ``[n_layers, n_heads, seq]``.
        clean, corrupt: the metric on the clean and corrupted runs.
    """

    estimate: torch.Tensor
    per_position: torch.Tensor
    clean: float
    corrupt: float
    metric: str
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self) -> Any:
        """One row per head: ``layer``, ``head``, ``estimate`` (a DataFrame)."""
        return frame([{"layer": layer, "head": h, "estimate": float(self.estimate[layer, h])}
                      for layer in range(self.estimate.shape[0]) for h in range(self.estimate.shape[1])])

    def to_dict(self) -> dict[str, Any]:
        return plain({"metric": self.metric, "clean": self.clean, "corrupt": self.corrupt,
                      "estimate": self.estimate, "meta": self.meta})

    def __repr__(self) -> str:
        return (f"AttributionPatchingResult({self.metric}: clean {self.clean:.3f}, corrupt {self.corrupt:.3f}; "
                f"estimates for {tuple(self.estimate.shape)} heads)")


def attribution_patching(model: Any, clean: Any, corrupt: Any, metric: str | Callable = "logit_diff"
                         ) -> AttributionPatchingResult:
    """The linear estimate of every head's patching effect (see the module docstring); all examples at once."""
    L = model.cfg.n_layers
    hooks = [f"blocks.{layer}.attn.hook_z" for layer in range(L)]
    clean_lg = run_logits(model, clean, len(tokens_of(clean)))
    fn = metric_tensor(metric, clean, corrupt, clean_lg)
    z_corrupt = run_cache(model, corrupt, hooks, len(tokens_of(corrupt)))  # {hook: [n, seq, H, d_head]}
    grabbed: dict[str, torch.Tensor] = {}

    def grabber(name: str) -> Callable:
        def grab(t: torch.Tensor, hook: Any) -> torch.Tensor:
            grabbed[name] = t
            return t
        return grab

    with torch.enable_grad(), torch_threads(1), model.hooks(fwd_hooks=[(h, grabber(h)) for h in hooks]):
        lg = model(tokens_of(clean).to(_device(model)))
        m = fn(lg.float())
        if not isinstance(m, torch.Tensor) or not m.requires_grad:
            raise TypeError("attribution patching needs a metric that returns a tensor computed from the logits "
                            "(differentiable); a callable metric must not convert to float")
        z_clean = [grabbed[h] for h in hooks]
        grads = torch.autograd.grad(m, z_clean)
    per_pos = torch.stack([
        torch.einsum("npht,npht->hp", (z_corrupt[h].to(g) - z.detach()), g).cpu()
        for h, z, g in zip(hooks, z_clean, grads, strict=True)])  # [L, H, seq]
    corrupt_lg = run_logits(model, corrupt, len(tokens_of(corrupt)))
    label = metric_name(metric)
    return AttributionPatchingResult(per_pos.sum(-1), per_pos, float(fn(clean_lg)), float(fn(corrupt_lg)), label)


def real_patching_effects(model: Any, clean: Any, corrupt: Any, metric: str | Callable = "logit_diff",
                          batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """``[n_layers, n_heads]``: the real change of the metric when one head's corrupted ``hook_z`` (every position)
    is patched into the clean run, via :func:`toolkit.interventions.patching` (source = corrupt, run = clean)."""
    clean_lg = run_logits(model, clean, batch_size)
    fn = metric_tensor(metric, clean, corrupt, clean_lg)
    res = patching(model, corrupt, clean, hooks="blocks.*.attn.hook_z", per="head", batch_size=batch_size,
                   metric=lambda lg, *_: float(fn(lg)), progress=progress)
    return res.scores - float(fn(clean_lg))


def agreement(estimate: torch.Tensor, truth: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Pearson and Spearman correlation of two effect maps (flattened) and the overlap of their top-``k``
    entries by absolute value (``|top_k(estimate) & top_k(truth)| / k``)."""
    from scipy.stats import pearsonr, spearmanr

    e, t = estimate.flatten().double().numpy(), truth.flatten().double().numpy()
    if e.shape != t.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and truth {tuple(truth.shape)} differ in shape")
    k = min(k, len(e))
    top_e = set(torch.as_tensor(abs(e)).argsort(descending=True)[:k].tolist())
    top_t = set(torch.as_tensor(abs(t)).argsort(descending=True)[:k].tolist())
    return {"pearson": float(pearsonr(e, t)[0]), "spearman": float(spearmanr(e, t)[0]),
            "top_k_overlap": len(top_e & top_t) / k, "k": k}


def patching_agreement(model: Any, clean: Any, corrupt: Any, metric: str | Callable = "logit_diff", k: int = 5,
                       estimate: torch.Tensor | None = None, batch_size: int = 256, progress: bool = False
                       ) -> dict[str, Any]:
    """How well attribution patching matches real patching of every head: :func:`agreement` of the estimate
    (``estimate=``, or :func:`attribution_patching`'s) with :func:`real_patching_effects`, plus both maps."""
    est = attribution_patching(model, clean, corrupt, metric).estimate if estimate is None else estimate
    truth = real_patching_effects(model, clean, corrupt, metric, batch_size, progress)
    return {**agreement(est, truth, k), "estimate": est, "truth": truth}
