"""Score a model on a :class:`~toolkit.tasks.base.SearchDataset`: teacher-forced and greedy generation.

Greedy rule (the same for every task): walk the positions ``t >= prompt_len``; at target positions
(``loss_mask``) write the model's argmax prediction, so later predictions see the model's *own* earlier
outputs; at non-target positions keep the true token. An example is *exact* when every target prediction equals
the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from toolkit._result import frame, plain
from toolkit._threads import torch_threads

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


num_threads = torch_threads  # the toolkit's one thread limiter, under the name models exports


def target_loss(logits: torch.Tensor, tokens: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits [n, seq, V]`` predicting ``tokens[:, 1:]`` where ``loss_mask[:, 1:]``."""
    mask = loss_mask[:, 1:]
    if not bool(mask.any()):
        raise ValueError("loss_mask has no target positions (all False after position 0); nothing to score")
    return F.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask])


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


@torch.no_grad()
def greedy_generate(model: Any, tokens: torch.Tensor, loss_mask: torch.Tensor, prompt_len: torch.Tensor,
                    batch_size: int = 512) -> torch.Tensor:
    """Greedy completion: ``tokens [n, seq]`` with every generated target position replaced by the model's
    prediction given its own earlier predictions (non-target positions keep the true token).

    Returns LongTensor ``[n, seq]`` (on CPU).
    """
    device = _device_of(model)
    n, seq = tokens.shape
    positions = torch.arange(seq)
    gen = loss_mask & (positions[None, :] >= prompt_len[:, None]) & (positions[None, :] > 0)
    out = tokens.clone()
    for start in range(0, n, batch_size):
        chunk = out[start:start + batch_size].to(device)
        g = gen[start:start + batch_size].to(device)
        for t in torch.nonzero(g.any(0)).flatten().tolist():
            rows = g[:, t]
            logits = model(chunk[rows, :t])  # causal: the prediction for t only needs tokens < t
            chunk[rows, t] = logits[:, -1].argmax(-1)
        out[start:start + batch_size] = chunk.cpu()
    return out


