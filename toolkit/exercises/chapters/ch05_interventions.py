"""Tutorial 05, *Does the model use it? Causal interventions*.

Exercises: the logit-difference metric, the ancestor of a node at a given depth (to build counterfactual
pairs that share or do not share it), the normalised patching effect, attention knockout, projecting a
concept out of activations, and a mean-difference steering direction. Conventions match
:mod:`toolkit.interventions` (denoising: 1 = clean behaviour restored) and :mod:`toolkit.probes`
(``project_out``, ``direction(..., method="mean_diff", normalize=False)``). Cases are seeded random tensors
and small trees from :class:`toolkit.tasks.TreeSearch`.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise

Tensor = torch.Tensor


# --- references -------------------------------------------------------------------------------------------


def logit_diff(logits: Tensor, pos: Tensor, good: Tensor, bad: Tensor) -> Tensor:
    """``logits[i, pos[i], good[i]] - logits[i, pos[i], bad[i]]`` for every example: ``[n]``.

    ``logits [n, seq, vocab]``; ``pos [n]`` is the position whose logits *predict* the answer token (one before
    the answer in the sequence); ``good`` / ``bad`` ``[n]`` are token ids.
    """
    rows = torch.arange(logits.shape[0])
    at = logits[rows, pos]  # [n, vocab]
    return at[rows, good] - at[rows, bad]


def patch_effect(patched: Tensor | float, clean: float, corrupt: float) -> Tensor | float:
    """Normalised effect of a denoising patch: ``(patched - corrupt) / (clean - corrupt)``.

    1 = patching restored the clean behaviour, 0 = no effect. Works elementwise on a tensor of scores.
    """
    return (patched - corrupt) / (clean - corrupt)


def ancestor_at_depth(parent: list[int], node: int, depth: int) -> int:
    """The ancestor of ``node`` that sits at ``depth`` in the tree (the root has depth 0; a node is its own
    ancestor at its own depth). ``parent[v]`` is v's parent, -1 for the root. Returns -1 when ``depth`` is
    deeper than ``node``."""
    chain = [node]
    while parent[chain[-1]] >= 0:
        chain.append(parent[chain[-1]])
    path = chain[::-1]  # root .. node
    return path[depth] if depth < len(path) else -1


def knockout_pattern(pattern: Tensor, block: Tensor, head: int) -> Tensor:
    """Attention knockout in one head: zero ``pattern[i, head, q, k]`` wherever ``block[i, q, k]`` is True, then
    rescale each affected query's remaining weights to sum to 1 (rows whose weights are all blocked stay 0).

    ``pattern [n, head, q, k]``, ``block [n, q, k]`` bool. Other heads are unchanged. Returns a new tensor.
    """
    out = pattern.clone()
    p = out[:, head].masked_fill(block, 0.0)
    total = p.sum(-1, keepdim=True)
    out[:, head] = torch.where(total > 0, p / total.clamp_min(1e-12), p)
    return out


def project_out(x: Tensor, directions: Tensor) -> Tensor:
    """Remove the span of ``directions [k, d]`` (not necessarily orthogonal or unit length) from ``x [..., d]``."""
    Q, _ = torch.linalg.qr(directions.T)  # [d, k] orthonormal basis of the span
    return x - (x @ Q) @ Q.T


def mean_diff_direction(acts: Tensor, labels: Tensor, target: int) -> Tensor:
    """Steering direction ``[d]``: mean of the rows of ``acts [n, d]`` whose label is ``target`` minus the mean of
    the other rows (not normalised, so its length is the typical gap between the two groups)."""
    is_t = labels == target
    return acts[is_t].mean(0) - acts[~is_t].mean(0)


# --- plausible mistakes -----------------------------------------------------------------------------------


def _ld_next_pos(logits, pos, good, bad):
    return logit_diff(logits, (pos + 1).clamp(max=logits.shape[1] - 1), good, bad)


def _ld_probs(logits, pos, good, bad):
    return logit_diff(logits.softmax(-1), pos, good, bad)


def _ld_reversed(logits, pos, good, bad):
    return -logit_diff(logits, pos, good, bad)


def _ld_broadcast(logits, pos, good, bad):
    return logits[:, pos, good] - logits[:, pos, bad]


def _effect_flipped(patched, clean, corrupt):
    return (clean - patched) / (clean - corrupt)


def _effect_unnormalised(patched, clean, corrupt):
    return patched - corrupt


def _effect_ratio(patched, clean, corrupt):
    return patched / clean


def _anc_steps_up(parent, node, depth):
    for _ in range(depth):
        if parent[node] < 0:
            return -1
        node = parent[node]
    return node


def _anc_one_based(parent, node, depth):
    return ancestor_at_depth(parent, node, depth - 1) if depth >= 1 else -1


def _anc_never_self(parent, node, depth):
    out = ancestor_at_depth(parent, node, depth)
    return -1 if out == node else out


def _anc_clamped(parent, node, depth):
    chain = [node]
    while parent[chain[-1]] >= 0:
        chain.append(parent[chain[-1]])
    path = chain[::-1]
    return path[min(depth, len(path) - 1)]


def _ko_no_renorm(pattern, block, head):
    out = pattern.clone()
    out[:, head] = out[:, head].masked_fill(block, 0.0)
    return out


def _ko_all_heads(pattern, block, head):
    p = pattern.masked_fill(block[:, None], 0.0)
    total = p.sum(-1, keepdim=True)
    return torch.where(total > 0, p / total.clamp_min(1e-12), p)


def _ko_inverted(pattern, block, head):
    return knockout_pattern(pattern, ~block, head)


def _ko_renorm_keys(pattern, block, head):
    out = pattern.clone()
    p = out[:, head].masked_fill(block, 0.0)
    total = p.sum(-2, keepdim=True)
    out[:, head] = torch.where(total > 0, p / total.clamp_min(1e-12), p)
    return out


def _po_separately(x, directions):
    out = x
    for v in directions:
        u = v / v.norm()
        out = out - (x @ u)[..., None] * u
    return out


def _po_first_only(x, directions):
    u = directions[0] / directions[0].norm()
    return x - (x @ u)[..., None] * u


def _po_unnormalised(x, directions):
    out = x
    for v in directions:
        out = out - (out @ v)[..., None] * v
    return out


def _po_kept(x, directions):
    Q, _ = torch.linalg.qr(directions.T)
    return (x @ Q) @ Q.T


def _md_reversed(acts, labels, target):
    return -mean_diff_direction(acts, labels, target)


def _md_overall_mean(acts, labels, target):
    return acts[labels == target].mean(0) - acts.mean(0)


def _md_normalised(acts, labels, target):
    v = mean_diff_direction(acts, labels, target)
    return v / v.norm()


# --- cases ------------------------------------------------------------------------------------------------


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ld_cases():
    out = []
    for k, (n, seq, vocab) in enumerate(((6, 10, 12), (4, 7, 20), (1, 5, 8))):
        g = _g(500 + k)
        logits = torch.randn(n, seq, vocab, generator=g) * 3
        pos = torch.randint(1, seq - 1, (n,), generator=g)
        good = torch.randint(0, vocab, (n,), generator=g)
        bad = (good + 1 + torch.randint(0, vocab - 1, (n,), generator=g)) % vocab
        out.append((f"{n} examples, {seq} positions, vocabulary {vocab}", (logits, pos, good, bad)))
    return out


def _effect_cases():
    g = _g(510)
    grid = torch.rand(4, 9, generator=g) * 5 - 1  # a [layers, positions] patching sweep
    return [("a [4, 9] patching sweep, clean 3.5, corrupt -1.0", (grid, 3.5, -1.0)),
            ("single scores", (torch.tensor([0.2, 2.0, 1.1]), 2.0, 0.2)),
            ("a metric that is lower when clean (e.g. loss)", (torch.tensor([0.5, 0.9, 1.3]), 0.4, 1.6))]


def _pattern(n: int, heads: int, seq: int, g: torch.Generator) -> Tensor:
    scores = torch.randn(n, heads, seq, seq, generator=g) * 2
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def _anc_cases():
    from toolkit.tasks import TreeSearch

    data = TreeSearch(n_nodes=8, max_path=4).generate(4, seed=560, split="test")
    out = []
    for i in range(4):
        tree = data.structures[i]
        d = tree.depth(tree.goal)
        for depth in sorted({1, max(d - 1, 0), d}):
            out.append((f"tree {i + 1}: the goal {tree.goal} (depth {d}), ancestor at depth {depth}",
                        (list(tree.parent), tree.goal, depth)))
    chain = [-1, 0, 1, 2, 3]  # 0 -> 1 -> 2 -> 3 -> 4
    out += [("a chain, the root itself", (chain, 4, 0)), ("deeper than the node: -1", (chain, 2, 4))]
    return out


def _ko_cases():
    out = []
    for k, (n, heads, seq, head) in enumerate(((3, 2, 7, 0), (2, 3, 8, 2))):
        g = _g(530 + k)
        pat = _pattern(n, heads, seq, g)
        block = torch.zeros(n, seq, seq, dtype=torch.bool)
        block[:, torch.arange(1, seq), torch.arange(0, seq - 1)] = True  # queries may not see the previous token
        block[:, 0, 0] = True  # position 0 can see nothing else: its row stays all zero
        out.append((f"block the previous token, head {head} of {heads}", (pat, block, head)))
    return out


def _po_cases():
    g = _g(540)
    d = 6
    dirs = torch.randn(2, d, generator=g)
    dirs[1] = dirs[1] + 2 * dirs[0]  # far from orthogonal
    return [("two non-orthogonal directions, x [10, 6]", (torch.randn(10, d, generator=g), dirs)),
            ("one direction of length 3, x [4, 5, 6]", (torch.randn(4, 5, d, generator=g),
                                                       3 * torch.randn(1, d, generator=g))),
            ("three random directions, x [8, 6]", (torch.randn(8, d, generator=g), torch.randn(3, d, generator=g)))]


def _md_cases():
    g = _g(550)
    acts = torch.randn(40, 5, generator=g)
    labels = torch.randint(0, 4, (40,), generator=g)
    acts[labels == 2] += torch.tensor([3.0, 0, 0, -1, 0])
    acts2 = torch.randn(30, 3, generator=g) + 1
    labels2 = (torch.arange(30) % 3 == 0).long()
    return [("4 classes, target 2", (acts, labels, 2)), ("binary labels, target 1", (acts2, labels2, 1)),
            ("binary labels, target 0", (acts2, labels2, 0))]


# --- comparisons ------------------------------------------------------------------------------------------


def _cmp_int(got: Any, expected: int, args: tuple) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = int(got)
    return diff_value(got, expected, name="ancestor")


def _cmp(name: str):
    def compare(got: Any, expected: Any, args: tuple) -> str | None:
        if isinstance(expected, float):
            expected = torch.tensor(expected)
        return diff_tensor(got, expected, name=name)

    return compare


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "05.logit_diff", title="The logit difference", difficulty=2, importance=5, minutes=10,
    reference=logit_diff, cases=_ld_cases, compare=_cmp("logit difference"),
    hints=["For each example you need one row of logits (the one at its own position pos[i]), and from that row two "
           "entries: the good token's minus the bad token's.",
           "Index with tensors of example numbers so that example i is paired with its own position and its own "
           "tokens; first pick the [n, vocab] rows, then the two columns.",
           "`rows = torch.arange(n)`, `at = logits[rows, pos]`, then `at[rows, good] - at[rows, bad]`."],
    mistakes=[Mistake("you read the logits one position too late: the logits at position `pos` already predict "
                      "the answer (the model predicts the *next* token)", _ld_next_pos),
              Mistake("use the raw logits, not probabilities: the logit difference is linear in the residual "
                      "stream, so patching effects add up", _ld_probs),
              Mistake("the sign is flipped: compute logit(good) - logit(bad)", _ld_reversed),
              Mistake("`logits[:, pos, good]` pairs every example with every position: index the rows too "
                      "(`logits[rows, pos]` with `rows = torch.arange(n)`)", _ld_broadcast)],
)

function_exercise(
    "05.ancestor_at_depth", title="The ancestor at a given depth", difficulty=2, importance=4, minutes=8,
    reference=ancestor_at_depth, cases=_anc_cases, compare=_cmp_int,
    hints=["Walk up from `node` with `parent` until you reach the root (parent -1), collecting the nodes.",
           "Reverse the list: now index 0 is the root (depth 0) and index k is the ancestor at depth k.",
           "Return `path[depth]`, or -1 when `depth` is past the end of the path."],
    mistakes=[Mistake("depth counts down from the root (the root has depth 0), not steps up from the node",
                      _anc_steps_up),
              Mistake("the root has depth 0, so depth 1 is the root's child on the way to the node",
                      _anc_one_based),
              Mistake("a node is its own ancestor at its own depth: return the node itself there", _anc_never_self),
              Mistake("return -1 when the depth is deeper than the node, not the node itself", _anc_clamped)],
)

function_exercise(
    "05.patch_effect", title="Normalise a patching effect", difficulty=1, importance=4, minutes=5,
    reference=patch_effect, cases=_effect_cases, compare=_cmp("normalised effect"),
    hints=["Map the corrupted score to 0 and the clean score to 1, linearly.",
           "`(patched - corrupt) / (clean - corrupt)`"],
    mistakes=[Mistake("your scale is flipped: the clean score should map to 1 and the corrupted score to 0",
                      _effect_flipped),
              Mistake("divide by the gap between the clean and corrupted scores, so 1 means fully restored",
                      _effect_unnormalised),
              Mistake("measure the change from the *corrupted* baseline, relative to the clean-corrupt gap "
                      "(a ratio to the clean score is not 0 when nothing changed)", _effect_ratio)],
)

function_exercise(
    "05.knockout_pattern", title="Attention knockout", difficulty=3, importance=4, minutes=15,
    reference=knockout_pattern, cases=_ko_cases, compare=_cmp("pattern"),
    hints=["Only one head changes: zero its blocked entries, then rescale each query's remaining weights so they sum "
           "to 1 again; a query whose weights are all blocked stays at 0. Do not modify the input.",
           "Work on a copy and on `[:, head]` only, a [n, q, k] tensor like `block`; divide each query row by its "
           "new sum over the keys, except where that sum is 0.",
           "`out = pattern.clone()`, `p = out[:, head].masked_fill(block, 0.0)`, `total = p.sum(-1, keepdim=True)`, "
           "`out[:, head] = torch.where(total > 0, p / total.clamp_min(1e-12), p)`."],
    mistakes=[Mistake("after zeroing the blocked entries, rescale each query's remaining weights so they sum to "
                      "1 again (blocking a score before the softmax does exactly that)", _ko_no_renorm),
              Mistake("only `head` should be changed; the other heads keep their patterns", _ko_all_heads),
              Mistake("you knocked out the entries that should stay: zero where `block` is True", _ko_inverted),
              Mistake("renormalise over the keys (the last dimension): each query's attention sums to 1",
                      _ko_renorm_keys)],
)

function_exercise(
    "05.mean_diff_direction", title="A steering direction", difficulty=1, importance=4, minutes=5,
    reference=mean_diff_direction, cases=_md_cases, compare=_cmp("direction"),
    hints=["The direction from the other rows to the target rows: the difference of the two groups' means, not "
           "normalised.",
           "Split the rows with the boolean mask `labels == target` and its negation; average each group over the "
           "rows (dim 0).",
           "`acts[labels == target].mean(0) - acts[labels != target].mean(0)`"],
    mistakes=[Mistake("the direction points away from the target class: target mean minus the others' mean",
                      _md_reversed),
              Mistake("subtract the mean of the *other* rows, not the mean of all rows", _md_overall_mean),
              Mistake("do not normalise: the raw difference has the typical size of the gap, which sets a "
                      "sensible steering scale", _md_normalised)],
)

function_exercise(
    "05.project_out", title="Erase a subspace", difficulty=2, importance=5, minutes=10,
    reference=project_out, cases=_po_cases, compare=_cmp("erased activations"),
    hints=["Projecting out several directions one at a time is only correct when they are orthonormal.",
           "`Q, _ = torch.linalg.qr(directions.T)` gives a [d, k] matrix whose columns are an orthonormal basis of "
           "the same span.",
           "`x - (x @ Q) @ Q.T` works for any number of leading dimensions in x."],
    mistakes=[Mistake("the directions are not orthogonal: subtracting each projection separately removes some "
                      "components twice. Orthonormalise them first (`torch.linalg.qr(directions.T)`)",
                      _po_separately),
              Mistake("remove the span of *all* the directions, not only the first one", _po_first_only),
              Mistake("the directions are not unit length: normalise (or orthonormalise) them before projecting",
                      _po_unnormalised),
              Mistake("you returned the part of x *inside* the span; erasing keeps the rest: `x - projection`",
                      _po_kept)],
)
