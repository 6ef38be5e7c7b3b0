"""Tutorial 02, *Training a searcher*: the masked next-token loss, exact-match scoring, accuracy by path length
and the longest path a model solves.

Cases use real :class:`toolkit.tasks.TreeSearch` batches (their ``loss_mask`` covers the path and ``END``) with
seeded random logits / predictions; positions outside the mask hold deliberate garbage, so forgetting the mask
changes the answer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toolkit.exercises.chapters._tree_batches import tree_batch as _batch
from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise
from toolkit.exercises.questions import question

# --- references -------------------------------------------------------------------------------------------


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [n, seq, vocab] predicting the next token, over the target positions.

    The logits at position t predict tokens[:, t + 1]; a position counts when loss_mask[:, t + 1] is True.
    Returns a scalar tensor.
    """
    mask = loss_mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask])


def exact_match(predicted: torch.Tensor, tokens: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """BoolTensor [n]: True where predicted [n, seq] equals tokens [n, seq] at every target position
    (loss_mask [n, seq] True); other positions are ignored, whatever they hold."""
    return ((predicted == tokens) | ~loss_mask).all(dim=1)


def accuracy_by_length(correct: torch.Tensor, length: torch.Tensor) -> dict[int, float]:
    """{path length: fraction of examples correct} for every length that occurs, in increasing order.

    correct: BoolTensor [n]; length: LongTensor [n].
    """
    return {int(L): float(correct[length == L].float().mean()) for L in torch.unique(length)}


def solved_depth(acc_by_length: dict[int, float], threshold: float = 0.9) -> int:
    """The largest L such that every length 1..L has accuracy >= threshold (0 if length 1 fails or is missing)."""
    depth = 0
    while acc_by_length.get(depth + 1, 0.0) >= threshold:
        depth += 1
    return depth


# --- plausible mistakes -----------------------------------------------------------------------------------


def _loss_no_shift(logits, tokens, loss_mask):
    return F.cross_entropy(logits[loss_mask], tokens[loss_mask])


def _loss_mask_not_shifted(logits, tokens, loss_mask):
    mask = loss_mask[:, :-1]
    return F.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask])


def _loss_no_mask(logits, tokens, loss_mask):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def _loss_sum(logits, tokens, loss_mask):
    mask = loss_mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask], reduction="sum")


def _loss_mean_of_means(logits, tokens, loss_mask):
    per = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")  # [n, seq-1]
    mask = loss_mask[:, 1:].float()
    return ((per * mask).sum(1) / mask.sum(1)).mean()


def _loss_wrong_shift(logits, tokens, loss_mask):
    mask = loss_mask[:, :-1]
    return F.cross_entropy(logits[:, 1:][mask], tokens[:, :-1][mask])


def _exact_no_mask(predicted, tokens, loss_mask):
    return (predicted == tokens).all(dim=1)


def _exact_any(predicted, tokens, loss_mask):
    return ((predicted == tokens) & loss_mask).any(dim=1)


def _exact_token_fraction(predicted, tokens, loss_mask):
    hits = ((predicted == tokens) & loss_mask).sum(1).float()
    return hits / loss_mask.sum(1).float()


def _exact_batch_mean(predicted, tokens, loss_mask):
    return exact_match(predicted, tokens, loss_mask).float().mean()


def _acc_counts(correct, length):
    return {int(L): float(correct[length == L].sum()) for L in torch.unique(length)}


def _acc_overall(correct, length):
    overall = float(correct.float().mean())
    return {int(L): overall for L in torch.unique(length)}


def _acc_range(correct, length):
    out = {}
    for L in range(1, int(length.max()) + 1):
        sel = length == L
        out[L] = float(correct[sel].float().mean()) if bool(sel.any()) else 0.0
    return out


def _depth_ignores_gaps(acc_by_length, threshold=0.9):
    good = [L for L, a in acc_by_length.items() if a >= threshold]
    return max(good) if good else 0


def _depth_first_failure(acc_by_length, threshold=0.9):
    return solved_depth(acc_by_length, threshold) + 1


def _depth_strict(acc_by_length, threshold=0.9):
    depth = 0
    while acc_by_length.get(depth + 1, 0.0) > threshold:
        depth += 1
    return depth


# --- cases ------------------------------------------------------------------------------------------------




