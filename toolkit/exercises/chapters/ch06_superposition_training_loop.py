"""Tutorial 06, part 3: the learner's own SAE training loop (it must recover planted features), then the
section-7 exercises of ``ch06_superposition`` (dead latents, dictionary size; registered here to keep the notebook's
order) and the reference answer of the notebook's open question.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit.exercises.chapters import ch06_superposition as base
from toolkit.exercises.chapters.ch06_superposition_training import _g, _unit_rows, remove_parallel_grad, sae_losses
from toolkit.exercises.core import Case, Exercise, Mistake, call, function_exercise, register
from toolkit.exercises.questions import question

Tensor = torch.Tensor


# --- a training loop the learner writes (custom checker: training is stochastic) ------------------------------


def _toy(seed: int = 0):
    from toolkit.unsupervised.toy_data import SparseFeatureData

    data = SparseFeatureData(d=16, n_features=24, n_active=2.0, decay=0.98, correlated=False, seed=seed)
    X = data.sample(4096, _g(seed + 1))
    return data, X


TRAIN_ARGS = {"d_sae": 48, "l1_coefficient": 0.1, "n_steps": 600, "batch_size": 64, "lr": 1e-2, "seed": 0}
MMCS_BOUND = 0.9


def train_sae(X: Tensor, d_sae: int, l1_coefficient: float, n_steps: int, batch_size: int, lr: float,
              seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train a ReLU SAE on ``X [n, d]``: decoder rows initialised as random unit vectors, ``W_enc = W_dec.T``,
    ``b_enc = 0``, ``b_dec = X.mean(0)``; Adam with learning rate ``lr``; each step takes ``batch_size`` random rows,
    minimises 06.sae_losses's ``loss``, removes the parallel part of the decoder's gradient and renormalises the
    decoder rows. Returns ``(W_enc [d, m], b_enc [m], W_dec [m, d], b_dec [d])``."""
    g = _g(seed)
    d = X.shape[1]
    W_dec = _unit_rows(torch.randn(d_sae, d, generator=g))
    params = [W_dec.T.clone(), torch.zeros(d_sae), W_dec, X.mean(0)]
    for p in params:
        p.requires_grad_(True)
    W_enc, b_enc, W_dec, b_dec = params
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(n_steps):
        x = X[torch.randint(0, X.shape[0], (batch_size,), generator=g)]
        latents = torch.relu((x - b_dec) @ W_enc + b_enc)
        loss = sae_losses(x, latents @ W_dec + b_dec, latents, W_dec, l1_coefficient)["loss"]
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            W_dec.grad = remove_parallel_grad(W_dec, W_dec.grad)
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
    return tuple(p.detach() for p in params)


