"""Tutorial 06, part 2: *build the SAE trainer yourself* before the notebook switches to ``U.SparseAutoencoder``.

Exercises: SAELens's loss terms (decoder-norm-weighted L1), removing the gradient component parallel to the
unit-norm decoder rows, one full training step, the dead-latent counter and firing density, resampling dead latents
(Anthropic's recipe, as ``toolkit.unsupervised.train.resample_dead``); the training loop is in
``ch06_superposition_training_loop``. References call the toolkit's own training code (``toolkit.unsupervised.train``)
wherever it has a function for the step, so a learner's answer is checked against what ``U.SparseAutoencoder`` does.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit.exercises.compare import diff_tensor
from toolkit.exercises.core import Mistake, function_exercise

Tensor = torch.Tensor


# --- references -------------------------------------------------------------------------------------------


def sae_losses(x: Tensor, x_hat: Tensor, latents: Tensor, W_dec: Tensor, l1_coefficient: float) -> dict[str, Tensor]:
    """SAELens's loss terms for ``x, x_hat [n, d]``, ``latents [n, m]``, ``W_dec [m, d]``:

    ``mse_loss = mean_n sum_d (x_hat - x)^2``; ``l1_loss = l1_coefficient * mean_n sum_m latents * ||W_dec row||``
    (the L1 weighted by decoder norms, so that shrinking latents while growing the decoder does not pay);
    ``loss = mse_loss + l1_loss``. Returns ``{"mse_loss", "l1_loss", "loss"}``, scalar tensors.
    """
    mse_loss = (x_hat - x).pow(2).sum(-1).mean()
    l1_loss = l1_coefficient * (latents * W_dec.norm(dim=1)).sum(-1).mean()
    return {"mse_loss": mse_loss, "l1_loss": l1_loss, "loss": mse_loss + l1_loss}


def remove_parallel_grad(W_dec: Tensor, grad: Tensor) -> Tensor:
    """The gradient ``grad [m, d]`` of unit-norm decoder rows ``W_dec [m, d]`` with each row's component along its
    decoder row removed: ``grad_j - (grad_j . W_dec_j) W_dec_j``. A step along what is left only turns the row."""
    return grad - (grad * W_dec).sum(1, keepdim=True) * W_dec


def sae_train_step(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, l1_coefficient: float,
                   lr: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One plain gradient-descent step of a ReLU SAE on ``x [n, d]``, as ``toolkit.unsupervised.train.train_step``.

    Loss: ``mean_n ||x_hat - x||^2 + l1_coefficient * mean_n sum_m latents`` with the forward pass of 06.sae_forward
    (``W_dec`` has unit rows, so this is SAELens's weighted L1). Remove the gradient component parallel to each
    decoder row, update every parameter ``p - lr * grad``, then rescale the decoder rows to unit norm.
    Returns the new ``(W_enc [d, m], b_enc [m], W_dec [m, d], b_dec [d])``.
    """
    from toolkit.unsupervised import train as T

    st = T.SAEState(W_enc.clone(), b_enc.clone(), W_dec.clone(), b_dec.clone(), lr=lr, betas=(0.9, 0.999),
                    freeze_decoder=False)
    st.opt = torch.optim.SGD([st.W_enc, st.b_enc, st.b_dec, st.W_dec], lr=lr)  # the toolkit uses Adam
    T.train_step(st, x, "relu", None, l1_coefficient, True, None, 1, 0.0, False)
    return tuple(p.detach().clone() for p in (st.W_enc, st.b_enc, st.W_dec, st.b_dec))


def update_since_fired(since_fired: Tensor, latents: Tensor) -> Tensor:
    """The toolkit's dead-latent counter after one batch ``latents [b, m]``: every entry of ``since_fired [m]``
    (rows seen since the latent last fired) grows by ``b``, and is reset to 0 for each latent that fired
    (was > 0) on at least one row of the batch. Returns a new ``[m]`` long tensor."""
    fired = (latents > 0).any(dim=0)
    return (since_fired + latents.shape[0]).masked_fill(fired, 0)


