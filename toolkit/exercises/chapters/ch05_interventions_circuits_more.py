"""Tutorial 05, section *Circuit tools by hand* (second half): faithfulness, path patching, attribution patching
and the QK readout, each as the learner writes it before the notebook calls :mod:`toolkit.circuits`.

* ``05.faithfulness``: heads outside a circuit mean-ablated, normalised between "everything ablated" and the full
  model (as ``circuits.faithfulness(..., mlps=False)``);
* ``05.path_patch``: one path-patching step sender head -> receiver head's q / k / v input, or -> the logits, every
  other head and MLP frozen at the clean run (as ``circuits.path_patching``);
* ``05.attribution_patching``: gradient of a metric w.r.t. every head's ``z`` times (corrupt - clean), from one
  backward pass (as ``circuits.attribution_patching``);
* ``05.qk_readout``: a head's attention scores in token space from its weights alone (as ``circuits.qk_readout``).

The first three run the shipped tree model on a few seeded trees (loaded once, lazily); the QK readout uses seeded
random tensors. The module name sorts after ``ch05_interventions_circuits``, so these register after its
exercises, in notebook order. tests/test_exercises_05_circuits_more.py checks the references against the toolkit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from toolkit.exercises.chapters.ch05_interventions_circuits import _cmp
from toolkit.exercises.core import Mistake, function_exercise

Tensor = torch.Tensor
Head = tuple[int, int]


def _z(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


# --- 05.faithfulness --------------------------------------------------------------------------------------


def _metric_with(model: Any, tokens: Tensor, ablated: set[Head], z_mean: Tensor, metric: Callable,
                 zero: bool = False) -> float:
    """``metric(logits)`` with every head in ``ablated`` replaced by ``z_mean [L, seq, H, d_head]`` (its mean at
    the same position) at every position; ``zero=True`` replaces by 0 instead (a mistake)."""
    def hook_for(layer: int) -> Callable:
        heads = sorted(h for (la, h) in ablated if la == layer)

        def hook(z: Tensor, hook: Any) -> Tensor:
            z = z.clone()
            z[:, :, heads] = 0.0 if zero else z_mean[layer][None, :, heads].to(z)
            return z
        return hook

    layers = sorted({la for la, _ in ablated})
    with torch.no_grad(), model.hooks(fwd_hooks=[(_z(la), hook_for(la)) for la in layers]):
        return float(metric(model(tokens)))


def faithfulness(model: Any, tokens: Tensor, circuit: list[Head], z_mean: Tensor, metric: Callable) -> float:
    """``(F(circuit) - F(none)) / (F(all) - F(none))``: ``F(S)`` is ``metric(logits)`` when only the heads in ``S``
    run and every other head is mean-ablated (``z_mean [L, seq, H, d_head]``, at every position); MLPs always run.

    ``tokens [n, seq]``; ``circuit``: ``(layer, head)`` pairs; ``metric``: logits ``[n, seq, V]`` -> a number.
    1 = the circuit alone does what the model does; 0 = no better than every head ablated.
    """
    every = {(la, h) for la in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}
    full = _metric_with(model, tokens, set(), z_mean, metric)
    none = _metric_with(model, tokens, every, z_mean, metric)
    kept = _metric_with(model, tokens, every - set(circuit), z_mean, metric)
    return (kept - none) / (full - none)


def _f_circuit_ablated(model, tokens, circuit, z_mean, metric):
    every = {(la, h) for la in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}
    full = _metric_with(model, tokens, set(), z_mean, metric)
    none = _metric_with(model, tokens, every, z_mean, metric)
    return (_metric_with(model, tokens, set(circuit), z_mean, metric) - none) / (full - none)


def _f_no_baseline(model, tokens, circuit, z_mean, metric):
    every = {(la, h) for la in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}
    return (_metric_with(model, tokens, every - set(circuit), z_mean, metric)
            / _metric_with(model, tokens, set(), z_mean, metric))


def _f_zero(model, tokens, circuit, z_mean, metric):
    every = {(la, h) for la in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}
    full = _metric_with(model, tokens, set(), z_mean, metric)
    none = _metric_with(model, tokens, every, z_mean, metric, zero=True)
    return (_metric_with(model, tokens, every - set(circuit), z_mean, metric, zero=True) - none) / (full - none)


# --- 05.path_patch ----------------------------------------------------------------------------------------


def _frozen_names(model: Any, layer: int, mlps: bool = True) -> list[str]:
    kinds = ("attn.hook_z", "hook_mlp_out") if mlps else ("attn.hook_z",)
    return [f"blocks.{la}.{k}" for la in range(layer, model.cfg.n_layers) for k in kinds]


def _cache(model: Any, tokens: Tensor, names: list[str]) -> dict[str, Tensor]:
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return {n: cache[n] for n in names}


def _path_patch(model: Any, clean: Tensor, corrupt: Tensor, sender: Head, receiver: Any, freeze: bool = True,
                mlps: bool = True, whole_layer: bool = False, into: str = "input", receiver_run: bool = True
                ) -> Tensor:
    """The reference (defaults) and its plausible mistakes (the flags)."""
    ls, hs = sender
    frozen = _frozen_names(model, ls, mlps) if freeze else [_z(ls)]
    clean_acts = _cache(model, clean, frozen)
    corrupt_z = _cache(model, corrupt, [_z(ls)])[_z(ls)]
    sender_heads = slice(None) if whole_layer else [hs]

    def freeze_hook(name: str) -> Callable:
        def hook(x: Tensor, hook: Any) -> Tensor:
            out = clean_acts[name].clone() if name != _z(ls) or freeze else x.clone()
            if name == _z(ls):
                out[:, :, sender_heads] = corrupt_z[:, :, sender_heads]
            return out
        return hook

    fwd = [(n, freeze_hook(n)) for n in frozen]
    if receiver == "logits":
        with torch.no_grad(), model.hooks(fwd_hooks=fwd):
            return model(clean)
    lr, hr, which = receiver
    recorded: dict[str, Tensor] = {}

    def record(x: Tensor, hook: Any) -> None:
        recorded["x"] = x.clone()

    if into == "input":
        site = f"blocks.{lr}.attn.hook_{which}"
        with torch.no_grad(), model.hooks(fwd_hooks=fwd + [(site, record)]):
            sender_logits = model(clean)
        if not receiver_run:
            return sender_logits
    else:  # the mistake: the receiver's output z (left unfrozen in the sender run) is recorded and patched
        site = _z(lr)
        with torch.no_grad(), model.hooks(fwd_hooks=[h for h in fwd if h[0] != site] + [(site, record)]):
            model(clean)

    def put(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[:, :, hr] = recorded["x"][:, :, hr]
        return x

    with torch.no_grad(), model.hooks(fwd_hooks=[(site, put)]):
        return model(clean)


def path_patch(model: Any, clean: Tensor, corrupt: Tensor, sender: Head, receiver: Any) -> Tensor:
    """Logits ``[n, seq, V]`` of one path-patching step, every run on the ``clean`` tokens ``[n, seq]``.

    Sender run: head ``sender = (layer, head)`` takes its ``hook_z`` from the ``corrupt`` run; every other head's
    ``hook_z`` and every MLP's ``hook_mlp_out`` in blocks ``>= layer`` is frozen at its clean value. If ``receiver``
    is ``"logits"``, return this run's logits. Otherwise ``receiver = (layer, head, "q" | "k" | "v")`` (a later
    block): record that head's ``blocks.{layer}.attn.hook_{q,k,v}`` in the sender run, then return the logits of a
    clean run in which only that head's q / k / v is replaced by the recorded value (everything else recomputes).
    """
    return _path_patch(model, clean, corrupt, sender, receiver)


# --- 05.attribution_patching ------------------------------------------------------------------------------


def _attribution(model: Any, clean: Tensor, corrupt: Tensor, metric: Callable, sign: float = 1.0,
                 diff: bool = True, grad_on: str = "clean") -> Tensor:
    names = [_z(la) for la in range(model.cfg.n_layers)]
    z_corrupt = _cache(model, corrupt, names)
    z_clean = _cache(model, clean, names)
    kept: dict[str, Tensor] = {}

    def keep(name: str) -> Callable:
        def hook(x: Tensor, hook: Any) -> Tensor:
            kept[name] = x
            return x  # returned, so the rest of the forward pass is computed from this very tensor
        return hook

    with torch.enable_grad(), model.hooks(fwd_hooks=[(n, keep(n)) for n in names]):
        m = metric(model(clean if grad_on == "clean" else corrupt))
        grads = torch.autograd.grad(m, [kept[n] for n in names])
    delta = [sign * (z_corrupt[n] - z_clean[n]) if diff else z_corrupt[n] for n in names]
    return torch.stack([torch.einsum("nshd,nshd->h", d, g) for d, g in zip(delta, grads, strict=True)])


def attribution_patching(model: Any, clean: Tensor, corrupt: Tensor, metric: Callable) -> Tensor:
    """``[n_layers, n_heads]``: the first-order estimate of how much ``metric`` changes when one head's ``hook_z``
    (every example and position) is taken from the ``corrupt`` run into the ``clean`` run.

    One forward + backward pass on ``clean [n, seq]``: ``grad = d metric / d z`` at every ``blocks.{l}.attn.hook_z``
    (``[n, seq, head, d_head]``), and ``z_corrupt`` from one corrupted forward pass; the estimate for head ``h`` is
    ``sum over n, seq, d_head of (z_corrupt - z_clean) * grad``. ``metric``: logits ``[n, seq, V]`` -> a 0-d tensor.
    """
    return _attribution(model, clean, corrupt, metric)


# --- 05.qk_readout ----------------------------------------------------------------------------------------


def qk_readout(emb_q: Tensor, emb_k: Tensor, W_Q: Tensor, b_Q: Tensor, W_K: Tensor, b_K: Tensor) -> Tensor:
    """``[V, V]`` attention scores of one head in token space: row = query token, column = key token.

    ``emb_q``, ``emb_k [V, d_model]``: every token as the head reads it at the query / key position (e.g. ``W_E``,
    plus a position embedding, through ``ln1``); ``W_Q``, ``W_K [d_model, d_head]``; ``b_Q``, ``b_K [d_head]``.
    Scaled by ``1 / sqrt(d_head)`` as in the model, before the causal mask and the softmax.
    """
    q = emb_q @ W_Q + b_Q
    k = emb_k @ W_K + b_K
    return q @ k.T / math.sqrt(W_Q.shape[-1])


def _qk_transposed(emb_q, emb_k, W_Q, b_Q, W_K, b_K):
    return qk_readout(emb_q, emb_k, W_Q, b_Q, W_K, b_K).T


def _qk_no_scale(emb_q, emb_k, W_Q, b_Q, W_K, b_K):
    return (emb_q @ W_Q + b_Q) @ (emb_k @ W_K + b_K).T


def _qk_no_embedding(emb_q, emb_k, W_Q, b_Q, W_K, b_K):
    return W_Q @ W_K.T / math.sqrt(W_Q.shape[-1])


def _qk_no_bias(emb_q, emb_k, W_Q, b_Q, W_K, b_K):
    return qk_readout(emb_q, emb_k, W_Q, torch.zeros_like(b_Q), W_K, torch.zeros_like(b_K))


# --- cases ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _tree() -> tuple[Any, Tensor, Tensor, Tensor, int]:
    """The shipped tree model, 8 clean and 8 other test trees, mean z ``[L, seq, H, d_head]`` over 64 trees, and
    the root's position (where the first decision is made)."""
    from toolkit import models

    model = models.pretrained("tree-8")
    task = models.task_of(model)
    clean = task.generate(8, seed=1705, split="test").tokens
    corrupt = task.generate(8, seed=1706, split="test").tokens
    ref = task.generate(64, seed=1707, split="test").tokens
    acts = _cache(model, ref, [_z(la) for la in range(model.cfg.n_layers)])
    z_mean = torch.stack([acts[_z(la)].mean(0) for la in range(model.cfg.n_layers)])
    return model, clean, corrupt, z_mean, task.query + 1