def _train_variant(X, d_sae, l1_coefficient, n_steps, batch_size, lr, seed, renorm=True, l1=True, relu=True):
    g = _g(seed)
    W_dec = _unit_rows(torch.randn(d_sae, X.shape[1], generator=g))
    params = [W_dec.T.clone(), torch.zeros(d_sae), W_dec, X.mean(0)]
    for p in params:
        p.requires_grad_(True)
    W_enc, b_enc, W_dec, b_dec = params
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(n_steps):
        x = X[torch.randint(0, X.shape[0], (batch_size,), generator=g)]
        pre = (x - b_dec) @ W_enc + b_enc
        latents = torch.relu(pre) if relu else pre
        loss = (latents @ W_dec + b_dec - x).pow(2).sum(-1).mean()
        if l1:
            loss = loss + l1_coefficient * (latents.abs() * W_dec.norm(dim=1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if renorm:
            with torch.no_grad():
                W_dec /= W_dec.norm(dim=1, keepdim=True)
    return tuple(p.detach() for p in params)


def _train_no_renorm(X, d_sae, l1_coefficient, n_steps, batch_size, lr, seed):
    return _train_variant(X, d_sae, l1_coefficient, n_steps, batch_size, lr, seed, renorm=False)


def _train_no_l1(X, d_sae, l1_coefficient, n_steps, batch_size, lr, seed):
    return _train_variant(X, d_sae, l1_coefficient, n_steps, batch_size, lr, seed, l1=False)


def _train_no_relu(X, d_sae, l1_coefficient, n_steps, batch_size, lr, seed):
    return _train_variant(X, d_sae, l1_coefficient, n_steps, batch_size, lr, seed, relu=False)


MSG_SHAPES = "return the four trained tensors `(W_enc [d, m], b_enc [m], W_dec [m, d], b_dec [d])`"
MSG_RENORM = ("your decoder rows do not have unit norm: renormalise them after every step (`W_dec /= "
              "W_dec.norm(dim=1, keepdim=True)` under `torch.no_grad()`), or the L1 penalty can be dodged")
MSG_DENSE = ("your latents are dense (L0 far above the ~2 features active per row): add the L1 penalty "
             "(weighted by decoder norms) to the loss")
MSG_NEGATIVE = ("your encoder pre-activations are not rectified: train with `latents = torch.relu(...)`, as in "
                "06.sae_forward")


def _train_checker(fn) -> Any:
    from toolkit._threads import torch_threads
    from toolkit.unsupervised.metrics import mmcs

    data, X = _toy()
    with torch_threads(1):  # tiny matrices: one thread is several times faster on a shared machine
        got = call(fn, X.clone(), time_limit=60.0, **TRAIN_ARGS)
    name = "train on 16-d toy data with 24 planted features"
    if not isinstance(got, (tuple, list)) or len(got) != 4 or not all(isinstance(t, torch.Tensor) for t in got):
        yield Case(name, False, MSG_SHAPES)
        return
    W_enc, b_enc, W_dec, b_dec = (t.detach().float() for t in got)
    m, d = TRAIN_ARGS["d_sae"], X.shape[1]
    if (W_enc.shape, b_enc.shape, W_dec.shape, b_dec.shape) != ((d, m), (m,), (m, d), (d,)):
        yield Case(name, False, MSG_SHAPES)
        return
    if (W_dec.norm(dim=1) - 1).abs().max() > 1e-3:
        yield Case(name, False, MSG_RENORM)
        return
    pre = (X - b_dec) @ W_enc + b_enc
    l0 = float((pre > 0).float().sum(1).mean())
    score = mmcs(W_dec, data.features)
    if score >= MMCS_BOUND:
        yield Case(name, True)
        return
    recon = torch.relu(pre) @ W_dec + b_dec
    linear = (pre @ W_dec + b_dec - X).pow(2).sum(1).mean() < (recon - X).pow(2).sum(1).mean()
    if l0 > 4 * data.n_active and linear:
        yield Case(name, False, MSG_NEGATIVE, f"MMCS {score:.2f} (need {MMCS_BOUND})")
    elif l0 > 4 * data.n_active:
        yield Case(name, False, MSG_DENSE, f"MMCS {score:.2f} (need {MMCS_BOUND}), L0 {l0:.1f}")
    else:
        yield Case(name, False, f"your SAE's decoder recovers the planted features with MMCS {score:.2f}; it should "
                   f"reach {MMCS_BOUND} (U.SparseAutoencoder does on this data): compare your loop with the "
                   "docstring step by step")


register(Exercise(
    "06.train_sae", "Train an SAE that recovers planted features", difficulty=4, importance=5, minutes=25,
    checker=_train_checker, reference=train_sae,
    hints=["Put the pieces you wrote together: initialise, then repeat forward pass, loss, backward, fix the "
           "decoder's gradient, step, fix the decoder rows.",
           "Make the four parameters leaf tensors with `requires_grad_(True)` and give them to one "
           "`torch.optim.Adam`; draw each batch with `torch.randint` and a seeded `torch.Generator`.",
           "Each step: `latents = torch.relu((x - b_dec) @ W_enc + b_enc)`, `loss = sae_losses(x, latents @ W_dec "
           "+ b_dec, latents, W_dec, l1_coefficient)['loss']`, `opt.zero_grad(); loss.backward()`, "
           "`W_dec.grad = remove_parallel_grad(W_dec, W_dec.grad)`, `opt.step()`, then under `torch.no_grad()`: "
           "`W_dec /= W_dec.norm(dim=1, keepdim=True)`."],
    mistakes=[Mistake(MSG_RENORM, _train_no_renorm), Mistake(MSG_DENSE, _train_no_l1),
              Mistake(MSG_NEGATIVE, _train_no_relu)],
))



# --- dead latents and dictionary size (section 7; registered here to keep the notebook's order) -----------

function_exercise(
    "06.dead_latents", title="Find the dead latents", difficulty=1, importance=3, minutes=5,
    reference=base.dead_latents, cases=base._dead_cases, compare=base._compare_default,
    hints=["A latent is dead if it is at or below `threshold` on *every* sample.",
           "Compare the whole [n, m] matrix with the threshold, then reduce over the samples (dim=0).",
           "`(latents <= threshold).all(dim=0)`"],
    mistakes=[Mistake("a latent that is silent on *some* samples is just sparse; dead means silent on *all* "
                      "samples (`.all`, not `.any`)", base._dead_any),
              Mistake("you returned the alive latents: True should mark the dead ones", base._dead_alive),
              Mistake("return a BoolTensor [m] (one entry per latent), not the fraction of dead latents",
                      base._dead_fraction),
              Mistake("use the `threshold` argument instead of 0", base._dead_ignores_threshold)],
)
function_exercise(
    "06.size_agreement", title="Dictionary size without ground truth", difficulty=2, importance=4, minutes=10,
    reference=base.size_agreement, cases=base._agreement_cases, compare=base._compare_agreement,
    hints=["Loop over the sizes m for which `2 * m` is also a key of `decoders`; the largest size has no partner.",
           "Keep only alive rows: `decoders[m][alive[m]]`; dead latents keep their random initial directions.",
           "Reuse your `mmcs(learned, true)`: the smaller dictionary plays the role of the true features, so "
           "`mmcs(large_alive, small_alive)`."],
    mistakes=[Mistake("drop the dead latents (use `alive[m]` as a row mask) before comparing: dead latents are "
                      "leftover random directions", base._agree_with_dead),
              Mistake("compare the other way round: each direction of the *smaller* dictionary looks for its best "
                      "match in the larger one, i.e. `mmcs(decoders[2 * m][...], decoders[m][...])`",
                      base._agree_reversed),
              Mistake("only sizes m whose 2m partner exists get an entry", base._agree_every_size)],
)


# --- open question (reference answer written with the notebook's numbers; shown after an attempt) -------------


def _undertrained_agreement(agreement: dict[int, float], truth: dict[int, float], full_mmcs: float,
                            short_mmcs: float, n_features: int) -> str:
    best = max(agreement, key=agreement.get)
    return (f"An undertrained 2m dictionary has not yet separated the features. Section 5 measured how much that "
            f"costs here: a tenth of the training samples took the MMCS from {full_mmcs:.2f} to {short_mmcs:.2f}. "
            f"Every small dictionary would then agree worse with its double, and not by the same amount at every "
            f"size, so the peak (now at m = {best}, agreement {agreement[best]:.2f}; the data has {n_features} "
            f"features) can move or vanish: you would choose a size for the wrong reason. Guards: train every "
            f"size to convergence (loss and L0 curves flat), give the 2m dictionary at least as many samples as "
            f"the m one, and check that the peak is stable across seeds. (Against the ground truth the MMCS ranged "
            f"from {min(truth.values()):.2f} to {max(truth.values()):.2f} over the sizes.)")


question("06.undertrained_agreement", _undertrained_agreement)
