"""A sparse autoencoder with a scikit-learn-style API and SAELens's weight layout.

    sae = SparseAutoencoder(d_sae=1024, l1_coefficient=3e-3, n_samples=2_000_000).fit(X_or_source)
    f = sae.transform(X)          # [n, d_sae] latent activations
    X_hat = sae.reconstruct(X)    # [n, d_in]
    sae.score(X)                  # explained variance (higher is better)
    sae.evaluate(X)               # SAELens-named metrics: l0, l1, mse, explained_variance, l2_ratio, ...

Architectures: ``"relu"`` (ReLU + L1, decoder bias subtracted before encoding, untied encoder, unit-norm
decoder rows with the parallel gradient removed, dead-latent resampling) and ``"topk"`` (keep the k
largest latents; an auxiliary loss revives dead latents). Weights follow SAELens: ``W_enc [d_in, d_sae]``,
``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``; :meth:`save` writes a folder SAELens loads.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from toolkit._estimator import DEPRECATED, Estimator, check_array, finite_problem
from toolkit._threads import torch_threads
from toolkit.unsupervised import saelens_io
from toolkit.unsupervised import train as T

Architecture = Literal["relu", "topk"]
NORMALIZATIONS = ("none", "expected_average_only_in")
DEAD_LIMIT = 0.5  # warn after fit when more than this fraction of latents is dead ...
EV_LIMIT = 0.5  # ... or the explained variance on the first training rows is below this ...
DENSE_LIMIT = 1.0  # ... or L0 exceeds this many times d_in: a code denser than the input's own basis is not sparse


class SAEFitWarning(UserWarning):
    """``SparseAutoencoder.fit`` ended with mostly dead latents, a poor reconstruction or a dense code."""


class SparseAutoencoder(Estimator):
    """Sparse autoencoder ``f = act(W_enc^T (x - b_dec) + b_enc)``, ``x_hat = W_dec^T f + b_dec``.

    Args:
        d_sae: number of latents (default ``expansion_factor * d_in``).
        architecture: ``"relu"`` (L1 penalty) or ``"topk"`` (exactly ``k`` latents may fire).
        l1_coefficient: L1 strength (ReLU). k: active latents (TopK).
        lr, batch_size, n_samples: Adam learning rate, rows per step, total training rows.
        seed: initialisation and data order. progress: show a tqdm bar.
        expansion_factor: ``d_sae = expansion_factor * d_in`` when ``d_sae`` is None.
        lr_warmup / lr_decay: fractions of training with linear warm-up / linear decay to zero.
        l1_warmup: fraction of training over which the L1 coefficient ramps up from zero.
        resample_dead: ReLU only; re-initialise latents silent for ``dead_window`` samples at
            ``resample_at`` fractions of training.
        dead_window: samples without firing after which a latent counts as dead (default
            ``max(n_samples // 10, 20 * batch_size)``, at most 500k).
        aux_k / aux_coefficient: TopK auxiliary loss (default ``aux_k = d_in // 2``, coefficient 1/32).
        normalize_activations: ``"none"`` or ``"expected_average_only_in"`` (scale inputs so that
            ``E||x|| = sqrt(d_in)``; the factor is ``scaling_factor_`` and is folded in on export).
        apply_b_dec_to_input: subtract ``b_dec`` before encoding (SAELens's name).
        freeze_decoder: keep the random unit-norm decoder fixed (a control; see ``FrozenDecoderSAE``).
        hook_name: recorded in the exported cfg (where the activations came from).
        threads: ``"auto"`` (one thread for small SAEs, which is faster), an int, or None (leave as is).
            The caller's thread count is restored after ``fit``. (``n_threads``: its old name, deprecated.)
        device: ``"cpu"`` or e.g. ``"cuda"``.

    Learned attributes: ``W_enc_, b_enc_, W_dec_, b_dec_, scaling_factor_, d_in_, history_ (dict of lists),
    n_samples_seen_, feature_density_ [d_sae] (firing rate over the last window), n_resampled_, fit_time_s_,
    fit_metrics_`` (``explained_variance``, ``l0`` on the first training rows, ``dead_latents`` fraction). ``fit``
    warns (:class:`SAEFitWarning`) when more than ``DEAD_LIMIT`` of the latents are dead, ``explained_variance`` is
    below ``EV_LIMIT``, or the code is dense (``l0 > DENSE_LIMIT * d_in``: more latents fire per row than the input
    has dimensions, so the "features" are no sparser than the raw basis), naming the knobs to turn.
    """

    def __init__(self, d_sae: int | None = None, architecture: Architecture = "relu",
                 l1_coefficient: float = 3e-3, k: int | None = None, lr: float = 4e-3, batch_size: int = 1024,
                 n_samples: int = 1_000_000, seed: int = 0, progress: bool = True, expansion_factor: int = 4,
                 lr_warmup: float = 0.01, lr_decay: float = 0.2, l1_warmup: float = 0.05,
                 resample_dead: bool = True, resample_at: tuple[float, ...] = (0.25, 0.5),
                 dead_window: int | None = None, aux_k: int | None = None, aux_coefficient: float = 1 / 32,
                 normalize_activations: str = "none", apply_b_dec_to_input: bool = True,
                 freeze_decoder: bool = False, hook_name: str | None = None, threads: int | str | None = "auto",
                 device: str = "cpu", adam_betas: tuple[float, float] = (0.9, 0.999), log_every: int | None = None,
                 n_threads: Any = DEPRECATED):
        self.d_sae, self.architecture, self.l1_coefficient, self.k = d_sae, architecture, l1_coefficient, k
        self.lr, self.batch_size, self.n_samples, self.seed, self.progress = lr, batch_size, n_samples, seed, progress
        self.expansion_factor, self.lr_warmup, self.lr_decay, self.l1_warmup = (expansion_factor, lr_warmup,
                                                                               lr_decay, l1_warmup)
        self.resample_dead, self.resample_at, self.dead_window = resample_dead, resample_at, dead_window
        self.aux_k, self.aux_coefficient = aux_k, aux_coefficient
        self.normalize_activations, self.apply_b_dec_to_input = normalize_activations, apply_b_dec_to_input
        self.freeze_decoder, self.hook_name, self.threads, self.device = freeze_decoder, hook_name, threads, device
        self.adam_betas, self.log_every, self.n_threads = adam_betas, log_every, n_threads

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.architecture not in ("relu", "topk"):
            raise ValueError(f"architecture must be 'relu' or 'topk', got {self.architecture!r}")
        if self.normalize_activations not in NORMALIZATIONS:
            raise ValueError(f"normalize_activations must be one of {NORMALIZATIONS}, "
                             f"got {self.normalize_activations!r}")
        for name in ("batch_size", "n_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.d_sae is not None and (not isinstance(self.d_sae, int) or self.d_sae < 1):
            raise ValueError(f"d_sae must be a positive int or None (then expansion_factor * d_in), got {self.d_sae!r}")
        if self.architecture == "topk" and (not isinstance(self.k, int) or self.k < 1):
            raise ValueError(f"architecture='topk' needs k (latents active per row) as a positive int, "
                             f"got k={self.k!r}")
        if self.lr <= 0 or self.l1_coefficient < 0:
            raise ValueError(f"lr must be > 0 and l1_coefficient >= 0, got lr={self.lr}, "
                             f"l1_coefficient={self.l1_coefficient}")

    def _check_fitted(self, attr: str = "W_enc_", how: str = "") -> None:
        if not hasattr(self, attr):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call .fit(X) first "
                               f"(or load one with toolkit.unsupervised.load_saelens)")

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None) -> SparseAutoencoder:
        """Train on ``X``: a tensor / ndarray ``[n_rows, d_in]`` (shuffled epochs until ``n_samples``
        rows were used), a callable ``source(batch_size) -> [rows, d_in]``, or an iterable of batches.
        ``y`` is ignored (scikit-learn compatibility). Returns ``self``."""
        self._check_params()
        threads = self._threads()
        device = torch.device(self.device)
        if isinstance(X, torch.Tensor | np.ndarray):
            X, _ = check_array(self._flat_hook_z(X))
        gen = T.generator(self.seed, "sae-data")
        stream = T.batch_stream(X, self.batch_size, gen, device)
        head = T.first_rows(stream, min(4 * self.batch_size, self.n_samples))
        if not head:
            raise ValueError("the activation source yielded no full batch; give it at least batch_size rows")
        d_in = head[0].shape[1]
        d_sae = self.d_sae or self.expansion_factor * d_in
        if self.architecture == "topk" and self.k > d_sae:
            raise ValueError(f"k={self.k} is larger than d_sae={d_sae}; choose k <= d_sae")
        init = torch.cat(head)
        problem = finite_problem(init, "the first batches of the activation source")
        if problem is not None:
            raise ValueError(problem)
        scale = 1.0
        if self.normalize_activations == "expected_average_only_in":
            scale = float(d_in ** 0.5 / init.norm(dim=1).mean().clamp_min(1e-12))
        with torch_threads(T.auto_threads(threads, d_in, d_sae, device), blas=True):
            self._train(head, stream, d_in, d_sae, scale, init.mean(0) * scale, gen, device)
        self._report_fit(init)
        return self

    def _report_fit(self, rows: torch.Tensor) -> None:
        """Set ``fit_metrics_`` and warn once if the fit is poor (mostly dead latents, low explained variance, or a
        dense code)."""
        metrics = self.evaluate(rows)
        ev, l0 = metrics["explained_variance"], metrics["l0"]
        dead = self.n_dead_ / self.d_sae_
        dense = l0 > DENSE_LIMIT * self.d_in_
        self.fit_metrics_ = {"explained_variance": ev, "l0": l0, "dead_latents": dead}
        if dead <= DEAD_LIMIT and ev >= EV_LIMIT and not dense:
            return
        found = []
        if dead > DEAD_LIMIT:
            window = self.dead_window or min(max(self.n_samples // 10, 20 * self.batch_size), 500_000)
            found.append(f"{dead:.1%} of the {self.d_sae_} latents are dead (silent for the last {window:,} "
                         f"training rows; limit {DEAD_LIMIT:.0%})")
        if ev < EV_LIMIT:
            found.append(f"explained_variance is {ev:.3f} on the first {len(rows):,} training rows (limit {EV_LIMIT})")
        if dense:
            found.append(f"the code is dense: L0 {l0:.1f} latents fire per row, more than the {self.d_in_} input "
                         "dimensions, so the latents are no sparser than the raw activations")
        knobs = []
        if dense and self.architecture == "relu":
            knobs.append(f"raise l1_coefficient (now {self.l1_coefficient:g})")
        elif dense:
            knobs.append(f"lower k (now {self.k})")
        if self.architecture == "relu" and (dead > DEAD_LIMIT or ev < EV_LIMIT):
            knobs.append(f"lower l1_coefficient (now {self.l1_coefficient:g})")
        elif dead > DEAD_LIMIT or ev < EV_LIMIT:
            knobs.append(f"raise k (now {self.k})" if ev < EV_LIMIT else "raise aux_coefficient")
        if self.normalize_activations == "none":
            knobs.append("normalise the inputs (normalize_activations='expected_average_only_in')")
        if dead > DEAD_LIMIT or ev < EV_LIMIT:
            knobs.append(f"train on more rows (n_samples, now {self.n_samples:,})")
        if self.architecture == "relu":
            knobs.append("or use architecture='topk' with k latents per row"
                         + (", which cannot go silent" if dead > DEAD_LIMIT else ", which fixes L0 at k"))
        warnings.warn(f"SparseAutoencoder fit looks poor: {' and '.join(found)}. Knobs to turn: {', '.join(knobs)}. "
                      "fit_metrics_ holds these numbers.", SAEFitWarning, stacklevel=3)

    def _init_weights(self, d_in: int, d_sae: int, b_dec0: torch.Tensor, device: torch.device):
        g = T.generator(self.seed, "sae-init")
        W_dec = torch.randn(d_sae, d_in, generator=g)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        W_enc = W_dec.T.clone().contiguous()
        return (W_enc.to(device), torch.zeros(d_sae, device=device), W_dec.to(device),
                b_dec0.clone().to(device))

    def _train(self, head, stream, d_in, d_sae, scale, b_dec0, gen, device) -> None:
        t0 = time.perf_counter()
        st = T.SAEState(*self._init_weights(d_in, d_sae, b_dec0, device), lr=self.lr, betas=self.adam_betas,
                        freeze_decoder=self.freeze_decoder)
        bs = self.batch_size
        n_steps = max(1, self.n_samples // bs)
        window = self.dead_window or min(max(self.n_samples // 10, 20 * bs), 500_000)
        aux_k = self.aux_k or max(1, d_in // 2)
        resample_steps = ({int(f * n_steps) for f in self.resample_at}
                          if self.architecture == "relu" and self.resample_dead and not self.freeze_decoder
                          else set())
        log_every = self.log_every or max(1, n_steps // 100)
        hist: dict[str, list[float]] = {k: [] for k in ("samples", "loss", "mse", "l1", "l0", "explained_variance",
                                                           "dead", "lr")}
        if self.architecture == "topk":
            hist["aux_loss"] = []
        n_resampled, seen = 0, 0
        fire_window = torch.zeros(d_sae, device=device)
        window_rows = 0
        prev_window, prev_rows = torch.zeros_like(fire_window), 0

        def batches():
            yield from head
            yield from stream

        bar = tqdm(total=n_steps * bs, unit="samples", unit_scale=True, desc="SAE", disable=not self.progress)
        it = batches()
        step = 0
        try:
            for step in range(n_steps):
                try:
                    x = next(it)
                except StopIteration:
                    warnings.warn(f"the activation source ran out after {seen} of n_samples={self.n_samples} "
                                  "rows; training stopped early (history_ and n_samples_seen_ record it)",
                                  RuntimeWarning, stacklevel=3)
                    break
                if scale != 1.0:
                    x = x * scale
                lr = self.lr * T.lr_factor(step, n_steps, self.lr_warmup, self.lr_decay)
                for grp in st.opt.param_groups:
                    grp["lr"] = lr
                warm = int(self.l1_warmup * n_steps)
                l1 = self.l1_coefficient * (min(1.0, (step + 1) / warm) if warm else 1.0)
                dead = st.since_fired >= window if self.architecture == "topk" else None
                want = step % log_every == 0 or step == n_steps - 1
                counts, stats = T.train_step(st, x, self.architecture, self.k, l1, self.apply_b_dec_to_input, dead,
                                            aux_k, self.aux_coefficient, want)
                seen += bs
                st.since_fired.add_(bs).masked_fill_(counts > 0, 0)
                fire_window += counts
                window_rows += bs
                if window_rows >= window and step < n_steps - 1:
                    prev_window, prev_rows = fire_window.clone(), window_rows
                    fire_window.zero_()
                    window_rows = 0
                if step in resample_steps:
                    n_resampled += T.resample_dead(st, (st.since_fired >= window).nonzero().flatten(), x,
                                                   self.architecture, self.k, self.apply_b_dec_to_input, gen)
                if want:
                    if not np.isfinite(stats["mse"]):
                        raise FloatingPointError(f"training diverged at step {step} (loss is {stats['mse']}); "
                                                 "lower lr, or check the activations for NaN / huge values")
                    stats["loss"] = stats["mse"] + (l1 * stats["l1"] if self.architecture == "relu"
                                                    else stats.get("aux_loss", 0.0))
                    stats.update(samples=seen, lr=lr, dead=int((st.since_fired >= window).sum()))
                    for key in hist:
                        hist[key].append(float(stats.get(key, float("nan"))))
                    bar.set_postfix(mse=f"{stats['mse']:.3g}", l0=f"{stats['l0']:.1f}", dead=stats["dead"],
                                    refresh=False)
                bar.update(bs)
        finally:
            bar.close()
        self.W_enc_, self.b_enc_, self.W_dec_, self.b_dec_ = (p.detach() for p in (st.W_enc, st.b_enc, st.W_dec,
                                                                                       st.b_dec))
        self.scaling_factor_ = scale
        self.d_in_, self.d_sae_ = d_in, d_sae
        self.history_ = hist
        self.n_samples_seen_ = seen
        if window_rows < window // 2:  # the last window is short: include the one before it
            fire_window, window_rows = fire_window + prev_window, window_rows + prev_rows
        self.feature_density_ = (fire_window / max(window_rows, 1)).cpu()
        self.n_dead_ = int((st.since_fired >= window).sum())
        self.n_resampled_ = n_resampled
        self.fit_time_s_ = time.perf_counter() - t0

    # ------------------------------------------------------------------ inference
    def _flat_hook_z(self, X: Any, d_in: int | None = None) -> Any:
        """SAELens's hook_z convention: an SAE whose ``hook_name`` ends in ``hook_z`` takes per-head outputs
        ``[..., n_heads, d_head]`` and sees them flat, ``[..., n_heads * d_head]``; other inputs pass unchanged."""
        if saelens_io.reshape_for(self.hook_name) != "hook_z" or not isinstance(X, torch.Tensor | np.ndarray):
            return X
        if X.ndim >= 3 and (d_in is None or (X.shape[-1] != d_in and X.shape[-2] * X.shape[-1] == d_in)):
            return X.reshape(*X.shape[:-2], X.shape[-2] * X.shape[-1])
        return X

    def _prep(self, X: Any) -> tuple[torch.Tensor, tuple[int, ...]]:
        self._check_fitted()
        X = self._flat_hook_z(X, self.d_in_)
        x, _ = check_array(X, ndim=None, n_features=self.d_in_, fitted=f"this {type(self).__name__}")
        lead = tuple(x.shape[:-1])
        return x.reshape(-1, self.d_in_).to(self.W_enc_.device), lead

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw activations ``[..., d_in]`` -> latents ``[..., d_sae]`` (SAELens's name for transform)."""
        flat, lead = self._prep(x)
        _, pre = T.encode_pre(flat * self.scaling_factor_, self.W_enc_, self.b_enc_, self.b_dec_,
                              self.apply_b_dec_to_input)
        return T.activate(pre, self.architecture, self.k).reshape(*lead, -1)

    @torch.no_grad()
    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Latents ``[..., d_sae]`` -> reconstructed raw activations ``[..., d_in]``."""
        self._check_fitted()
        f = torch.as_tensor(f, dtype=torch.float32)
        if f.shape[-1] != self.W_dec_.shape[0]:
            raise ValueError(f"expected latents [..., d_sae={self.W_dec_.shape[0]}], got shape {tuple(f.shape)}")
        out = torch.addmm(self.b_dec_, f.reshape(-1, f.shape[-1]).to(self.W_dec_.device), self.W_dec_)
        return (out / self.scaling_factor_).reshape(*f.shape[:-1], -1)

    def transform(self, X: Any) -> torch.Tensor:
        """``[n, d_in]`` -> latent activations ``[n, d_sae]`` (any leading shape works)."""
        return self.encode(X)

    def fit_transform(self, X: Any, y: Any = None) -> torch.Tensor:
        return self.fit(X).transform(X)

    def reconstruct(self, X: Any) -> torch.Tensor:
        """``[..., d_in]`` -> ``[..., d_in]``: decode(encode(X)); hook_z input ``[..., n_heads, d_head]``
        comes back in that shape (SAELens's convention)."""
        out = self.decode(self.encode(X))
        shape = getattr(X, "shape", None)
        return out.reshape(tuple(shape)) if shape is not None and tuple(out.shape) != tuple(shape) else out

    def score(self, X: Any, y: Any = None) -> float:
        """Explained variance of the reconstruction of ``X`` (1 = perfect, higher is better)."""
        return self.evaluate(X)["explained_variance"]

    def evaluate(self, X: Any, dense_threshold: float = 0.1) -> dict[str, Any]:
        """SAELens-named reconstruction metrics on ``X [n, d_in]``: see :func:`reconstruction_metrics`."""
        from toolkit.unsupervised.metrics import reconstruction_metrics

        x, _ = self._prep(X)
        f = self.encode(x)
        return reconstruction_metrics(x, self.decode(f), f, dense_threshold=dense_threshold)

    @property
    def dictionary_(self) -> torch.Tensor:
        """Unit-norm decoder directions ``[d_sae, d_in]`` (compare these with ground-truth features)."""
        self._check_fitted()
        w = self.W_dec_.cpu()
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @property
    def n_features_in_(self) -> int:
        """``d_in_`` under scikit-learn's name (AttributeError before fit, as scikit-learn)."""
        return self.d_in_

    # ------------------------------------------------------------------ io
    def save(self, path: str, **metadata: Any) -> str:
        """Write ``sae_weights.safetensors`` + ``cfg.json`` (+ ``sparsity.safetensors``) in SAELens's layout,
        with the training settings in ``cfg["metadata"]["searchlight"]`` (see :mod:`saelens_io`)."""
        return saelens_io.save_saelens(self, path, **metadata)

    def __repr__(self) -> str:
        shape = f"{self.d_in_}x{self.W_enc_.shape[1]}" if hasattr(self, "W_enc_") else f"d_sae={self.d_sae}"
        extra = f"k={self.k}" if self.architecture == "topk" else f"l1={self.l1_coefficient:g}"
        fitted = ", fitted" if hasattr(self, "W_enc_") else ""
        return f"{type(self).__name__}({self.architecture}, {shape}, {extra}{fitted})"


def load_saelens(path: str, device: str = "cpu") -> SparseAutoencoder:
    """Load a folder in SAELens's layout (ours, or a standard/topk SAE saved by SAELens) as a fitted
    :class:`SparseAutoencoder` ready for ``transform`` / ``reconstruct``. Training settings saved by
    :meth:`SparseAutoencoder.save` come back in ``get_params()``; the input scaling is already folded into
    the weights, so ``scaling_factor_`` is 1. ``cfg_`` holds the cfg.json dict."""
    found = saelens_io.read_saelens(path, device=device)
    known = SparseAutoencoder().get_params()
    sae = SparseAutoencoder(**{k: v for k, v in found["params"].items() if k in known and k != "n_threads"})
    w, cfg = found["weights"], found["cfg"]
    sae.W_enc_, sae.b_enc_, sae.W_dec_, sae.b_dec_ = w["W_enc"], w["b_enc"], w["W_dec"], w["b_dec"]
    sae.scaling_factor_, sae.d_in_, sae.d_sae_ = 1.0, int(cfg["d_in"]), int(cfg["d_sae"])
    if found["density"] is not None:
        sae.feature_density_ = found["density"]
    sae.cfg_ = cfg
    return sae