@dataclass
class EvalResult:
    """Accuracies of one model on one dataset (all fractions in [0, 1]).

    Attributes:
        n: examples scored.
        exact: greedy-generation exact-match accuracy (all targets right, own outputs fed back).
        exact_teacher_forced: exact match when every target is predicted from the true prefix.
        first_token: accuracy of each example's first target token.
        token: teacher-forced accuracy over all target tokens.
        token_greedy: greedy accuracy over all target tokens (e.g. per-query accuracy for multi-query tasks).
        loss: mean cross-entropy over target tokens.
        by_difficulty: ``{difficulty: {"n", "exact", "token_greedy"}}`` from ``data.meta["difficulty"]``.
        correct: BoolTensor ``[n]``, greedy exact per example.
        predictions: LongTensor ``[n, seq]``, the greedy completions.
    """

    n: int
    exact: float
    exact_teacher_forced: float
    first_token: float
    token: float
    token_greedy: float
    loss: float
    by_difficulty: dict[Any, dict[str, float]] = field(default_factory=dict)
    correct: torch.Tensor | None = field(default=None, repr=False)
    predictions: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no tensors)."""
        keys = ("n", "exact", "exact_teacher_forced", "first_token", "token", "token_greedy", "loss")
        d: dict[str, Any] = {k: getattr(self, k) for k in keys}
        d["by_difficulty"] = {str(k): v for k, v in self.by_difficulty.items()}
        return plain(d)

    def table(self) -> Any:
        """One row per difficulty (``difficulty, n, exact, token_greedy``) and a last row ``"all"``."""
        rows = [{"difficulty": k, **v} for k, v in self.by_difficulty.items()]
        rows.append({"difficulty": "all", "n": self.n, "exact": self.exact, "token_greedy": self.token_greedy})
        return frame(rows, ["difficulty", "n", "exact", "token_greedy"])

    def __str__(self) -> str:
        lines = [f"{self.n} examples: exact (greedy) {self.exact:.1%}, teacher-forced exact "
                 f"{self.exact_teacher_forced:.1%}, first token {self.first_token:.1%}, token "
                 f"{self.token:.1%} (greedy {self.token_greedy:.1%}), loss {self.loss:.4f}"]
        for k, v in self.by_difficulty.items():
            lines.append(f"  difficulty {k}: exact {v['exact']:.1%} (n={int(v['n'])})")
        return "\n".join(lines)


def evaluate(model: Any, data: Any, batch_size: int = 512, threads: int | None = 1) -> EvalResult:
    """Teacher-forced and greedy accuracy of ``model`` on ``data`` (a SearchDataset).

    ``model`` is called as ``model(tokens [m, t]) -> logits [m, t, V]``, so hooks attached to a bridge
    (``with model.hooks(...)``) are honoured, e.g. to score an ablated model. ``threads``: torch CPU threads
    while evaluating (see :func:`num_threads`; None keeps the current setting).
    """
    with num_threads(threads), torch.no_grad():
        return _evaluate(model, data, batch_size)


def _evaluate(model: Any, data: Any, batch_size: int) -> EvalResult:
    for attr in ("tokens", "loss_mask", "prompt_len"):
        if not hasattr(data, attr):
            raise TypeError(f"evaluate() needs a SearchDataset (from task.generate(n)); got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("evaluate() got an empty dataset; generate at least one example")
    d_vocab = getattr(getattr(model, "cfg", None), "d_vocab", None)
    if d_vocab is not None and int(data.tokens.max()) >= d_vocab:
        raise ValueError(f"the data uses token id {int(data.tokens.max())} but the model's vocabulary has only "
                         f"{d_vocab} tokens; evaluate the model on data from the task it was built for")
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        device = _device_of(model)
        tokens, mask = data.tokens, data.loss_mask
        n = tokens.shape[0]
        tf_pred = torch.empty_like(tokens[:, 1:])
        loss_sum, n_targets = 0.0, int(mask[:, 1:].sum())
        if n_targets == 0:
            raise ValueError("the dataset has no target positions (loss_mask is all False)")
        for s in range(0, n, batch_size):
            tok = tokens[s:s + batch_size].to(device)
            logits = model(tok)
            m = mask[s:s + batch_size, 1:].to(device)
            if m.any():
                loss_sum += float(F.cross_entropy(logits[:, :-1][m], tok[:, 1:][m], reduction="sum"))
            tf_pred[s:s + batch_size] = logits[:, :-1].argmax(-1).cpu()
        greedy = greedy_generate(model, tokens, mask, data.prompt_len, batch_size)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()

    tmask = mask[:, 1:]
    tf_ok = (tf_pred == tokens[:, 1:]) | ~tmask
    g_ok = (greedy == tokens) | ~mask
    has_target = tmask.any(1)
    first = tmask.float().argmax(1)
    first_ok = tf_ok[torch.arange(n), first][has_target]
    correct = g_ok.all(1) & has_target
    g_tok = ((greedy == tokens) & mask).sum(1)
    result = EvalResult(
        n=n,
        exact=float(correct.float().mean()),
        exact_teacher_forced=float((tf_ok.all(1) & has_target).float().mean()),
        first_token=float(first_ok.float().mean()) if len(first_ok) else float("nan"),
        token=float((tf_pred == tokens[:, 1:])[tmask].float().mean()),
        token_greedy=float(g_tok.sum() / mask.sum()),
        loss=loss_sum / n_targets,
        correct=correct,
        predictions=greedy,
    )
    difficulty = getattr(data, "meta", {}).get("difficulty")
    if difficulty is not None:
        for value in torch.unique(difficulty).tolist():
            sel = difficulty == value
            result.by_difficulty[value] = {
                "n": int(sel.sum()),
                "exact": float(correct[sel].float().mean()),
                "token_greedy": float(g_tok[sel].sum() / mask[sel].sum().clamp(min=1)),
            }
    return result