def _next_token_logprob(clean: Tensor, start: int) -> Callable:
    """Mean log-probability of the clean next token at positions ``start .. seq - 2`` (a differentiable metric)."""
    def metric(logits: Tensor) -> Tensor:
        lp = logits[:, start:-1].float().log_softmax(-1)
        return lp.gather(-1, clean[:, start + 1:, None]).mean()
    return metric


def _root_logit_diff(clean: Tensor, corrupt: Tensor, root: int) -> Callable:
    """Logit of the clean first step minus the corrupted one at the root position (mean over examples)."""
    good, bad = clean[:, root + 1], corrupt[:, root + 1]
    rows = torch.arange(len(clean))

    def metric(logits: Tensor) -> Tensor:
        return (logits[rows, root, good] - logits[rows, root, bad]).float().mean()
    return metric


def _faith_cases():
    model, clean, _, z_mean, root = _tree()
    lp = _next_token_logprob(clean, root)
    return [("circuit L0H1 + L3H0, log-prob of the path", (model, clean, [(0, 1), (3, 0)], z_mean, lp)),
            ("circuit L0H1 + L1H0 + L2H0 + L3H0, log-prob of the path",
             (model, clean, [(0, 1), (1, 0), (2, 0), (3, 0)], z_mean, lp))]


