"""The decision rows every signature test reads: activations at the decision points, with their candidates.

One *row* = one decision point (example, position). :func:`decision_rows` caches the model's (and the twin's)
residual stream there with :func:`toolkit.activations.cache` and lines up, per row, the candidate token ids,
their scores, the chosen candidate and the trivial baseline features from ``task.candidates(data)``
(:class:`toolkit.tasks.base.Candidates`). Rows are split into train / test by *example* (seeded), so a probe is
never scored on a decision point of an example it was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from toolkit import activations


@dataclass
class DecisionRows:
    """Per-row arrays (``R`` rows, ``K`` candidate slots, ``V`` tokens in the vocabulary).

    Attributes:
        acts: hook name -> model activations ``[R, d]``.
        twin_acts: hook name -> the twin's activations ``[R, d]`` (same rows), or None.
        ids: candidate token ids ``[R, K]`` (-1 = no candidate in that slot).
        score: candidate scores ``[R, K]`` (lower is better; NaN in empty slots).
        chosen: slot of the chosen candidate ``[R]``.
        current: the token at the decision point ``[R]``.
        baseline: trivial features ``[R, f]``; ``baseline_name`` says what they are.
        example, position: ``[R]`` where each row comes from.
        test: BoolTensor ``[R]``: rows of the held-out examples.
        n_vocab: ``V``.
    """

    acts: dict[str, torch.Tensor]
    twin_acts: dict[str, torch.Tensor] | None
    ids: torch.Tensor
    score: torch.Tensor
    chosen: torch.Tensor
    current: torch.Tensor
    baseline: torch.Tensor
    baseline_name: str
    example: torch.Tensor
    position: torch.Tensor
    test: torch.Tensor
    n_vocab: int

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def hooks(self) -> list[str]:
        return list(self.acts)

    def membership(self) -> torch.Tensor:
        """``[R, V]`` float 0/1: is token v a candidate at this row (chosen or not)."""
        out = torch.zeros(len(self), self.n_vocab + 1)
        out.scatter_(1, torch.where(self.ids >= 0, self.ids, self.n_vocab), 1.0)
        return out[:, : self.n_vocab]

    def nonchosen(self) -> torch.Tensor:
        """``[R, K]`` bool: the slots that hold a candidate the model did not pick."""
        slot = torch.arange(self.ids.shape[1])[None, :]
        return (self.ids >= 0) & (slot != self.chosen[:, None])


def default_hooks(model: Any) -> list[str]:
    """The residual stream entering every block (``blocks.L.hook_resid_pre``, L = 0..n_layers-1): the embeddings
    and every layer before the last. The final residual is left out: there the pick is already the output. A
    1-layer model would keep only the embeddings (which know nothing about the prompt), so there the final
    residual ``blocks.0.hook_resid_post`` is added."""
    hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    return hooks + (["blocks.0.hook_resid_post"] if model.cfg.n_layers == 1 else [])


def decision_rows(model: Any, data: Any, candidates: Any, hooks: list[str], twin: Any = None,
                  test_frac: float = 0.3, seed: int = 0, progress: bool = True) -> DecisionRows:
    """Cache ``hooks`` at the decision points of ``data`` for ``model`` (and ``twin``) and line up the rows.

    Args:
        candidates: ``task.candidates(data)`` (a :class:`toolkit.tasks.base.Candidates`).
        test_frac: fraction of examples held out for scoring.
    """
    dec = candidates.decision
    if int(dec.sum()) == 0:
        raise ValueError("the data has no decision points (candidates.decision is all False); generate more "
                         "examples or check the task's candidates()")
    acts = activations.cache(model, data, hooks=hooks, positions=dec, progress=progress)
    twin_acts = None
    if twin is not None:
        t = activations.cache(twin, data, hooks=hooks, positions=dec, progress=progress)
        twin_acts = {h: t[h] for h in hooks}
    ex, pos = acts.example_index, acts.position
    n_ex = len(data)
    g = torch.Generator().manual_seed(seed)
    n_test = max(1, int(round(test_frac * n_ex)))
    test_ex = torch.zeros(n_ex, dtype=torch.bool)
    test_ex[torch.randperm(n_ex, generator=g)[:n_test]] = True
    return DecisionRows(
        acts={h: acts[h] for h in hooks}, twin_acts=twin_acts,
        ids=candidates.ids[ex, pos], score=candidates.score[ex, pos].float(), chosen=candidates.chosen[ex, pos],
        current=data.tokens[ex, pos], baseline=candidates.baseline_features[ex, pos].float(),
        baseline_name=candidates.baseline_name, example=ex, position=pos, test=test_ex[ex],
        n_vocab=len(data.task.vocab))
