"""Tutorial 07, part 3: CCS built by the learner before the notebook calls ``U.CCS``: the loss of many probes at
once (``U.CCS._loss``), the optimiser with random restarts (``U.CCS.fit`` given the same initial probes, in the
tests) and the sign ambiguity (choose the sign with a few labels, then score honestly on the rest). Also registers
``ch07_discovery``'s section 7-8 exercises (planting a feature, normalising pairs, the CCS loss) so that
``ex.overview("07")`` lists the exercises in the notebook's order, and the open question's reference answer.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit._threads import torch_threads
from toolkit.exercises.chapters import ch07_discovery as base
from toolkit.exercises.compare import diff_tensor, diff_value
from toolkit.exercises.core import Mistake, function_exercise
from toolkit.exercises.questions import question

Tensor = torch.Tensor


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ccs_probe_losses(a: Tensor, b: Tensor, w: Tensor, bias: Tensor) -> Tensor:
    """The CCS loss of ``r`` probes at once, as ``U.CCS``: ``a, b [n, d]`` are the normalised positive / negative
    sides, probe ``j`` is ``p = sigmoid(x @ w[:, j] + bias[j])`` (``w [d, r]``, ``bias [r]``).
    Returns ``[r]``: each probe's ``mean_n (p+ - (1 - p-))^2 + mean_n min(p+, p-)^2``."""
    from toolkit.unsupervised import CCS

    return CCS._loss(a, b, w, bias)


def fit_ccs(x_pos: Tensor, x_neg: Tensor, w0: Tensor, n_epochs: int, lr: float,
            weight_decay: float) -> tuple[Tensor, float, Tensor]:
    """CCS with random restarts, as ``U.CCS.fit``: normalise each side (06's ``normalise_pairs``), start the ``r``
    probes at ``w0 [d, r]`` with biases 0, train all of them together with ``torch.optim.AdamW(lr, weight_decay)``
    for ``n_epochs`` full-batch steps on the *sum* of their losses; then keep the probe with the lowest final loss.
    Returns ``(direction [d], bias, final losses [r])``."""
    a = (x_pos - x_pos.mean(0)) / x_pos.std(0).clamp_min(1e-6)
    b = (x_neg - x_neg.mean(0)) / x_neg.std(0).clamp_min(1e-6)
    w = w0.clone().requires_grad_(True)
    bias = torch.zeros(w0.shape[1], requires_grad=True)
    opt = torch.optim.AdamW([w, bias], lr=lr, weight_decay=weight_decay)
    with torch_threads(1):  # tiny matrices: one thread, as U.CCS (much faster on a shared machine)
        for _ in range(n_epochs):
            losses = ccs_probe_losses(a, b, w, bias)
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
    with torch.no_grad():
        losses = ccs_probe_losses(a, b, w, bias)
    best = int(losses.argmin())
    return w.detach()[:, best].clone(), float(bias.detach()[best]), losses.detach()


def resolve_sign(p: Tensor, y: Tensor, labelled: Tensor) -> tuple[bool, float]:
    """CCS cannot tell true from false: its probe may come out upside down. Predict ``p > 0.5`` from the
    probabilities ``p [n]``; use only the ``labelled [n]`` rows (bool) and their labels ``y [n]`` (bool) to decide
    whether to flip the predictions (flip when fewer than half of the labelled rows are right). Return
    ``(flipped, accuracy)``, the accuracy of the (possibly flipped) predictions on the *unlabelled* rows, with no
    further ``max(acc, 1 - acc)``."""
    pred = p > 0.5
    flipped = bool((pred[labelled] == y[labelled]).float().mean() < 0.5)
    if flipped:
        pred = ~pred
    return flipped, float((pred[~labelled] == y[~labelled]).float().mean())


def _ccs_losses(a, b, w, bias, sigmoid=True, use_bias=True, consistency_diff=False, axis=0):
    z_a, z_b = a @ w + (bias if use_bias else 0), b @ w + (bias if use_bias else 0)
    p_pos, p_neg = (torch.sigmoid(z_a), torch.sigmoid(z_b)) if sigmoid else (z_a, z_b)
    cons = (p_pos - p_neg) if consistency_diff else (p_pos - (1 - p_neg))
    return cons.pow(2).mean(axis) + torch.minimum(p_pos, p_neg).pow(2).mean(axis)


def _ccs_no_sigmoid(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, sigmoid=False)


def _ccs_no_bias(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, use_bias=False)


def _ccs_loss_over_probes(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, axis=1)