def _pp_cases():
    model, clean, corrupt, _, root = _tree()
    return [("L0H1 -> L2H0.v", (model, clean, corrupt, (0, 1), (2, 0, "v"))),
            ("L1H0 -> L3H0.q", (model, clean, corrupt, (1, 0), (3, 0, "q"))),
            ("L0H0 -> L2H1.k", (model, clean, corrupt, (0, 0), (2, 1, "k"))),
            ("L1H1 -> logits", (model, clean, corrupt, (1, 1), "logits"))]


def _ap_cases():
    model, clean, corrupt, _, root = _tree()
    return [("logit difference of the first step", (model, clean, corrupt, _root_logit_diff(clean, corrupt, root))),
            ("log-prob of the clean path", (model, clean, corrupt, _next_token_logprob(clean, root)))]


def _qk_cases():
    out = []
    for k, (V, d, dh) in enumerate(((7, 5, 3), (4, 6, 2))):
        g = torch.Generator().manual_seed(1750 + k)
        out.append((f"{V} tokens, d_model {d}, d_head {dh}",
                    (torch.randn(V, d, generator=g), torch.randn(V, d, generator=g) + 0.5,
                     torch.randn(d, dh, generator=g), torch.randn(dh, generator=g),
                     torch.randn(d, dh, generator=g), torch.randn(dh, generator=g))))
    return out


