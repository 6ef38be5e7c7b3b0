"""Tutorial 03, *Looking inside*, part 2: the learner writes TransformerLens hook functions (caching, head
ablation, attention knockout) and the activation-patching loop before the notebook uses ``toolkit.interventions``.

Every case runs the shipped ``tree-8`` model on a few seeded test trees; the expected output is what
``toolkit.activations`` / ``toolkit.interventions`` give on the same inputs (the references below are checked
against them in ``tests/test_exercises_03_hooks.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch

from toolkit.exercises.compare import diff_tensor
from toolkit.exercises.core import Mistake, function_exercise

# --- references -------------------------------------------------------------------------------------------


@torch.no_grad()
def cache_resid(model: Any, tokens: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """The residual stream after each block in ``layers`` (``blocks.{l}.hook_resid_post``), collected with a
    forward hook: [len(layers), n, seq, d_model] for tokens [n, seq]."""
    store: dict[int, torch.Tensor] = {}

    def make_hook(layer: int) -> Callable:
        def hook(resid: torch.Tensor, hook: Any) -> None:
            store[layer] = resid.detach().clone()
        return hook

    fwd_hooks = [(f"blocks.{layer}.hook_resid_post", make_hook(layer)) for layer in layers]
    with model.hooks(fwd_hooks=fwd_hooks):
        model(tokens)
    return torch.stack([store[layer] for layer in layers])


@torch.no_grad()
def ablate_head(model: Any, tokens: torch.Tensor, layer: int, head: int,
                mean_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [n, seq, vocab] with head ``head`` of block ``layer`` ablated at ``blocks.{layer}.attn.hook_z``
    ([n, seq, head, d_head]): zeroed, or, given ``mean_tokens`` [m, seq], replaced at every position by that
    head's mean z over those examples at the same position."""
    name = f"blocks.{layer}.attn.hook_z"
    if mean_tokens is None:
        replacement = 0.0
    else:
        _, cache = model.run_with_cache(mean_tokens, names_filter=name)
        replacement = cache[name][:, :, head].mean(0)  # [seq, d_head]

    def hook(z: torch.Tensor, hook: Any) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = replacement
        return z

    with model.hooks(fwd_hooks=[(name, hook)]):
        return model(tokens)


@torch.no_grad()
def knockout_logits(model: Any, tokens: torch.Tensor, layer: int, query_mask: torch.Tensor,
                    key_mask: torch.Tensor) -> torch.Tensor:
    """Logits [n, seq, vocab] when, in block ``layer`` (every head), positions with query_mask [n, seq] True may
    not attend to positions with key_mask [n, seq] True: those entries of ``blocks.{layer}.attn.hook_pattern``
    ([n, head, query, key]) become 0 and each affected query's row is renormalised to sum to 1."""
    block = query_mask[:, None, :, None] & key_mask[:, None, None, :]  # [n, 1, q, k]

    def hook(pattern: torch.Tensor, hook: Any) -> torch.Tensor:
        out = pattern.masked_fill(block, 0.0)
        return out / out.sum(-1, keepdim=True).clamp_min(1e-12)

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", hook)]):
        return model(tokens)


@torch.no_grad()
def patching_sweep(model: Any, clean_tokens: torch.Tensor, corrupt_tokens: torch.Tensor,
                   metric: Callable[[torch.Tensor], float], positions: list[int]) -> torch.Tensor:
    """Activation patching ("denoising"): for every layer l and each position p in ``positions``, run the
    corrupted tokens with the clean ``blocks.{l}.hook_resid_pre`` at position p (all examples at once) and score
    the logits with ``metric``. Returns [n_layers, len(positions)], normalised: (patched - corrupt) / (clean -
    corrupt)."""
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(clean_tokens, names_filter=lambda n: n in names)
    clean, corrupt = metric(model(clean_tokens)), metric(model(corrupt_tokens))
    out = torch.zeros(len(names), len(positions))
    for i, name in enumerate(names):
        for j, pos in enumerate(positions):
            def hook(resid: torch.Tensor, hook: Any, pos: int = pos, src: torch.Tensor = cache[name]) -> torch.Tensor:
                resid = resid.clone()
                resid[:, pos] = src[:, pos]
                return resid

            with model.hooks(fwd_hooks=[(name, hook)]):
                out[i, j] = metric(model(corrupt_tokens))
    return (out - corrupt) / (clean - corrupt)


