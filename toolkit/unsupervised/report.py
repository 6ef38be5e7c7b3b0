"""Train an SAE on a model's activations and score its latents against the search labels, beside a control.

    report = model_label_report(model, dataset, "blocks.1.hook_resid_post")
    report.table()      # per label: best score of the SAE's latents vs the frozen-random-decoder control
    report.match.unlabelled   # strong SAE latents that match no label ("found but unlabelled")

``dataset`` follows ``toolkit.tasks.base``: ``tokens [n, seq]`` and ``labels {name: Label}`` with
``values [n, seq, ...]`` and ``mask [n, seq]``. :func:`sae_label_report` does the same from plain tensors
(``X [n_rows, d]`` and ``{name: (values, valid)}``), so any activation source works.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from toolkit._result import frame, plain
from toolkit.unsupervised.baselines import FrozenDecoderSAE, RandomDictionary
from toolkit.unsupervised.matching import LabelMatch, compare_to_control, match_labels
from toolkit.unsupervised.sae import SparseAutoencoder

DEFAULT_SAE = dict(architecture="topk", k=8, n_samples=500_000, batch_size=512, lr=4e-3)


class _RowsView(list):
    """The old ``report.table`` list: still iterates (with a DeprecationWarning) and, called, is ``table()``."""

    def __init__(self, rows: list[dict[str, Any]], frame_fn: Any):
        super().__init__(rows)
        self._frame_fn = frame_fn

    def __call__(self) -> Any:
        return self._frame_fn()

    def _warn(self) -> None:
        warnings.warn("SAEReport.table is a method now: use report.table() (a DataFrame) or report.rows "
                      "(the list); the list form goes in the next release", DeprecationWarning, stacklevel=3)

    def __iter__(self):
        self._warn()
        return super().__iter__()

    def __getitem__(self, i):
        self._warn()
        return super().__getitem__(i)

    def __len__(self) -> int:
        self._warn()
        return super().__len__()


@dataclass
class SAEReport:
    """``sae`` and ``control`` (fitted), their :class:`LabelMatch` results, ``rows`` (one per sub-label:
    ``label, sae, control, margin``; :meth:`table` gives them as a DataFrame), reconstruction ``metrics`` of
    both, and for a model the ``spliced`` scores (CE / accuracy recovered with the SAE spliced in)."""

    sae: Any
    control: Any
    match: LabelMatch
    control_match: LabelMatch
    rows: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    spliced: dict[str, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> Any:
        """``report.table()``: one row per sub-label (``label, sae, control, margin``) as a pandas DataFrame."""
        return _RowsView(self.rows, lambda: frame(self.rows))

    def to_dict(self) -> dict[str, Any]:
        """Rows, metrics, spliced scores and info as plain Python (JSON-able; the fitted SAEs stay here)."""
        return plain({"rows": self.rows, "metrics": self.metrics, "spliced": self.spliced, "info": self.info})

    def summary(self, top: int = 10) -> str:
        rows = sorted(self.rows, key=lambda r: -r["sae"])[:top]
        lines = [f"{'label':<24} {'SAE':>6} {'control':>8} {'margin':>7}"]
        lines += [f"{r['label'][:24]:<24} {r['sae']:6.3f} {r['control']:8.3f} {r['margin']:+7.3f}" for r in rows]
        m = self.metrics["sae"]
        lines.append(f"SAE: L0 {m['l0']:.1f}, explained variance {m['explained_variance']:.3f}, "
                     f"{len(self.match.unlabelled)} strong latents match no label")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SAEReport({self.match!r})"


def sae_label_report(X: Any, labels: Any, kinds: dict[str, str] | None = None, control: str = "frozen_decoder",
                     threshold: float = 0.5, seed: int = 0, progress: bool = False, **sae_params: Any) -> SAEReport:
    """Fit an SAE (``sae_params``, default TopK k=8 with 4x latents) and a control on ``X [n_rows, d]``;
    match both against ``labels`` (see :func:`match_labels`).

    ``control``: ``"frozen_decoder"`` (same SAE, decoder frozen at random - the fair control) or
    ``"random"`` (a random-direction dictionary of the same size, ReLU'd projections).
    """
    if control not in ("frozen_decoder", "random"):
        raise ValueError(f"control must be 'frozen_decoder' or 'random', got {control!r}")
    params = {**DEFAULT_SAE, **sae_params, "seed": seed, "progress": progress}
    sae = SparseAutoencoder(**params).fit(X)
    if control == "frozen_decoder":
        ctrl = FrozenDecoderSAE(**params).fit(X)
    else:
        ctrl = RandomDictionary(sae.W_dec_.shape[0], relu=True, seed=seed).fit(X)
    match = match_labels(sae.transform(X), labels, threshold=threshold, kinds=kinds)
    cmatch = match_labels(ctrl.transform(X), labels, threshold=threshold, kinds=kinds)
    table = [{**r, "margin": r["sae"] - r["control"]} for r in
             compare_to_control({"sae": match, "control": cmatch})]
    metrics = {"sae": _no_density(sae.evaluate(X)), "control": _no_density(ctrl.evaluate(X))}
    return SAEReport(sae, ctrl, match, cmatch, table, metrics, info={"n_rows": int(len(X)), "control": control})


def _no_density(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k != "feature_density"}


def dataset_labels(dataset: Any, positions: str | torch.Tensor = "labelled"
                   ) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, str]]:
    """Rows and labels from a ``toolkit.tasks`` dataset: ``(mask [n, seq], {name: (values, valid)}, kinds)``.

    ``positions``: ``"labelled"`` (every position where some label is defined), ``"all"``, or a bool mask.
    """
    labels = dataset.labels
    if not labels:
        raise ValueError("the dataset has no labels to match against")
    first = next(iter(labels.values()))
    if isinstance(positions, torch.Tensor):
        mask = positions
    elif positions == "labelled":
        mask = torch.zeros_like(first.mask)
        for lab in labels.values():
            mask |= lab.mask
    elif positions == "all":
        mask = torch.ones_like(first.mask)
    else:
        raise ValueError(f"positions must be 'labelled', 'all' or a bool mask [n, seq], got {positions!r}")
    out = {name: (lab.values[mask], lab.mask[mask]) for name, lab in labels.items()}
    kinds = {name: lab.kind for name, lab in labels.items()}
    return mask, out, kinds


def model_label_report(model: Any, dataset: Any, hook_name: str, positions: str | torch.Tensor = "labelled",
                       control: str = "frozen_decoder", threshold: float = 0.5, seed: int = 0, splice: bool = True,
                       progress: bool = False, **sae_params: Any) -> SAEReport:
    """Cache ``hook_name`` activations over ``dataset`` at ``positions``, then :func:`sae_label_report`;
    with ``splice=True`` also :func:`spliced_scores` (loss / accuracy with the SAE spliced in)."""
    from toolkit.unsupervised.metrics import spliced_scores
    from toolkit.unsupervised.model_data import collect_activations

    mask, labels, kinds = dataset_labels(dataset, positions)
    X = collect_activations(model, dataset.tokens, hook_name, mask)
    sae_params.setdefault("hook_name", hook_name)
    report = sae_label_report(X, labels, kinds=kinds, control=control, threshold=threshold, seed=seed,
                              progress=progress, **sae_params)
    if splice:
        report.spliced = spliced_scores(model, dataset.tokens, hook_name, report.sae,
                                        loss_mask=getattr(dataset, "loss_mask", None))
        report.info["spliced_control"] = spliced_scores(model, dataset.tokens, hook_name, report.control,
                                                        loss_mask=getattr(dataset, "loss_mask", None))
    report.info["hook_name"] = hook_name
    return report