def feature_density(latent_batches: list[Tensor]) -> Tensor:
    """Firing rate ``[m]`` of each latent over a window of batches (each ``[b_i, m]``): the number of rows on which
    it was > 0, divided by the number of rows in the window (SAELens's ``feature_density``; the toolkit's
    ``feature_density_``)."""
    fires = sum((b > 0).sum(dim=0) for b in latent_batches)
    rows = sum(b.shape[0] for b in latent_batches)
    return fires.float() / max(rows, 1)


def resample_dead(x: Tensor, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor, dead: Tensor,
                  seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Re-initialise the dead latents (indices ``dead [k]``) on the batch ``x [n, d]``, as
    ``toolkit.unsupervised.train.resample_dead``:

    1. residual ``r = x - x_hat`` of every row; loss ``= ||r||^2``; draw ``k`` rows with probability proportional to
       the *squared* loss: ``torch.multinomial(loss ** 2, k, replacement=k > n, generator=g)``,
       ``g = torch.Generator().manual_seed(seed)``;
    2. decoder row of each dead latent = its drawn residual at unit length;
    3. encoder column = that unit direction times ``0.2 *`` the mean norm of the *alive* encoder columns;
    4. encoder bias of the dead latents = 0.
    Returns new ``(W_enc [d, m], b_enc [m], W_dec [m, d])``.
    """
    from toolkit.unsupervised import train as T

    st = T.SAEState(W_enc.clone(), b_enc.clone(), W_dec.clone(), b_dec.clone(), lr=1e-3, betas=(0.9, 0.999),
                    freeze_decoder=False)
    T.resample_dead(st, dead, x, "relu", None, True, torch.Generator().manual_seed(seed))
    return tuple(p.detach().clone() for p in (st.W_enc, st.b_enc, st.W_dec))


# --- plausible mistakes -----------------------------------------------------------------------------------


def _losses_unweighted(x, x_hat, latents, W_dec, l1_coefficient):
    mse = (x_hat - x).pow(2).sum(-1).mean()
    l1 = l1_coefficient * latents.sum(-1).mean()
    return {"mse_loss": mse, "l1_loss": l1, "loss": mse + l1}


def _losses_l1_without_coeff(x, x_hat, latents, W_dec, l1_coefficient):
    mse = (x_hat - x).pow(2).sum(-1).mean()
    l1 = (latents * W_dec.norm(dim=1)).sum(-1).mean()
    return {"mse_loss": mse, "l1_loss": l1, "loss": mse + l1_coefficient * l1}


def _losses_mean_mse(x, x_hat, latents, W_dec, l1_coefficient):
    mse = (x_hat - x).pow(2).mean()
    l1 = l1_coefficient * (latents * W_dec.norm(dim=1)).sum(-1).mean()
    return {"mse_loss": mse, "l1_loss": l1, "loss": mse + l1}


def _losses_squared_norms(x, x_hat, latents, W_dec, l1_coefficient):
    mse = (x_hat - x).pow(2).sum(-1).mean()
    l1 = l1_coefficient * (latents * W_dec.pow(2).sum(1)).sum(-1).mean()
    return {"mse_loss": mse, "l1_loss": l1, "loss": mse + l1}


def _parallel_only(W_dec, grad):
    return (grad * W_dec).sum(1, keepdim=True) * W_dec


def _parallel_columns(W_dec, grad):
    return grad - (grad * W_dec).sum(0, keepdim=True) * W_dec


def _parallel_scalar(W_dec, grad):
    return grad - (grad * W_dec).sum() * W_dec


def _autograd_step(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient, lr, project=True, renorm=True,
                   pre_bias=True, renorm_dim=1, batch_sum=False):
    params = [p.clone().requires_grad_(True) for p in (W_enc, b_enc, W_dec, b_dec)]
    we, be, wd, bd = params
    latents = torch.relu(((x - bd) if pre_bias else x) @ we + be)
    x_hat = latents @ wd + bd
    red = (lambda t: t.sum()) if batch_sum else (lambda t: t.sum(-1).mean())
    loss = red((x_hat - x).pow(2)) + l1_coefficient * red(latents)
    loss.backward()
    with torch.no_grad():
        if project:
            wd.grad = remove_parallel_grad(wd, wd.grad)
        for p in params:
            p -= lr * p.grad
        if renorm:
            wd /= wd.norm(dim=renorm_dim, keepdim=True)
    return tuple(p.detach() for p in params)


def _step_no_projection(*args):
    return _autograd_step(*args, project=False)


def _step_no_renorm(*args):
    return _autograd_step(*args, renorm=False)


def _step_renorm_columns(*args):
    return _autograd_step(*args, renorm_dim=0)


def _step_no_pre_bias(*args):
    return _autograd_step(*args, pre_bias=False)


def _since_never_reset(since_fired, latents):
    return since_fired + latents.shape[0]


def _since_counts_batches(since_fired, latents):
    return (since_fired + 1).masked_fill((latents > 0).any(dim=0), 0)


def _since_counts_silent_rows(since_fired, latents):
    return (since_fired + (latents <= 0).sum(dim=0)).masked_fill((latents > 0).all(dim=0), 0)


def _density_mean_of_means(latent_batches):
    return torch.stack([(b > 0).float().mean(0) for b in latent_batches]).mean(0)


def _density_any(latent_batches):
    return torch.stack([(b > 0).any(0) for b in latent_batches]).float().mean(0)


def _density_counts(latent_batches):
    return sum((b > 0).sum(dim=0) for b in latent_batches).float()


def _resample(x, W_enc, b_enc, W_dec, b_dec, dead, seed, power=2, use_x=False, enc_scale=True, zero_bias=True,
              all_norms=False, unit_dec=True):
    latents = torch.relu((x - b_dec) @ W_enc + b_enc)
    resid = x - (latents @ W_dec + b_dec)
    loss = resid.pow(2).sum(1)
    k = dead.numel()
    rows = torch.multinomial(loss.pow(power), k, replacement=k > x.shape[0],
                             generator=torch.Generator().manual_seed(seed))
    dirs = (x if use_x else resid)[rows]
    unit = dirs / dirs.norm(dim=1, keepdim=True)
    alive = torch.ones(W_enc.shape[1], dtype=torch.bool)
    alive[dead] = False
    norm = W_enc.norm(dim=0).mean() if all_norms else W_enc[:, alive].norm(dim=0).mean()
    W_enc, b_enc, W_dec = W_enc.clone(), b_enc.clone(), W_dec.clone()
    W_dec[dead] = unit if unit_dec else dirs
    W_enc[:, dead] = unit.T * (0.2 * norm if enc_scale else 1.0)
    if zero_bias:
        b_enc[dead] = 0.0
    return W_enc, b_enc, W_dec


def _resample_loss_not_squared(*args):
    return _resample(*args, power=1)


def _resample_from_x(*args):
    return _resample(*args, use_x=True)


def _resample_unit_encoder(*args):
    return _resample(*args, enc_scale=False)


def _resample_keeps_bias(*args):
    return _resample(*args, zero_bias=False)


def _resample_norm_with_dead(*args):
    return _resample(*args, all_norms=True)


def _resample_raw_decoder(*args):
    return _resample(*args, unit_dec=False)


# --- cases ------------------------------------------------------------------------------------------------


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit_rows(w: Tensor) -> Tensor:
    return w / w.norm(dim=1, keepdim=True)


def _params(d: int, m: int, n: int, seed: int, unit: bool = True) -> tuple[Tensor, ...]:
    g = _g(seed)
    W_dec = torch.randn(m, d, generator=g)
    W_dec = _unit_rows(W_dec) if unit else W_dec * torch.rand(m, 1, generator=g).add(0.5)
    return (torch.randn(n, d, generator=g) + 0.3, 0.7 * W_dec.T.clone() + 0.2 * torch.randn(d, m, generator=g),
            0.1 * torch.randn(m, generator=g), W_dec, 0.2 * torch.randn(d, generator=g))


def _loss_cases():
    out = []
    for name, (d, m, seed, coeff) in {"d=6, m=12, decoder rows of unequal norm, l1=0.3": (6, 12, 611, 0.3),
                                      "d=4, m=10, l1=2.0": (4, 10, 612, 2.0)}.items():
        x, W_enc, b_enc, W_dec, b_dec = _params(d, m, 16, seed, unit=False)
        latents = torch.relu((x - b_dec) @ W_enc + b_enc)
        out.append((name, (x, latents @ W_dec + b_dec, latents, W_dec, coeff)))
    return out


def _parallel_cases():
    g = _g(613)
    return [("12 unit decoder rows in 6 dimensions", (_unit_rows(torch.randn(12, 6, generator=g)),
                                                      torch.randn(12, 6, generator=g))),
            ("a gradient that points along the rows", (_unit_rows(torch.randn(5, 5, generator=g)) * 1.0,
                                                        2.0 * torch.randn(5, 5, generator=g)))]


def _step_cases():
    return [("d=6, m=12, 16 rows, lr=0.2", (*_params(6, 12, 16, 614), 0.1, 0.2)),
            ("d=4, m=8, 32 rows, l1=0.5, lr=0.3", (*_params(4, 8, 32, 615), 0.5, 0.3))]


def _since_cases():
    g = _g(616)
    lat = torch.relu(torch.randn(8, 6, generator=g))
    lat[:, 2] = 0.0
    lat[3, 2] = 0.0
    lat[:, 4] = 0.0
    lat[5, 4] = 0.3  # fires on one row only
    return [("8 rows, 6 latents, counters from earlier batches", (torch.tensor([0, 40, 8, 3, 100, 16]), lat)),
            ("nothing fired", (torch.tensor([5, 0, 12]), torch.zeros(4, 3)))]


def _density_cases():
    g = _g(617)
    b1 = torch.relu(torch.randn(16, 5, generator=g))
    b2 = torch.relu(torch.randn(4, 5, generator=g) - 1)
    b1[:, 3] = 0.0
    return [("two batches of 16 and 4 rows", ([b1, b2],)),
            ("one batch of 10 rows", ([torch.relu(torch.randn(10, 3, generator=g))],))]


def _resample_cases():
    out = []
    for name, (d, m, n, seed, dead) in {"d=6, m=12, 3 dead latents": (6, 12, 20, 618, [1, 5, 9]),
                                        "d=4, m=8, 5 dead latents, a batch of 4 rows": (4, 8, 4, 619,
                                                                                      [0, 2, 3, 6, 7])}.items():
        x, W_enc, b_enc, W_dec, b_dec = _params(d, m, n, seed)
        x = x * torch.linspace(0.2, 3.0, n)[:, None]  # rows with very different losses
        b_enc = b_enc + 0.5
        W_enc[:, dead[0]] *= 4.0  # a dead latent with a large encoder column
        out.append((name, (x, W_enc, b_enc, W_dec, b_dec, torch.tensor(dead), seed)))
    return out


# --- comparisons ------------------------------------------------------------------------------------------


def _cmp_losses(got: Any, expected: dict[str, Tensor], args: tuple) -> str | None:
    if not isinstance(got, dict) or set(got) != set(expected):
        return f"return a dict with SAELens's keys {sorted(expected)}"
    for key in ("mse_loss", "l1_loss", "loss"):
        val = got[key].reshape(()) if isinstance(got[key], torch.Tensor) and got[key].numel() == 1 else got[key]
        problem = diff_tensor(val, expected[key], name=key, atol=1e-5)
        if problem:
            return problem
    return None


def _cmp_tuple(names: tuple[str, ...], atol: float = 1e-5):
    def compare(got: Any, expected: tuple, args: tuple) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != len(names):
            return f"return a tuple `({', '.join(names)})`"
        for name, g, e in zip(names, got, expected):
            problem = diff_tensor(g, e, name=name, atol=atol)
            if problem:
                return problem
        return None

    return compare


def _cmp_tensor(name: str, atol: float = 1e-5):
    return lambda got, expected, args: diff_tensor(got, expected, name=name, atol=atol)


# --- registrations ----------------------------------------------------------------------------------------

function_exercise(
    "06.sae_losses", title="SAELens's loss terms", difficulty=3, importance=4, minutes=10,
    reference=sae_losses, cases=_loss_cases, compare=_cmp_losses,
    hints=["Two terms, reported separately and summed. The sparsity term charges each latent in proportion to how "
           "long its decoder direction is, so the SAE cannot cheat by making latents tiny and decoder rows huge.",
           "Both terms sum over their own dimension (d for the error, m for the latents) and average over the "
           "batch. The decoder-row lengths are a vector of m numbers that multiplies the latents column-wise.",
           "`mse_loss = (x_hat - x).pow(2).sum(-1).mean()`, `l1_loss = l1_coefficient * (latents * "
           "W_dec.norm(dim=1)).sum(-1).mean()`, `loss = mse_loss + l1_loss`."],
    mistakes=[Mistake("weight each latent by the norm of its decoder row (`W_dec.norm(dim=1)`): otherwise the SAE "
                      "can shrink the latents and grow the decoder to dodge the penalty", _losses_unweighted),
              Mistake("SAELens's `l1_loss` already includes `l1_coefficient`", _losses_l1_without_coeff),
              Mistake("`mse_loss` sums the squared error over the d dimensions and averages over the batch only",
                      _losses_mean_mse),
              Mistake("weight by the decoder row *norm*, not its squared norm", _losses_squared_norms)],
)

function_exercise(
    "06.remove_parallel_grad", title="Keep the decoder rows on the unit sphere", difficulty=3, importance=3,
    minutes=8, reference=remove_parallel_grad, cases=_parallel_cases, compare=_cmp_tensor("gradient"),
    hints=["A step along a unit row itself only changes its length, which the renormalisation undoes anyway; keep "
           "only the part of each row's gradient perpendicular to that row.",
           "For every row j: one dot product of its gradient with its (unit) decoder row, a number per row, times "
           "the decoder row, subtracted from the gradient.",
           "`grad - (grad * W_dec).sum(1, keepdim=True) * W_dec`"],
    mistakes=[Mistake("you returned the parallel component: subtract it from the gradient instead", _parallel_only),
              Mistake("project each *row* (a latent's decoder direction, dim=1), not each column", _parallel_columns),
              Mistake("take one dot product per row (`.sum(1, keepdim=True)`), not one over the whole matrix",
                      _parallel_scalar)],
)

function_exercise(
    "06.sae_train_step", title="One SAE training step", difficulty=4, importance=5, minutes=20,
    reference=sae_train_step, cases=_step_cases, compare=_cmp_tuple(("W_enc", "b_enc", "W_dec", "b_dec"), 1e-4),
    hints=["Four stages: forward pass and loss, gradients (autograd is fine), a change to the decoder's gradient, "
           "the update, and one repair of the decoder afterwards.",
           "Clone the four parameters with `requires_grad_(True)`, compute the loss as in 06.sae_losses (decoder rows "
           "are unit length, so the plain L1 sum), call `backward()`, then under `torch.no_grad()` use your "
           "remove_parallel_grad on the decoder's gradient, step every parameter and renormalise the decoder rows.",
           "`loss = (x_hat - x).pow(2).sum(-1).mean() + l1_coefficient * latents.sum(-1).mean()`; after "
           "`loss.backward()`: `W_dec.grad = remove_parallel_grad(W_dec, W_dec.grad)`, `p -= lr * p.grad` for each "
           "p, then `W_dec /= W_dec.norm(dim=1, keepdim=True)`; return the four detached tensors."],
    mistakes=[Mistake("remove the gradient component parallel to each decoder row before the step",
                      _step_no_projection),
              Mistake("after the step, rescale each decoder row to unit norm", _step_no_renorm),
              Mistake("renormalise the decoder *rows* (dim=1: one direction per latent), not its columns",
                      _step_renorm_columns),
              Mistake("the forward pass subtracts the decoder bias before encoding (`x - b_dec`)", _step_no_pre_bias)],
)

function_exercise(
    "06.update_since_fired", title="Count rows since each latent fired", difficulty=2, importance=3, minutes=6,
    reference=update_since_fired, cases=_since_cases, compare=_cmp_tensor("since_fired"),
    hints=["Every latent's counter grows by the number of rows in the batch; the latents that fired anywhere in the "
           "batch start again from zero.",
           "A latent fired if it is > 0 on at least one row: reduce a boolean [b, m] matrix over the rows.",
           "`fired = (latents > 0).any(dim=0)`, then `(since_fired + latents.shape[0]).masked_fill(fired, 0)`."],
    mistakes=[Mistake("reset the counter of every latent that fired in this batch to 0", _since_never_reset),
              Mistake("count rows, not batches: add the batch size `latents.shape[0]`", _since_counts_batches),
              Mistake("one firing row is enough to reset a latent's counter (`.any(dim=0)`, not `.all`)",
                      _since_counts_silent_rows)],
)

function_exercise(
    "06.feature_density", title="Firing density over a window", difficulty=2, importance=3, minutes=5,
    reference=feature_density, cases=_density_cases, compare=_cmp_tensor("density"),
    hints=["The density of a latent is the fraction of all the rows in the window on which it fired.",
           "Add up the firing counts of every batch and divide by the total number of rows (batches can differ in "
           "size, so do not average the per-batch fractions).",
           "`sum((b > 0).sum(dim=0) for b in latent_batches).float() / sum(b.shape[0] for b in latent_batches)`"],
    mistakes=[Mistake("batches differ in size: divide the total count by the total number of rows, not average "
                      "the per-batch rates", _density_mean_of_means),
              Mistake("count the rows on which a latent fired, not the batches", _density_any),
              Mistake("divide the counts by the number of rows in the window", _density_counts)],
)

function_exercise(
    "06.resample_dead", title="Resample dead latents", difficulty=4, importance=4, minutes=20,
    reference=resample_dead, cases=_resample_cases, compare=_cmp_tuple(("W_enc", "b_enc", "W_dec"), 1e-4),
    hints=["Dead latents get a new job: point them at inputs the SAE reconstructs worst. Which inputs, and how "
           "strong the new encoder is, both follow the docstring's recipe.",
           "Run the forward pass, take the residual x - x_hat and its squared norm per row, draw rows with "
           "`torch.multinomial` from the squared losses, normalise the drawn residuals; the encoder scale comes "
           "from the alive columns only.",
           "`W_dec[dead] = unit`, `W_enc[:, dead] = unit.T * 0.2 * W_enc[:, alive].norm(dim=0).mean()` (computed "
           "before you overwrite anything), `b_enc[dead] = 0`; work on clones and return `(W_enc, b_enc, W_dec)`."],
    mistakes=[Mistake("draw rows with probability proportional to the *squared* loss (`loss ** 2`)",
                      _resample_loss_not_squared),
              Mistake("use the residual `x - x_hat` (what the SAE misses), not the input itself", _resample_from_x),
              Mistake("scale the new encoder columns to 0.2 x the mean norm of the alive encoder columns",
                      _resample_unit_encoder),
              Mistake("set the encoder bias of the resampled latents to 0", _resample_keeps_bias),
              Mistake("the encoder scale uses the *alive* columns only (dead columns can be arbitrarily large)",
                      _resample_norm_with_dead),
              Mistake("the new decoder rows must have unit norm", _resample_raw_decoder)],
)