def _loss_cases():
    out = []
    for name, (n, seed) in {"8 trees": (8, 401), "32 trees": (32, 402)}.items():
        tokens, mask, _, vocab = _batch(n, seed)
        g = torch.Generator().manual_seed(seed)
        logits = 3 * torch.randn(n, tokens.shape[1], vocab, generator=g)
        out.append((name, (logits, tokens.clone(), mask.clone())))
    tokens, mask, _, vocab = _batch(8, 403)
    logits = torch.full((8, tokens.shape[1], vocab), -4.0)
    logits.scatter_(2, tokens.roll(-1, 1)[..., None], 4.0)  # confident and right everywhere
    logits[:, :, 0] += torch.linspace(0, 6, tokens.shape[1])  # but wrong off-target
    out.append(("confident logits", (logits, tokens.clone(), mask.clone())))
    return out


def _exact_cases():
    out = []
    for name, (n, seed, p_wrong) in {"mostly right": (24, 411, 0.05), "many errors": (24, 412, 0.3)}.items():
        tokens, mask, _, vocab = _batch(n, seed)
        g = torch.Generator().manual_seed(seed)
        pred = tokens.clone()
        flip = (torch.rand(tokens.shape, generator=g) < p_wrong) & mask
        pred[flip] = (pred[flip] + 1) % vocab
        junk = ~mask & (torch.rand(tokens.shape, generator=g) < 0.5)
        pred[junk] = torch.randint(0, vocab, (int(junk.sum()),), generator=g)  # off-target positions: anything
        out.append((name, (pred, tokens.clone(), mask.clone())))
    return out


def _acc_cases():
    out = []
    for name, (n, seed, p) in {"64 examples": (64, 421, 0.7), "200 examples": (200, 422, 0.4)}.items():
        _, _, length, _ = _batch(n, seed)
        g = torch.Generator().manual_seed(seed)
        correct = torch.rand(n, generator=g) < p + 0.1 * (4 - length)  # shorter paths: more often right
        out.append((name, (correct, length.clone())))
    correct = torch.tensor([True, False, True, True, False])
    out.append(("lengths 1, 3 and 6 only", (correct, torch.tensor([3, 3, 1, 6, 6]))))
    return out


def _depth_cases():
    return [
        ("all solved", ({1: 1.0, 2: 0.99, 3: 0.95, 4: 0.91},)),
        ("fails from length 3", ({1: 1.0, 2: 0.97, 3: 0.62, 4: 0.15},)),
        ("a gap: length 3 fails, 4 passes", ({1: 0.99, 2: 0.93, 3: 0.85, 4: 0.92},)),
        ("exactly at the threshold", ({1: 0.95, 2: 0.9, 3: 0.5},)),
        ("length 1 fails", ({1: 0.4, 2: 0.2},)),
        ("custom threshold 0.5", ({1: 0.9, 2: 0.6, 3: 0.55, 4: 0.3},), {"threshold": 0.5}),
    ]


def _compare_scalar(got, expected, args):
    if isinstance(got, torch.Tensor) and got.ndim > 0:
        return (f"the loss should be a single number (a 0-d tensor), got shape {list(got.shape)}: average over "
                "the target positions")
    return diff_tensor(got, expected, name="loss", atol=1e-4, rtol=1e-4)


def _compare_flags(got, expected, args):
    return diff_tensor(got, expected, name="result")


def _compare_acc(got, expected, args):
    if isinstance(got, dict) and list(got) != sorted(got, key=lambda k: int(k)):
        return "order the dict by increasing path length"
    return diff_value(got, expected, name="accuracy by length", tol=1e-6)


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "02.next_token_loss", title="The masked next-token loss", difficulty=2, importance=5, minutes=10,
    reference=next_token_loss, cases=_loss_cases, compare=_compare_scalar,
    hints=["The logits at position t predict the token at t + 1, and only answer tokens count.",
           "Shift by one: pair the logits at positions 0 .. seq-2 with the tokens at 1 .. seq-1. `loss_mask` marks "
           "the *target* token's position, so shift it like the tokens; then keep only the masked positions.",
           "`mask = loss_mask[:, 1:]`, then `F.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask])` (boolean "
           "indexing flattens)."],
    mistakes=[Mistake("off by one position: the logits at t predict the token at t + 1, so compare logits[:, :-1] "
                      "with tokens[:, 1:]", _loss_no_shift),
              Mistake("the mask is shifted the wrong way: loss_mask marks the target token, so use loss_mask[:, 1:] "
                      "with tokens[:, 1:]", _loss_mask_not_shifted),
              Mistake("shifted the wrong way: position t predicts t + 1, not t - 1", _loss_wrong_shift),
              Mistake("you forgot the mask: only the answer positions (loss_mask) count, not the prompt or padding",
                      _loss_no_mask),
              Mistake("you summed instead of averaging over the target positions", _loss_sum),
              Mistake("you averaged per example, then over examples: average over all target positions at once "
                      "(examples with longer paths have more targets)", _loss_mean_of_means)],
)