# --- plausible mistakes -----------------------------------------------------------------------------------


@torch.no_grad()
def _cache_late_binding(model, tokens, layers):
    store = {}
    fwd_hooks = []
    for layer in layers:
        def hook(resid, hook):
            store[layer] = resid.detach().clone()  # noqa: B023 - the slip: `layer` is read when the hook runs
        fwd_hooks.append((f"blocks.{layer}.hook_resid_post", hook))
    with model.hooks(fwd_hooks=fwd_hooks):
        model(tokens)
    return torch.stack([store.get(layer, store[layers[-1]]) for layer in layers])


@torch.no_grad()
def _cache_resid_pre(model, tokens, layers):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([cache[f"blocks.{layer}.hook_resid_pre"] for layer in layers])


@torch.no_grad()
def _cache_attn_out(model, tokens, layers):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([cache[f"blocks.{layer}.hook_attn_out"] for layer in layers])


@torch.no_grad()
def _ablate_all_heads(model, tokens, layer, head, mean_tokens=None):
    name = f"blocks.{layer}.attn.hook_z"
    rep = 0.0 if mean_tokens is None else model.run_with_cache(mean_tokens, names_filter=name)[1][name].mean(0)
    with model.hooks(fwd_hooks=[(name, lambda z, hook: torch.zeros_like(z) + rep)]):
        return model(tokens)


@torch.no_grad()
def _ablate_position_axis(model, tokens, layer, head, mean_tokens=None):
    name = f"blocks.{layer}.attn.hook_z"
    rep = 0.0 if mean_tokens is None else model.run_with_cache(mean_tokens, names_filter=name)[1][name].mean(0)[head]

    def hook(z, hook):
        z = z.clone()
        z[:, head] = rep  # dim 1 is the position, not the head
        return z
    with model.hooks(fwd_hooks=[(name, hook)]):
        return model(tokens)


@torch.no_grad()
def _ablate_mean_over_positions(model, tokens, layer, head, mean_tokens=None):
    name = f"blocks.{layer}.attn.hook_z"
    rep = 0.0
    if mean_tokens is not None:
        rep = model.run_with_cache(mean_tokens, names_filter=name)[1][name][:, :, head].mean((0, 1))

    def hook(z, hook):
        z = z.clone()
        z[:, :, head] = rep
        return z
    with model.hooks(fwd_hooks=[(name, hook)]):
        return model(tokens)


@torch.no_grad()
def _knockout_no_renorm(model, tokens, layer, query_mask, key_mask):
    block = query_mask[:, None, :, None] & key_mask[:, None, None, :]
    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", lambda p, hook: p.masked_fill(block, 0.0))]):
        return model(tokens)


def _knockout_swapped(model, tokens, layer, query_mask, key_mask):
    return knockout_logits(model, tokens, layer, key_mask, query_mask)


def _knockout_every_query(model, tokens, layer, query_mask, key_mask):
    return knockout_logits(model, tokens, layer, torch.ones_like(query_mask), key_mask)


@torch.no_grad()
def _patch_raw(model, clean_tokens, corrupt_tokens, metric, positions):
    clean, corrupt = metric(model(clean_tokens)), metric(model(corrupt_tokens))
    return patching_sweep(model, clean_tokens, corrupt_tokens, metric, positions) * (clean - corrupt) + corrupt


def _patch_flipped(model, clean_tokens, corrupt_tokens, metric, positions):
    return 1 - patching_sweep(model, clean_tokens, corrupt_tokens, metric, positions)


@torch.no_grad()
def _patch_noising(model, clean_tokens, corrupt_tokens, metric, positions):
    clean, corrupt = metric(model(clean_tokens)), metric(model(corrupt_tokens))
    swapped = patching_sweep(model, corrupt_tokens, clean_tokens, metric, positions)  # (x - clean) / (corrupt - clean)
    return (swapped * (corrupt - clean) + clean - corrupt) / (clean - corrupt)


# --- cases ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _tree8():
    from toolkit import models

    model = models.pretrained("tree-8")
    return model, models.task_of(model)


@lru_cache(maxsize=4)
def _data(n: int, seed: int):
    return _tree8()[1].generate(n, seed=seed, split="test")