def _cmp_number(got: Any, expected: float, args: tuple) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, int | float):
        return f"return one number (a float), not {type(got).__name__}"
    if math.isnan(got) or abs(got - expected) > 1e-3 * max(1.0, abs(expected)):
        return f"faithfulness {got:.4f}, expected {expected:.4f}"
    return None


def _wrong(fn: Callable, **flags: Any) -> Callable:
    return lambda *args: fn(*args, **flags)


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "05.faithfulness", title="Faithfulness of a circuit", difficulty=3, importance=5, minutes=15,
    reference=faithfulness, cases=_faith_cases, compare=_cmp_number,
    hints=["Three runs of the model, each with some heads' outputs replaced: none (the full model), every head, "
           "and every head *outside* the circuit. Faithfulness puts the third between the other two.",
           "Mean ablation of head h in layer l replaces `z[:, :, h]` by `z_mean[l, :, h]` (the same position's mean); "
           "then `(F_circuit - F_none) / (F_full - F_none)`.",
           "`every = {(l, h) for l in range(L) for h in range(H)}`; a helper `F(ablated)` that hooks each layer with "
           "`z[:, :, heads] = z_mean[l][None, :, heads]` and returns `float(metric(model(tokens)))`; "
           "`(F(every - set(circuit)) - F(every)) / (F(set()) - F(every))`"],
    mistakes=[Mistake("faithfulness keeps only the circuit running: ablate every head *outside* the circuit, not the "
                      "circuit itself (that is completeness)", _f_circuit_ablated),
              Mistake("normalise between every head ablated (0) and the full model (1): subtract F(everything "
                      "ablated) from both the circuit's score and the full model's", _f_no_baseline),
              Mistake("mean ablation: replace z by its mean at the same position (`z_mean[l, :, h]`), not zero",
                      _f_zero)],
)