def _ccs_diff(a, b, w, bias):
    return _ccs_losses(a, b, w, bias, consistency_diff=True)


def _fit(x_pos, x_neg, w0, n_epochs, lr, weight_decay, pick=torch.argmin, normalise=True, only_first=False,
         adam=False):
    if normalise:
        a = (x_pos - x_pos.mean(0)) / x_pos.std(0).clamp_min(1e-6)
        b = (x_neg - x_neg.mean(0)) / x_neg.std(0).clamp_min(1e-6)
    else:
        a, b = x_pos, x_neg
    w = (w0[:, :1] if only_first else w0).clone().requires_grad_(True)
    bias = torch.zeros(w.shape[1], requires_grad=True)
    opt = (torch.optim.Adam if adam else torch.optim.AdamW)([w, bias], lr=lr, weight_decay=weight_decay)
    with torch_threads(1):
        for _ in range(n_epochs):
            losses = ccs_probe_losses(a, b, w, bias)
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
    with torch.no_grad():
        losses = ccs_probe_losses(a, b, w, bias)
    best = int(pick(losses))
    if only_first:
        losses = losses.expand(w0.shape[1])
    return w.detach()[:, best].clone(), float(bias.detach()[best]), losses.detach()


def _fit_argmax(*args):
    return _fit(*args, pick=torch.argmax)


def _fit_unnormalised(*args):
    return _fit(*args, normalise=False)


def _fit_first_restart(*args):
    return _fit(*args, only_first=True)


def _fit_adam(*args):
    return _fit(*args, adam=True)


def _sign_max(p, y, labelled):
    pred = p > 0.5
    acc = float((pred[~labelled] == y[~labelled]).float().mean())
    flipped = acc < 0.5
    return flipped, max(acc, 1 - acc)


def _sign_scores_labelled_too(p, y, labelled):
    pred = p > 0.5
    flipped = bool((pred[labelled] == y[labelled]).float().mean() < 0.5)
    pred = ~pred if flipped else pred
    return flipped, float((pred == y).float().mean())


def _sign_never_flips(p, y, labelled):
    pred = p > 0.5
    return False, float((pred[~labelled] == y[~labelled]).float().mean())


def _probe_cases():
    g = _g(742)
    a, b = torch.randn(25, 6, generator=g), torch.randn(25, 6, generator=g)
    return [("25 pairs, 6 dimensions, 4 probes", (a, b, torch.randn(6, 4, generator=g), torch.randn(4, generator=g))),
            ("10 pairs, 3 dimensions, 7 probes", (a[:10, :3], b[:10, :3], 2 * torch.randn(3, 7, generator=g),
                                                  0.5 * torch.randn(7, generator=g)))]


def _fit_cases():
    from toolkit.unsupervised import make_contrast_pairs

    data = make_contrast_pairs(n=40, d=8, truth_strength=1.5, seed=3)
    w0 = torch.randn(8, 5, generator=_g(743)) / 8 ** 0.5
    return [("40 contrast pairs, 8 dimensions, 5 restarts, 100 epochs",
             (data["x_pos"], data["x_neg"], w0, 100, 0.02, 0.01))]


def _sign_cases():
    g = _g(744)
    y = torch.rand(40, generator=g) < 0.5
    p = torch.where(y, 0.2, 0.8) + 0.1 * torch.randn(40, generator=g)  # an upside-down probe
    p[::7] = 1 - p[::7]  # with a few mistakes
    labelled = torch.zeros(40, dtype=torch.bool)
    labelled[:6] = True
    y2 = torch.rand(30, generator=g) < 0.5
    p2 = torch.rand(30, generator=g)  # a useless probe: chance on the held-out rows
    lab2 = torch.zeros(30, dtype=torch.bool)
    lab2[[0, 3, 5, 8]] = True
    p2[lab2] = torch.where(y2[lab2], 0.9, 0.1)  # ... which happens to be right on the labelled rows
    p2[~lab2] = torch.where(y2[~lab2], 0.3, 0.7)
    p2[~lab2 & (torch.arange(30) % 3 == 0)] = 1 - p2[~lab2 & (torch.arange(30) % 3 == 0)]
    return [("an upside-down probe, 6 of 40 rows labelled", (p, y, labelled)),
            ("a probe that looks right on 4 labelled rows and is wrong on most others", (p2, y2, lab2))]


def _cmp_losses(got: Any, expected: Tensor, args: tuple) -> str | None:
    return diff_tensor(got, expected, name="losses", atol=1e-5)


