"""Tutorial 03, *Looking inside*: scoring attention heads from cached attention patterns.

Patterns are seeded random causal attention (rows sum to 1) over :class:`toolkit.tasks.TreeSearch` layouts, with
a head planted to do the thing being scored, so a right answer and the common slips give clearly different
numbers.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from toolkit.exercises.chapters.ch03_interventions import register_caching, register_interventions
from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise
from toolkit.exercises.questions import question

# --- references -------------------------------------------------------------------------------------------


def edge_score(pattern: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Per head: mean attention from each edge's target token T_B to the token just before it (its source S_A).

    pattern: [n, head, seq, seq] attention probabilities (query, key); target_mask: BoolTensor [n, seq], True
    at the target tokens. Returns [head].
    """
    before = pattern.diagonal(offset=-1, dim1=2, dim2=3)  # [n, head, seq - 1]: query t + 1 -> key t
    return before.transpose(1, 2)[target_mask[:, 1:]].mean(0)


def attention_between(pattern: torch.Tensor, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
    """Per head: mean over examples of the attention from position query_pos[i] to position key_pos[i].

    pattern: [n, head, seq, seq] (query, key); query_pos, key_pos: LongTensor [n]. Returns [head].
    """
    rows = torch.arange(pattern.shape[0])
    return pattern[rows, :, query_pos, key_pos].mean(0)


def top_heads(scores: torch.Tensor, k: int) -> list[tuple[int, int]]:
    """The k (layer, head) pairs with the highest scores [n_layers, n_heads], best first."""
    n_heads = scores.shape[1]
    best = scores.flatten().argsort(descending=True)[:k]
    return [(int(i) // n_heads, int(i) % n_heads) for i in best]


# --- plausible mistakes -----------------------------------------------------------------------------------


def _edge_swapped(pattern, target_mask):
    after = pattern.diagonal(offset=1, dim1=2, dim2=3)  # query t -> key t + 1 (always 0: causal)
    return after.transpose(1, 2)[target_mask[:, :-1]].mean(0)


def _edge_self(pattern, target_mask):
    return pattern.diagonal(dim1=2, dim2=3).transpose(1, 2)[target_mask].mean(0)


def _edge_no_mask(pattern, target_mask):
    return pattern.diagonal(offset=-1, dim1=2, dim2=3).mean((0, 2))


def _edge_sum(pattern, target_mask):
    return pattern.diagonal(offset=-1, dim1=2, dim2=3).transpose(1, 2)[target_mask[:, 1:]].sum(0)


def _edge_heads_pooled(pattern, target_mask):
    return edge_score(pattern, target_mask).mean()


def _between_swapped(pattern, query_pos, key_pos):
    return attention_between(pattern, key_pos, query_pos)


def _between_broadcast(pattern, query_pos, key_pos):
    return pattern[:, :, query_pos, key_pos].mean(0)  # [head, n]: every example with every example's positions


def _between_no_mean(pattern, query_pos, key_pos):
    return pattern[torch.arange(pattern.shape[0]), :, query_pos, key_pos]


def _top_ascending(scores, k):
    n_heads = scores.shape[1]
    return [(int(i) // n_heads, int(i) % n_heads) for i in scores.flatten().argsort()[:k]]


def _top_head_layer(scores, k):
    return [(h, layer) for layer, h in top_heads(scores, k)]


def _top_flat(scores, k):
    return [int(i) for i in scores.flatten().argsort(descending=True)[:k]]


def _top_wrong_divisor(scores, k):
    n_layers = scores.shape[0]
    return [(int(i) // n_layers, int(i) % n_layers) for i in scores.flatten().argsort(descending=True)[:k]]


# --- cases ------------------------------------------------------------------------------------------------


def causal_pattern(n: int, heads: int, seq: int, seed: int) -> torch.Tensor:
    """Random causal attention [n, head, seq, seq]: each query's weights over keys <= query sum to 1."""
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, heads, seq, seq, generator=g)
    logits = logits.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
    return logits.softmax(-1)


@lru_cache(maxsize=2)
def _tree_layout(n: int, seed: int):
    from toolkit.tasks import TreeSearch

    task = TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(n, seed=seed, split="test")
    return data, task


def _edge_cases():
    out = []
    for name, (n, heads, seed) in {"2 heads, 6 trees": (6, 2, 501), "4 heads, 12 trees": (12, 4, 502)}.items():
        data, task = _tree_layout(n, seed)
        mask = task.positions(data, "target")
        pattern = causal_pattern(n, heads, data.tokens.shape[1], seed)
        # plant an edge-concatenation head: head 1 puts 0.9 on the previous token at target positions
        q = mask.nonzero()
        pattern[q[:, 0], 1, q[:, 1]] *= 0.1
        pattern[q[:, 0], 1, q[:, 1], q[:, 1] - 1] += 0.9
        out.append((name, (pattern, mask)))
    return out


def _between_cases():
    out = []
    for name, (n, heads, seed) in {"3 heads, 5 examples": (5, 3, 511), "2 heads, 9 examples": (9, 2, 512)}.items():
        seq = 12
        g = torch.Generator().manual_seed(seed)
        query = torch.randint(seq // 2, seq, (n,), generator=g)
        key = (torch.rand(n, generator=g) * query).long()
        out.append((name, (causal_pattern(n, heads, seq, seed), query, key)))
    return out


def _top_cases():
    out = []
    for name, (layers, heads, k, seed) in {"4 layers x 2 heads, top 3": (4, 2, 3, 521),
                                           "3 layers x 4 heads, top 2": (3, 4, 2, 522),
                                           "2 layers x 8 heads, top 4": (2, 8, 4, 523)}.items():
        g = torch.Generator().manual_seed(seed)
        out.append((name, (torch.randperm(layers * heads, generator=g).float().reshape(layers, heads) / 10, k)))
    return out


def _compare_top(got, expected, args):
    if isinstance(got, list) and got and not isinstance(got[0], (tuple, list)):
        return "return (layer, head) pairs, not flat indices into the flattened scores"
    return diff_value(got, expected, name="top heads")


# --- registrations ----------------------------------------------------------------------------------------

register_caching()  # 03.cache_resid: the notebook starts with a caching hook

function_exercise(
    "03.edge_score", title="Score heads for edge concatenation", difficulty=3, importance=4, minutes=12,
    reference=edge_score, cases=_edge_cases,
    compare=lambda got, exp, args: diff_tensor(got, exp, name="edge score", atol=1e-5),
    hints=["For a target token at position t you want the attention from query t to key t - 1, for every head; then "
           "average over all target tokens of all examples, keeping one number per head.",
           "Entry `pattern[i, h, q, k]` is how much query q attends to key k. The attention from each position to "
           "the one before it lies on the diagonal just below the main one.",
           "`before = pattern.diagonal(offset=-1, dim1=2, dim2=3)` is [n, head, seq - 1] (entry t: query t + 1 -> "
           "key t); select the targets with `before.transpose(1, 2)[target_mask[:, 1:]]` and take `.mean(0)`."],
    mistakes=[Mistake("query and key are swapped: rows (dim 2) are queries; read from the target (query t) to "
                      "its source (key t - 1)", _edge_swapped),
              Mistake("off by one position: the source S_A sits one position before the target T_B (key t - 1), "
                      "not at the target itself", _edge_self),
              Mistake("you forgot the mask: average only over the target-token positions", _edge_no_mask),
              Mistake("you summed: average over the target positions", _edge_sum),
              Mistake("keep one score per head (shape [n_heads]): do not average over heads", _edge_heads_pooled)],
)

function_exercise(
    "03.top_heads", title="Rank the heads", difficulty=1, importance=2, minutes=5,
    reference=top_heads, cases=_top_cases, compare=_compare_top,
    hints=["Rank all (layer, head) scores together, best first, and turn each rank back into a layer and a head.",
           "Flatten the [n_layers, n_heads] scores and sort them in descending order; a flat index i is layer i // "
           "n_heads, head i % n_heads.",
           "`best = scores.flatten().argsort(descending=True)[:k]`, then `[(int(i) // n_heads, int(i) % n_heads) for "
           "i in best]`."],
    mistakes=[Mistake("best first: sort in descending order", _top_ascending),
              Mistake("return (layer, head), not (head, layer)", _top_head_layer),
              Mistake("return (layer, head) pairs, not flat indices into the flattened scores", _top_flat),
              Mistake("a flat index i is layer i // n_heads and head i % n_heads (divide by the number of heads)",
                      _top_wrong_divisor)],
)

function_exercise(
    "03.attention_between", title="Attention between two positions", difficulty=2, importance=4, minutes=8,
    reference=attention_between, cases=_between_cases,
    compare=lambda got, exp, args: diff_tensor(got, exp, name="attention", atol=1e-5),
    hints=["Each example has its own query and key position; you want one attention value per (example, head), then "
           "the average over the examples.",
           "Index the example dimension together with the positions, so that example i is paired with its own "
           "`query_pos[i]` and `key_pos[i]` (shape [n, head]), not with every example's positions.",
           "`rows = torch.arange(n)`, then `pattern[rows, :, query_pos, key_pos].mean(0)`."],
    mistakes=[Mistake("query and key are swapped: dim 2 is the query (where attention comes from), dim 3 the key",
                      _between_swapped),
              Mistake("pattern[:, :, query_pos, key_pos] pairs every example with every example's positions; index "
                      "the example dimension with torch.arange(n) as well", _between_broadcast),
              Mistake("average over the examples: the result is one number per head", _between_no_mean)],
)

register_interventions()  # 03.ablate_head .. 03.patching_sweep: the notebook's last exercises


def _layer1_goal_head(edge_layer: int, edge_head: int, edge_score: float, goal_layer: int, goal_attention: float,
                      parent_attention: float) -> str:
    where = "not in layer 1" if goal_layer != 1 else "in layer 1"
    return (f"Edge concatenation comes first: head L{edge_layer}H{edge_head} attends from each target token to "
            f"its source with mean attention {edge_score:.2f}, so after block {edge_layer} every target token T_B "
            "also carries its parent A, and T_goal carries the goal's parent. A later head that reads T_goal from "
            "the goal token therefore copies the goal's *parent* into the goal's residual stream: one step of "
            "backward chaining; a head reading T(parent) one block later would add the grandparent. In this model "
            f"the head attending most to T_goal from the goal token sits in layer {goal_layer} ({where}; attention "
            f"{goal_attention:.2f}), and no head there attends strongly to T(parent) (at most "
            f"{parent_attention:.2f}), so the patterns show one step at most. Tutorial 04's probes test whether the "
            f"parent really arrives at the goal token after block {goal_layer} (depth {goal_layer + 1}).")


question("03.layer1_goal_head", _layer1_goal_head)