def _cache_cases():
    model, _ = _tree8()
    return [("layers 0 and 2", (model, _data(6, 531).tokens, [0, 2])),
            ("every layer", (model, _data(4, 532).tokens, [0, 1, 2, 3])),
            ("layers 3 and 1, in that order", (model, _data(5, 533).tokens, [3, 1]))]


def _ablate_cases():
    model, _ = _tree8()
    return [("zero L0H1", (model, _data(8, 541).tokens, 0, 1)),
            ("mean L2H0", (model, _data(8, 542).tokens, 2, 0, _data(32, 543).tokens)),
            ("mean L1H1", (model, _data(6, 544).tokens, 1, 1, _data(24, 545).tokens))]


def _knockout_cases():
    model, task = _tree8()
    out = []
    for name, (layer, seed, q, k) in {"layer 0: targets -/-> sources": (0, 551, "target", "source"),
                                      "layer 2: goal -/-> edge tokens": (2, 552, "goal", "target")}.items():
        data = _data(10, seed)
        out.append((name, (model, data.tokens, layer, task.positions(data, q), task.positions(data, k))))
    return out


def patch_inputs(n: int, seed: int) -> tuple[Any, torch.Tensor, Callable[[torch.Tensor], float]]:
    """(clean dataset, corrupted tokens, metric) for a patching case: the corrupted prompt is another test
    tree, and the metric is the toolkit's logit difference at the first differing answer token."""
    from toolkit.interventions.core import logits as run_logits
    from toolkit.interventions.patching import patch_metric

    model, _ = _tree8()
    clean = _data(n, seed)
    corrupt = clean.tokens.roll(1, 0)
    fn = patch_metric("logit_diff", clean, corrupt, run_logits(model, clean))
    return clean, corrupt, lambda logits: fn(logits.detach())


def _patch_cases():
    model, _ = _tree8()
    out = []
    for name, (n, seed, positions) in {"8 trees, positions 14-17": (8, 561, [14, 15, 16, 17]),
                                       "12 trees, positions 2, 9 and 16": (12, 562, [2, 9, 16])}.items():
        clean, corrupt, metric = patch_inputs(n, seed)
        out.append((name, (model, clean.tokens, corrupt, metric, positions)))
    return out


def _close(name: str, atol: float = 1e-4) -> Callable[[Any, Any, tuple], str | None]:
    return lambda got, exp, args: diff_tensor(got, exp, name=name, atol=atol, rtol=1e-4)


# --- registrations ----------------------------------------------------------------------------------------

def register_caching() -> None:
    """Register 03.cache_resid (called by ch03_inside before its own exercises, in notebook order)."""
    function_exercise(
        "03.cache_resid", title="A caching hook", difficulty=2, importance=4, minutes=10,
        reference=cache_resid, cases=_cache_cases, compare=_close("cached residuals"),
        hints=["A forward hook is a function that TransformerLens calls with the tensor at one point of the "
               "forward pass (and the hook point); a hook that returns None leaves the activation unchanged, so it "
               "can just store it somewhere.",
               "Register one hook per layer on `blocks.{l}.hook_resid_post` with `model.hooks(fwd_hooks=[(name, fn), "
               "...])` around a forward pass. Beware Python closures in a loop: a hook that reads the loop variable "
               "sees its *last* value; bind it through a helper function or a default argument.",
               "`def make_hook(layer): return lambda resid, hook: store.__setitem__(layer, resid.detach().clone())`; "
               "`with model.hooks(fwd_hooks=[(f'blocks.{l}.hook_resid_post', make_hook(l)) for l in layers]): "
               "model(tokens)`; then `torch.stack([store[l] for l in layers])`."],
        mistakes=[Mistake("every entry holds the same layer: the hook closes over the loop variable, which has "
                          "its last value when the hooks run; bind the layer with a helper function or a default "
                          "argument",
                          _cache_late_binding),
                  Mistake("that is the residual stream *before* each block (hook_resid_pre); the question asks for "
                          "after it (hook_resid_post)", _cache_resid_pre),
                  Mistake("that is the attention output only (hook_attn_out); the residual stream is hook_resid_post",
                          _cache_attn_out)],
    )