function_exercise(
    "05.path_patch", title="One path-patching step", difficulty=4, importance=5, minutes=25,
    reference=path_patch, cases=_pp_cases, compare=_cmp("path-patched logits", 1e-3), time_limit=20.0,
    hints=["Two runs. In the first, only the sender's output changes and nothing else may react to it: every other "
           "head and MLP from the sender's block on is pinned to its clean value, so the change reaches the receiver "
           "only along the direct residual path. In the second, only the receiver's input is changed.",
           "Cache the clean `hook_z` / `hook_mlp_out` of blocks >= the sender's and the corrupt `hook_z` of the "
           "sender's block. Sender run: hooks that return the clean values, with `z[:, :, h_s]` from the corrupt "
           "cache; also record `blocks.{l_r}.attn.hook_{q,k,v}`. Receiver run: a hook on that same name that puts the "
           "recorded `[:, :, h_r]` into a clean run.",
           "`def freeze(name): return lambda x, hook: clean_acts[name]` with the sender's head overwritten "
           "(`out[:, :, hs] = corrupt_z[:, :, hs]`); `with model.hooks(fwd_hooks=[...freezes..., (site, record)]): "
           "model(clean)`; then `with model.hooks(fwd_hooks=[(site, put)]): return model(clean)` where `put` copies "
           "`x` and sets `x[:, :, hr] = recorded[:, :, hr]`"],
    mistakes=[Mistake("freeze every other head and MLP of the sender's block and later ones at their clean values: "
                      "without that the receiver also sees the sender's effect through the heads in between (plain "
                      "activation patching)", _wrong(_path_patch, freeze=False)),
              Mistake("freeze the MLPs too (`hook_mlp_out`): an MLP after the sender passes its change on",
                      _wrong(_path_patch, mlps=False)),
              Mistake("patch the receiver's *input* (`hook_q` / `hook_k` / `hook_v`), not its output `hook_z`: the "
                      "path ends where the receiver reads the residual stream", _wrong(_path_patch, into="output")),
              Mistake("the path ends at the receiver: after recording its input, run the clean model again with only "
                      "that input patched and return those logits", _wrong(_path_patch, receiver_run=False)),
              Mistake("corrupt only the sender head: keep the other heads of its block at their clean values",
                      _wrong(_path_patch, whole_layer=True))],
)

function_exercise(
    "05.attribution_patching", title="Attribution patching", difficulty=3, importance=4, minutes=15,
    reference=attribution_patching, cases=_ap_cases, compare=_cmp("estimates", 1e-3),
    hints=["Patching head h changes its z from the clean value to the corrupt one. To first order the metric changes "
           "by that difference dotted with the gradient of the metric at the clean run; one backward pass gives the "
           "gradient for every head at once.",
           "Cache the corrupt `hook_z` of every layer; run the clean input with hooks that keep each `hook_z` tensor "
           "(inside `torch.enable_grad()`), then `torch.autograd.grad(metric(logits), kept_z)`; multiply and sum "
           "over examples, positions and d_head, keeping the head axis.",
           "`torch.stack([torch.einsum(\"nshd,nshd->h\", z_corrupt[l] - z_clean[l].detach(), grad[l]) for l in "
           "range(L)])`"],
    mistakes=[Mistake("the patch moves z from clean to corrupt: the difference is `z_corrupt - z_clean` (your sign is "
                      "flipped)", _wrong(_attribution, sign=-1.0)),
              Mistake("multiply the gradient by the *change* of z (`z_corrupt - z_clean`), not by z_corrupt itself",
                      _wrong(_attribution, diff=False)),
              Mistake("take the gradient on the clean run (the run being patched), not on the corrupted one",
                      _wrong(_attribution, grad_on="corrupt"))],
)

function_exercise(
    "05.qk_readout", title="A head's QK readout in token space", difficulty=3, importance=4, minutes=10,
    reference=qk_readout, cases=_qk_cases, compare=_cmp("QK scores", 1e-4),
    hints=["Put every token through the head's query map and every token through its key map, then take all "
           "query-key dot products, scaled as the model scales them.",
           "`q = emb_q @ W_Q + b_Q` and `k = emb_k @ W_K + b_K` are `[V, d_head]`; scores `[V, V]` with the query "
           "token as the row; divide by `sqrt(d_head)`.",
           "`(emb_q @ W_Q + b_Q) @ (emb_k @ W_K + b_K).T / math.sqrt(W_Q.shape[-1])`"],
    mistakes=[Mistake("rows are query tokens, columns key tokens: you have `k @ q.T`", _qk_transposed),
              Mistake("scale by 1 / sqrt(d_head) as the attention does", _qk_no_scale),
              Mistake("read the weights in token space: multiply the token embeddings in first (`emb_q @ W_Q`); "
                      "`W_Q @ W_K.T` is [d_model, d_model]", _qk_no_embedding),
              Mistake("add the biases b_Q and b_K before the dot product", _qk_no_bias)],
)