# the training-machinery exercises (02.lr_at .. 02.teacher_forced_exact) come next in the notebook
from toolkit.exercises.chapters import ch02_training_loop  # noqa: E402,F401 - registers them here, in order

function_exercise(
    "02.exact_match", title="Exact match", difficulty=1, importance=4, minutes=5,
    reference=exact_match, cases=_exact_cases, compare=_compare_flags,
    hints=["An example is exact when every *target* position is predicted right; what the other positions hold does "
           "not matter.",
           "A position is fine if the prediction is right *or* it is not a target; an example is exact when all its "
           "positions are fine.",
           "`((predicted == tokens) | ~loss_mask).all(dim=1)`"],
    mistakes=[Mistake("you forgot the mask: positions outside loss_mask may hold anything and must be ignored",
                      _exact_no_mask),
              Mistake("one right target is not enough: every target position must match (all, not any)",
                      _exact_any),
              Mistake("that is the fraction of right tokens per example; exact match is True only when all are right",
                      _exact_token_fraction),
              Mistake("return one True/False per example (shape [n]), not the batch average", _exact_batch_mean)],
)

function_exercise(
    "02.accuracy_by_length", title="Accuracy by path length", difficulty=1, importance=3, minutes=5,
    reference=accuracy_by_length, cases=_acc_cases, compare=_compare_acc,
    hints=["Group the examples by path length and average `correct` within each group; only lengths that occur get "
           "an entry.",
           "`torch.unique(length)` lists the lengths that occur, already sorted.",
           "`{int(L): float(correct[length == L].float().mean()) for L in torch.unique(length)}`"],
    mistakes=[Mistake("those are counts of correct examples; divide by the number of examples of that length",
                      _acc_counts),
              Mistake("every length got the overall accuracy: select the examples of each length first",
                      _acc_overall),
              Mistake("only include lengths that occur in the data (no made-up zeros for missing lengths)",
                      _acc_range)],
)

function_exercise(
    "02.solved_depth", title="The longest path solved", difficulty=2, importance=3, minutes=5,
    reference=solved_depth, cases=_depth_cases,
    hints=["Walk up from length 1 and stop at the first length that is missing or below the threshold.",
           "`acc_by_length.get(L, 0.0)` treats a missing length as unsolved; reaching the threshold exactly counts "
           "(>=)."],
    mistakes=[Mistake("a length after a failure does not count: stop at the first length below the threshold",
                      _depth_ignores_gaps),
              Mistake("off by one: return the last length that passes, not the first that fails",
                      _depth_first_failure),
              Mistake("accuracy exactly at the threshold counts as solved: use >=", _depth_strict)],
)


def _depth_by_layers(depth: dict[int, int], exact: dict[int, float], max_len: int) -> str:
    """Reference answer of 02.depth_by_layers from the notebook's numbers: ``depth`` {layers: longest reliably
    solved path length}, ``exact`` {layers: exact-path accuracy}, ``max_len`` the longest path in the test set."""
    layers = sorted(depth)
    seen = ", ".join(f"{n} layer{'s' if n > 1 else ''}: {depth[n]} ({exact[n]:.0%} exact)" for n in layers)
    grows = all(depth[a] <= depth[b] for a, b in zip(layers, layers[1:], strict=False))
    beyond = [n for n in layers if depth[n] > n]
    text = (f"Longest reliably solved path length by depth here: {seen}. It "
            f"{'never shrinks' if grows else 'does not grow steadily'} with the number of layers, but it saturates: "
            f"the test set has no path longer than {max_len} edges, so 'reliable up to {max_len}' only says 'at least "
            f"{max_len}', and whether deeper models reach further cannot be read from this data. ")
    if beyond:
        n = beyond[0]
        text += (f"The {n}-layer model solves paths of {depth[n]} edges with only {n} layers, so it cannot be climbing "
                 "exactly one level per layer from the goal alone. Either several levels are covered per layer "
                 "(Brinkmann et al. describe backward chaining run in parallel from several sub-goals and merged), "
                 "or the model uses shortcuts that work on these short paths. The output alone cannot separate "
                 "the two; tutorials 03 and 04 look inside.")
    else:
        text += ("No model here solves paths longer than its number of layers, which is what 'one level per layer' "
                 "predicts; it does not prove it.")
    if depth[layers[0]] == 0:
        text += f" With {layers[0]} layer the model is not reliable even on single edges."
    return text


question("02.depth_by_layers", _depth_by_layers)