def register_interventions() -> None:
    """Register 03.ablate_head .. 03.patching_sweep (called by ch03_inside, after 03.attention_between)."""
    function_exercise(
        "03.ablate_head", title="Ablate one head", difficulty=3, importance=4, minutes=15,
        reference=ablate_head, cases=_ablate_cases, compare=_close("ablated logits"),
        hints=["A head's output before it is mixed back into the residual stream is `hook_z`, one vector per "
               "(example, position, head); ablating the head means replacing its slice there and leaving the other "
               "heads alone.",
               "`hook_z` is [n, seq, head, d_head]: the head is dimension 2. For the mean, cache `hook_z` on "
               "`mean_tokens`, keep the head's slice and average over the examples only (one mean per position).",
               "`replacement = cache[name][:, :, head].mean(0)` (or 0.0); in the hook `z = z.clone(); z[:, :, head] = "
               "replacement; return z`; run `model(tokens)` inside `model.hooks(fwd_hooks=[(name, hook)])`."],
        mistakes=[Mistake("you replaced every head of the layer: only head `head` (z[:, :, head]) should change",
                          _ablate_all_heads),
                  Mistake("hook_z is [n, seq, head, d_head]: z[:, head] selects a position, index the head with "
                          "z[:, :, head]", _ablate_position_axis),
                  Mistake("average over the examples only: the mean ablation keeps one mean per position",
                          _ablate_mean_over_positions)],
    )

    function_exercise(
        "03.knockout", title="Attention knockout", difficulty=3, importance=4, minutes=15,
        reference=knockout_logits, cases=_knockout_cases, compare=_close("logits after knockout"),
        hints=["Edit the attention *pattern* of the block: the blocked (query, key) pairs get weight 0, and the "
               "remaining weights of each query must again sum to 1.",
               "`hook_pattern` is [n, head, query, key]. Build a mask [n, 1, query, key] that is True where the query "
               "is in `query_mask` *and* the key in `key_mask` (broadcast the two [n, seq] masks), then `masked_fill` "
               "and divide by the row sums.",
               "`block = query_mask[:, None, :, None] & key_mask[:, None, None, :]`; in the hook `out = "
               "pattern.masked_fill(block, 0.0)` and `return out / out.sum(-1, keepdim=True).clamp_min(1e-12)`."],
        mistakes=[Mistake("renormalise: after zeroing, each query's attention should again sum to 1",
                          _knockout_no_renorm),
                  Mistake("query and key are swapped: dim 2 of the pattern is the query, dim 3 the key",
                          _knockout_swapped),
                  Mistake("only the queries in query_mask lose their attention to the keys; you blocked every query",
                          _knockout_every_query)],
    )

    function_exercise(
        "03.patching_sweep", title="The activation-patching loop", difficulty=4, importance=5, minutes=20,
        reference=patching_sweep, cases=_patch_cases, compare=_close("normalised patching scores", atol=1e-3),
        time_limit=60.0,
        hints=["Denoising: run the *corrupted* input, but at one (layer, position) put back the *clean* residual "
               "stream; if the metric recovers, that site carries what makes the clean answer clean. Normalise so that "
               "0 means no effect and 1 means fully clean.",
               "Cache the clean `blocks.{l}.hook_resid_pre` once with `run_with_cache`; for each layer and "
               "position (in `positions`) a hook copies `src[:, pos]` into the activation. Bind `pos` and the "
               "source as default arguments of the "
               "hook. Score the clean and corrupted runs once, without hooks.",
               "Inside the loops: `def hook(resid, hook, pos=pos, src=cache[name]): resid = resid.clone(); resid[:, "
               "pos] = src[:, pos]; return resid`, then `with model.hooks(fwd_hooks=[(name, hook)]): out[i, j] = "
               "metric(model(corrupt_tokens))` (j: the index of pos); finally "
               "`return (out - corrupt) / (clean - corrupt)`."],
        mistakes=[Mistake("normalise the scores: (patched - corrupt) / (clean - corrupt)", _patch_raw),
                  Mistake("upside down: 1 should mean fully restored, so (patched - corrupt) / (clean - corrupt), not "
                          "(clean - patched) / (clean - corrupt)", _patch_flipped),
                  Mistake("that is noising (corrupt activations into the clean run); here the clean activations go "
                          "into the corrupted run", _patch_noising)],
    )