def _cmp_fit(got: Any, expected: tuple, args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return "return a tuple `(direction, bias, losses)`"
    return (diff_tensor(got[0], expected[0], name="direction", atol=1e-4)
            or diff_value(float(got[1]) if isinstance(got[1], torch.Tensor) else got[1], expected[1], name="bias",
                          tol=1e-4)
            or diff_tensor(got[2], expected[2], name="losses", atol=1e-4))


def _cmp_sign(got: Any, expected: tuple[bool, float], args: tuple) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple `(flipped, accuracy)`"
    flipped = bool(got[0]) if isinstance(got[0], (bool, torch.Tensor)) else got[0]
    acc = float(got[1]) if isinstance(got[1], torch.Tensor) else got[1]
    return diff_value((flipped, acc), expected, name="(flipped, accuracy)", tol=1e-6)


function_exercise(
    "07.plant_feature", title="Plant a feature you know is there", difficulty=1, importance=4, minutes=5,
    reference=base.plant_feature, cases=base._plant_cases, compare=base._cmp_tensor("activations"),
    hints=["Normalise the direction to unit length first, so `strength` is the size of the planted signal.",
           "Add `strength * unit` only to the rows where `on` is True: `on[:, None]` broadcasts over dimensions."],
    mistakes=[Mistake("normalise the direction to unit length, so that `strength` alone sets the signal size",
                      base._plant_unnormalised),
              Mistake("add the feature only to the rows where `on` is True", base._plant_everywhere),
              Mistake("*add* the feature to the activations; do not replace them", base._plant_replace)],
)


function_exercise(
    "07.normalise_pairs", title="Normalise contrast pairs", difficulty=2, importance=3, minutes=8,
    reference=base.normalise_pairs, cases=base._pair_cases, compare=base._cmp_pairs,
    hints=["Each side gets its *own* statistics, per dimension: whatever separates the sides on average (e.g. the "
           "answer token) must go.",
           "Centre each side by its own mean over the pairs (dim 0) and divide by its own standard deviation; clamp "
           "the standard deviation so a constant dimension does not divide by 0.",
           "`(x_pos - x_pos.mean(0)) / x_pos.std(0).clamp_min(1e-6)`, and likewise for `x_neg`; return both as a "
           "tuple."],
    mistakes=[Mistake("normalise each side with its *own* mean and std; joint statistics keep the difference "
                      "between the sides (e.g. the answer token), which CCS would then find", base._pairs_joint),
              Mistake("also divide by each side's standard deviation (per dimension)", base._pairs_centre_only),
              Mistake("normalise each dimension over the pairs (dim 0), not each pair over its dimensions",
                      base._pairs_rows)],
)


function_exercise(
    "07.ccs_loss", title="The CCS loss", difficulty=2, importance=4, minutes=8,
    reference=base.ccs_loss, cases=base._ccs_cases, compare=base._cmp_loss,
    hints=["Consistency: a statement and its negation should get probabilities that sum to 1.",
           "`consistency = (p_pos - (1 - p_neg)).pow(2).mean()`.",
           "Confidence rules out the trivial answer p+ = p- = 0.5: `torch.minimum(p_pos, p_neg).pow(2).mean()`."],
    mistakes=[Mistake("consistency compares p+ with 1 - p- (the two probabilities should sum to 1), not with p-",
                      base._ccs_difference),
              Mistake("the confidence term penalises the *smaller* of the two probabilities (`torch.minimum`)",
                      base._ccs_max),
              Mistake("add the confidence term, or p+ = p- = 0.5 is a perfect (and useless) solution",
                      base._ccs_consistency_only),
              Mistake("square both terms before averaging", base._ccs_unsquared)],
)


function_exercise(
    "07.ccs_probe_losses", title="The CCS loss of many probes at once", difficulty=2, importance=3, minutes=8,
    reference=ccs_probe_losses, cases=_probe_cases, compare=_cmp_losses,
    hints=["Each column of w is one probe (one random restart); compute every probe's probabilities on both sides in "
           "one matrix product, then 07.ccs_loss per column.",
           "The probabilities are `[n, r]`: a sigmoid of the projections plus the bias; average over the pairs "
           "(dim 0), keeping one loss per probe.",
           "`p_pos, p_neg = torch.sigmoid(a @ w + bias), torch.sigmoid(b @ w + bias)`, then `(p_pos - (1 - "
           "p_neg)).pow(2).mean(0) + torch.minimum(p_pos, p_neg).pow(2).mean(0)`."],
    mistakes=[Mistake("turn the projections into probabilities with a sigmoid first", _ccs_no_sigmoid),
              Mistake("add each probe's bias to its projections", _ccs_no_bias),
              Mistake("average over the pairs (dim 0): one loss per probe", _ccs_loss_over_probes),
              Mistake("consistency compares p+ with 1 - p-, not with p-", _ccs_diff)],
)


function_exercise(
    "07.fit_ccs", title="CCS with random restarts", difficulty=4, importance=4, minutes=20,
    reference=fit_ccs, cases=_fit_cases, compare=_cmp_fit,
    hints=["CCS's loss has bad local minima, so train several probes from different starts and keep the best. "
           "Normalise the two sides first, or the probe will read off the answer token.",
           "Normalise each side with its own mean and std; make `w = w0.clone().requires_grad_(True)` and a zero "
           "bias per probe; one AdamW on both; each epoch backpropagates the *sum* of the probes' losses "
           "(they do not interact). After training, evaluate the losses once more and pick the smallest.",
           "`losses = ccs_probe_losses(a, b, w, bias)`, `opt.zero_grad(); losses.sum().backward(); opt.step()`; "
           "after the loop `best = int(losses.argmin())`, return `(w.detach()[:, best], float(bias[best]), "
           "losses.detach())`."],
    mistakes=[Mistake("keep the probe with the *lowest* loss", _fit_argmax),
              Mistake("normalise each side (its own mean and std) before training", _fit_unnormalised),
              Mistake("train every column of w0 (one per restart), not only the first", _fit_first_restart),
              Mistake("use `torch.optim.AdamW` (with weight decay), as U.CCS does", _fit_adam)],
)


function_exercise(
    "07.resolve_sign", title="Resolve CCS's sign with a few labels", difficulty=3, importance=4, minutes=10,
    reference=resolve_sign, cases=_sign_cases, compare=_cmp_sign,
    hints=["A probe and its negation have the same CCS loss, so CCS cannot know which side is true. A handful of "
           "labels can tell you; the accuracy you report must then come from rows those labels did not touch.",
           "Decide the flip on the labelled rows only; then measure the accuracy on the other rows, as it is. "
           "Reporting max(acc, 1 - acc) there would choose the sign with the test labels.",
           "`pred = p > 0.5`, `flipped = bool((pred[labelled] == y[labelled]).float().mean() < 0.5)`, flip `pred` "
           "if so, and return `(flipped, float((pred[~labelled] == y[~labelled]).float().mean()))`."],
    mistakes=[Mistake("you chose the sign with the test labels (max(acc, 1 - acc) on the unlabelled rows): decide "
                      "the flip on the labelled rows only", _sign_max),
              Mistake("measure the accuracy on the *unlabelled* rows (the labelled ones chose the sign)",
                      _sign_scores_labelled_too),
              Mistake("flip the predictions when fewer than half of the labelled rows are right", _sign_never_flips)],
)


def _absent_distance(plant_cos: dict[float, float], plant_acc: dict[float, float], sae_scores: dict[str, float],
                     random_scores: dict[str, float]) -> str:
    weakest = min(plant_cos)
    missed = [s for s in sorted(plant_cos) if plant_cos[s] < 0.9]
    low = sorted(k for k in sae_scores if sae_scores[k] < 0.5)
    return (f"(1) The SAE's sensitivity. In section 7 a feature planted at strength {weakest} reached only |cos| "
            f"{plant_cos[weakest]:.2f} with the best latent (missed at strengths {missed}), while a supervised probe "
            f"detected it with accuracy {plant_acc[weakest]:.1%}. Run the same recall test at the strength and "
            f"frequency you expect distance to have, and check the SAE is trained to convergence in a sensible L0 "
            f"range. (2) The representation: distance may be stored non-linearly or spread over several latents "
            f"(one per distance value or per cell), so no single latent correlates with the scalar; fit a supervised "
            f"probe at the same layer and positions, against its trivial baseline (tutorial 04). Here the labels "
            f"{low} scored below 0.5 for the SAE too, which section 7 says is not absence. (3) The place: the right "
            f"layer and positions, with rows restricted so that tokens and positions (which scored "
            f"{min(sae_scores['token'], sae_scores['position']):.2f} or more even on this model and "
            f"{min(random_scores['token'], random_scores['position']):.2f} or more on the random-init one) do not "
            f"take all the latents; and compare with the random-init model so that whatever you find is learned.")


question("07.absent_distance", _absent_distance)
