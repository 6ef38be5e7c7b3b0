"""Tutorial 02, *Training a searcher*, part 2: the learner writes the training machinery that ``models.train``
runs (learning-rate schedule, one optimiser step, the loop) and teacher-forced scoring.

The step and the loop change a model in place, so they are checked by a custom checker: every run (the
toolkit's, the learner's and each plausible mistake's) gets its own copy of one small seeded model, and the
parameters afterwards are compared with those :func:`toolkit.models.train` leaves on an identical copy fed the
same batches. The copies start with garbage in ``.grad``, so a step that forgets ``zero_grad`` is caught.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from toolkit._threads import torch_threads
from toolkit.exercises.chapters._tree_batches import tree_batch as _batch
from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import (
    Case,
    Exercise,
    LearnerError,
    Mistake,
    _learner_traceback,
    _time_limit,
    _Timeout,
    function_exercise,
    register,
)

# --- references -------------------------------------------------------------------------------------------


def lr_at(step: int, steps: int, lr: float, warmup_steps: int, min_lr_frac: float) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up ``lr * (step + 1) / warmup_steps`` for the first
    ``warmup_steps`` steps, then a cosine from ``lr`` down to ``min_lr_frac * lr`` over the remaining
    ``steps - warmup_steps`` steps."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    return lr * (min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def _loss(model: Any, tokens: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    logits = model(tokens)
    mask = loss_mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][mask], tokens[:, 1:][mask])


def train_step(model: Any, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, loss_mask: torch.Tensor,
               grad_clip: float = 1.0) -> float:
    """One optimiser step on the batch tokens [b, seq] with loss_mask [b, seq]: the masked next-token loss,
    fresh gradients, gradient-norm clipping to ``grad_clip``, the update. Returns the loss as a float."""
    loss = _loss(model, tokens, loss_mask)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups as ``models.train`` builds them: weight decay on matrices only."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def train_loop(model: Any, batches: list[tuple[torch.Tensor, torch.Tensor]], config: Any) -> list[float]:
    """Train ``model`` in place on ``batches`` [(tokens [b, seq], loss_mask [b, seq]), ...], one step each, with
    the recipe of ``config`` (a ``models.TrainConfig``): AdamW on ``param_groups(model, config.weight_decay)``
    with ``config.betas``, the learning rate ``config.lr_at(step)`` set before every step, and ``train_step``
    with ``config.grad_clip``. Returns the loss of every step."""
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)
    losses = []
    model.train()
    for step, (tokens, loss_mask) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        losses.append(train_step(model, optimizer, tokens, loss_mask, config.grad_clip))
    model.eval()
    return losses


def teacher_forced_exact(logits: torch.Tensor, tokens: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """BoolTensor [n]: True where the argmax of logits [n, seq, vocab] at t - 1 equals tokens[:, t] at every
    target position t (loss_mask True), i.e. the model, fed the true prefix, predicts every answer token."""
    right = (logits[:, :-1].argmax(-1) == tokens[:, 1:]) | ~loss_mask[:, 1:]
    return right.all(dim=1)


# --- plausible mistakes -----------------------------------------------------------------------------------


def _lr_warmup_off_by_one(step, steps, lr, warmup_steps, min_lr_frac):
    if step < warmup_steps:
        return lr * step / warmup_steps
    return lr_at(step, steps, lr, warmup_steps, min_lr_frac)


def _lr_to_zero(step, steps, lr, warmup_steps, min_lr_frac):
    return lr_at(step, steps, lr, warmup_steps, 0.0)


def _lr_progress_over_all_steps(step, steps, lr, warmup_steps, min_lr_frac):
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, step / steps)
    return lr * (min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def _step_no_zero_grad(model, optimizer, tokens, loss_mask, grad_clip=1.0):
    loss = _loss(model, tokens, loss_mask)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _step_no_clip(model, optimizer, tokens, loss_mask, grad_clip=1.0):
    loss = _loss(model, tokens, loss_mask)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_no_mask(model, optimizer, tokens, loss_mask, grad_clip=1.0):
    return train_step(model, optimizer, tokens, torch.ones_like(loss_mask), grad_clip)


def _step_zero_grad_late(model, optimizer, tokens, loss_mask, grad_clip=1.0):
    loss = _loss(model, tokens, loss_mask)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


class _ConstantLR:
    def __init__(self, config: Any):
        self.c = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self.c, name)

    def lr_at(self, step: int) -> float:
        return self.c.lr


class _ShiftedLR(_ConstantLR):
    def lr_at(self, step: int) -> float:
        return self.c.lr_at(step + 1)


def _loop_constant_lr(model, batches, config):
    return train_loop(model, batches, _ConstantLR(config))


def _loop_schedule_off_by_one(model, batches, config):
    return train_loop(model, batches, _ShiftedLR(config))


def _loop_new_optimizer_each_step(model, batches, config):
    losses = []
    model.train()
    for step, (tokens, loss_mask) in enumerate(batches):
        optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr_at(step),
                                      betas=config.betas)
        losses.append(train_step(model, optimizer, tokens, loss_mask, config.grad_clip))
    model.eval()
    return losses


def _tf_no_shift(logits, tokens, loss_mask):
    return ((logits.argmax(-1) == tokens) | ~loss_mask).all(dim=1)


def _tf_mask_unshifted(logits, tokens, loss_mask):
    return ((logits[:, :-1].argmax(-1) == tokens[:, 1:]) | ~loss_mask[:, :-1]).all(dim=1)


def _tf_any(logits, tokens, loss_mask):
    return ((logits[:, :-1].argmax(-1) == tokens[:, 1:]) & loss_mask[:, 1:]).any(dim=1)


# --- stateful checking: every run on its own copy of one seeded model -------------------------------------

REL_TOL = 5e-3  # relative distance between parameter updates; the registered mistakes give >= 2e-2


@lru_cache(maxsize=4)
def _setup(seed: int):
    from toolkit import models, tasks

    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    model = models.build(task, n_layers=1, d_model=32, d_mlp=64, seed=seed)
    return task, model, task.generate(4, seed=seed, split="test")


def _batches(task: Any, n_steps: int, batch: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from toolkit.models.train import TRAIN_SEED_BASE

    out = []
    for step in range(n_steps):  # the batches models.train(data="fresh", seed=seed) draws
        d = task.generate(batch, seed=TRAIN_SEED_BASE * (seed + 1) + step, split="train")
        out.append((d.tokens, d.loss_mask))
    return out


def _fresh_copy(model: Any, garbage_seed: int) -> Any:
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(garbage_seed)
    for p in m.parameters():  # stale gradients from "an earlier step": zero_grad must clear them
        p.grad = 10 * torch.randn(p.shape, generator=g)
    return m


def _run_learner(fn: Callable[..., Any], *args: Any, time_limit: float = 20.0) -> Any:
    """Call learner code without copying the arguments (the model and optimiser must be the real ones)."""
    try:
        with _time_limit(time_limit), torch_threads(1):
            return fn(*args)
    except _Timeout:
        raise LearnerError(TimeoutError(f"it ran for more than {time_limit:g} s on a tiny model"), "") from None
    except Exception as err:  # noqa: BLE001 - every learner error becomes a failed case
        raise LearnerError(err, _learner_traceback(err)) from err


def _params(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _distance(got: dict, ref: dict, start: dict) -> float:
    """Relative distance between two parameter updates: ||got - ref|| / ||ref - start||."""
    num = sum(float(((got[k] - ref[k]) ** 2).sum()) for k in ref)
    den = sum(float(((ref[k] - start[k]) ** 2).sum()) for k in ref)
    return math.sqrt(num / max(den, 1e-30))


def _compare_runs(got: tuple, ref: tuple, start: dict) -> str | None:
    losses, params = got
    ref_losses, ref_params = ref
    try:
        losses = [float(x) for x in losses]
    except (TypeError, ValueError):
        return "return the loss of every step as a float (loss.item())"
    if len(losses) != len(ref_losses):
        return f"expected {len(ref_losses)} losses (one per step), got {len(losses)}"
    if max(abs(a - b) for a, b in zip(losses, ref_losses)) > 1e-3:
        return (f"the losses {[round(x, 4) for x in losses]} differ from models.train's "
                f"{[round(x, 4) for x in ref_losses]}")
    d = _distance(params, ref_params, start)
    if d > REL_TOL:
        return (f"the parameters after the steps differ from models.train's: the updates are {d:.1%} apart "
                "(relative distance)")
    return None


def _toolkit_run(seed: int, n_steps: int, batch: int, **config: Any) -> tuple[list[float], dict]:
    from toolkit import models

    task, model, ev = _setup(seed)
    m = copy.deepcopy(model)
    hist = models.train(m, task, steps=n_steps, batch_size=batch, data="fresh", seed=seed, fast=False,
                        eval_data=ev, eval_every=n_steps, progress=False, **config)
    return hist.loss, _params(m)


def _stateful_checker(cases: list[dict], run: Callable[[Callable, dict], tuple], mistakes: list[Mistake]
                      ) -> Callable[[Callable], Iterator[Case]]:
    """A checker comparing ``run(fn, case) -> (losses, params)`` with ``models.train`` on the same case; a
    failing answer is matched against each mistake's run."""
    def checker(fn: Callable) -> Iterator[Case]:
        for case in cases:
            start = _params(_setup(case["seed"])[1])
            ref = _toolkit_run(case["seed"], case["steps"], case["batch"], **case["config"])
            got = run(fn, case)
            problem = _compare_runs(got, ref, start)
            if problem is None:
                yield Case(case["name"], True)
                continue
            message, detail = problem, ""
            for mistake in mistakes:
                try:
                    wrong = run(mistake.fn, case)
                except LearnerError:
                    continue
                if _compare_runs(got, wrong, start) is None:
                    message, detail = mistake.message, problem
                    break
            yield Case(case["name"], False, message, detail)

    return checker


STEP_CASES = [{"name": "3 steps, batch 16, clip 1.0", "seed": 0, "steps": 3, "batch": 16,
               "config": {"warmup_steps": 0, "min_lr_frac": 1.0, "grad_clip": 1.0}},
              {"name": "3 steps, batch 24, clip 0.5, lr 1e-2", "seed": 1, "steps": 3, "batch": 24,
               "config": {"warmup_steps": 0, "min_lr_frac": 1.0, "grad_clip": 0.5, "lr": 1e-2}}]
LOOP_CASES = [{"name": "6 steps: 2 of warm-up, then cosine", "seed": 2, "steps": 6, "batch": 16,
               "config": {"warmup_steps": 2}},
              {"name": "5 steps: 3 of warm-up, lr 1e-2, clip 0.5", "seed": 3, "steps": 5, "batch": 16,
               "config": {"warmup_steps": 3, "lr": 1e-2, "grad_clip": 0.5}}]


def _config(case: dict) -> Any:
    from toolkit import models

    return models.TrainConfig(steps=case["steps"], batch_size=case["batch"], **case["config"])


def _run_step(fn: Callable, case: dict) -> tuple[list, dict]:
    task, model, _ = _setup(case["seed"])
    cfg = _config(case)
    m = _fresh_copy(model, case["seed"])
    m.train()
    optimizer = torch.optim.AdamW(param_groups(m, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    losses = [_run_learner(fn, m, optimizer, tokens, mask, cfg.grad_clip)
              for tokens, mask in _batches(task, case["steps"], case["batch"], case["seed"])]
    m.eval()
    return losses, _params(m)


def _run_loop(fn: Callable, case: dict) -> tuple[list, dict]:
    task, model, _ = _setup(case["seed"])
    m = _fresh_copy(model, case["seed"])
    losses = _run_learner(fn, m, _batches(task, case["steps"], case["batch"], case["seed"]), _config(case))
    m.eval()
    if not isinstance(losses, (list, tuple)):
        raise LearnerError(TypeError(f"train_loop should return a list of losses, got {type(losses).__name__}"), "")
    return list(losses), _params(m)


def _lr_cases():
    return [("during warm-up", (3, 100, 3e-3, 10, 0.1)), ("first step", (0, 100, 3e-3, 10, 0.1)),
            ("half-way through the cosine", (55, 100, 3e-3, 10, 0.1)),
            ("last step", (99, 100, 1e-2, 20, 0.2)), ("no warm-up", (30, 60, 1e-3, 0, 0.0)),
            ("past the end", (120, 100, 3e-3, 10, 0.1))]


@lru_cache(maxsize=1)
def _tf_cases():
    out = []
    for name, (n, seed, p_wrong) in {"mostly right": (16, 431, 0.03), "many errors": (24, 432, 0.15)}.items():
        tokens, mask, _, vocab = _batch(n, seed)
        g = torch.Generator().manual_seed(seed)
        nxt = tokens.roll(-1, 1)  # the right prediction at t is tokens[t + 1]
        logits = torch.randn(n, tokens.shape[1], vocab, generator=g)
        logits.scatter_(2, nxt[..., None], 5.0)
        wrong = (torch.rand(tokens.shape, generator=g) < p_wrong)
        logits[wrong] = torch.randn(int(wrong.sum()), vocab, generator=g) * 8  # some predictions go wrong
        off = ~mask.roll(-1, 1)
        logits[off] = torch.randn(int(off.sum()), vocab, generator=g) * 8  # off-target: garbage
        out.append((name, (logits, tokens.clone(), mask.clone())))
    return out


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "02.lr_at", title="Warm-up and cosine decay", difficulty=2, importance=3, minutes=10,
    reference=lr_at, cases=_lr_cases,
    compare=lambda got, exp, args: diff_value(got, exp, name="learning rate", tol=1e-9),
    hints=["Two regimes: a straight ramp up during the warm-up steps, then half a cosine wave that ends at a floor "
           "of `min_lr_frac` times the peak.",
           "Step 0 of the warm-up already gets `lr / warmup_steps` (count steps from 1 there). For the cosine, "
           "progress runs from 0 to 1 over the steps *after* the warm-up, and stays at 1 past the end.",
           "`progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))`, then "
           "`lr * (min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))`."],
    mistakes=[Mistake("off by one in the warm-up: step 0 should already get lr / warmup_steps, so use "
                      "(step + 1) / warmup_steps", _lr_warmup_off_by_one),
              Mistake("the cosine should end at min_lr_frac * lr, not at 0", _lr_to_zero),
              Mistake("measure the cosine's progress from the end of the warm-up: (step - warmup_steps) / "
                      "(steps - warmup_steps)", _lr_progress_over_all_steps)],
)

STEP_MISTAKES = [
    Mistake("the gradients piled up on the stale ones: call optimizer.zero_grad() before loss.backward()",
            _step_no_zero_grad),
    Mistake("no gradient clipping: call torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) between "
            "backward() and step()", _step_no_clip),
    Mistake("you forgot the loss mask: only the answer positions count", _step_no_mask),
    Mistake("zero_grad() after backward() erases the gradients before step(): zero them first, then backward",
            _step_zero_grad_late),
]

register(Exercise(
    "02.train_step", "One training step", difficulty=3, importance=5, minutes=15,
    checker=_stateful_checker(STEP_CASES, _run_step, STEP_MISTAKES),
    hints=["Four things in order: the loss of this batch, clear the old gradients, compute the new ones, limit "
           "their overall size, then update the weights.",
           "The loss is your `next_token_loss` of `model(tokens)`. `optimizer.zero_grad()` comes before "
           "`loss.backward()`; clip with `torch.nn.utils.clip_grad_norm_` (the norm of all gradients together) "
           "before `optimizer.step()`.",
           "`loss = next_token_loss(model(tokens), tokens, loss_mask)`; `optimizer.zero_grad()`; `loss.backward()`; "
           "`torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)`; `optimizer.step()`; "
           "`return loss.item()`."],
    reference=train_step, mistakes=STEP_MISTAKES,
))

LOOP_MISTAKES = [
    Mistake("the learning rate should follow the schedule: set group['lr'] = config.lr_at(step) in every "
            "optimizer.param_groups before each step", _loop_constant_lr),
    Mistake("the schedule is one step ahead: step 0 (the first batch) uses config.lr_at(0)",
            _loop_schedule_off_by_one),
    Mistake("make the optimizer once, before the loop: a new AdamW every step forgets its running averages",
            _loop_new_optimizer_each_step),
]

register(Exercise(
    "02.train_loop", "The training loop", difficulty=3, importance=4, minutes=15,
    checker=_stateful_checker(LOOP_CASES, _run_loop, LOOP_MISTAKES),
    hints=["One optimiser for the whole run; before every step, set the learning rate the schedule gives for "
           "that step; then take the step and keep its loss.",
           "`torch.optim.AdamW` takes the parameter groups, `lr` and `betas`; its `param_groups` list holds a dict "
           "per group whose `lr` entry you can overwrite. Switch the model to training mode first and back to "
           "evaluation mode at the end.",
           "`optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, "
           "betas=config.betas)`; then `for step, (tokens, loss_mask) in enumerate(batches):` set `group['lr'] = "
           "config.lr_at(step)` for every group and append `train_step(model, optimizer, tokens, loss_mask, "
           "config.grad_clip)`."],
    reference=train_loop, mistakes=LOOP_MISTAKES,
))

function_exercise(
    "02.teacher_forced_exact", title="Teacher-forced exact match", difficulty=2, importance=3, minutes=8,
    reference=teacher_forced_exact, cases=_tf_cases,
    compare=lambda got, exp, args: diff_tensor(got, exp, name="result"),
    hints=["Teacher forcing: the model always sees the true prefix, so one forward pass gives its prediction for "
           "every position at once; an example counts when every answer token is predicted.",
           "The prediction for position t is the argmax of the logits at t - 1: shift like the loss does (logits "
           "without the last position, tokens and mask without the first).",
           "`right = (logits[:, :-1].argmax(-1) == tokens[:, 1:]) | ~loss_mask[:, 1:]`, then `right.all(dim=1)`."],
    mistakes=[Mistake("off by one position: the logits at t - 1 predict the token at t", _tf_no_shift),
              Mistake("shift the mask like the tokens: loss_mask[:, 1:] marks the targets of logits[:, :-1]",
                      _tf_mask_unshifted),
              Mistake("every answer token must be right (all), not just one (any)", _tf_any)],
)
