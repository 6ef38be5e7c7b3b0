"""Unsupervised feature discovery, always scored against ground truth and shown beside a control.

Map activations to a space with human-understandable structure *without* naming the features first - to
find what we did not expect and to guard against confirmation bias. These methods are brittle to their
assumptions about the data, and failing to find a feature does not prove it is absent
(:func:`planted_recall` measures exactly that).

* :class:`SparseAutoencoder` (ReLU + L1, or TopK + auxiliary loss), SAELens layout: :func:`save_saelens`,
  :func:`load_saelens`.
* Baselines and controls with the same API: :class:`PCA`, :class:`ICA`, :class:`KMeans`, :class:`NMF`,
  :class:`RandomDictionary`, :class:`FrozenDecoderSAE`.
* :class:`CCS` with :func:`contrast_baselines` and the Farquhar et al. :func:`distractor_demo`.
* Ground truth: :func:`sharkey_toy`, :func:`ci_toy`, :class:`SparseFeatureData`, :func:`train_tms`;
  metrics :func:`ground_truth_scores` (mmcs, fraction_recovered, mcc, uniqueness), :func:`mmcs_between`,
  :func:`reconstruction_metrics`, :func:`spliced_scores` (CE / accuracy recovered in a model).
* Search labels: :func:`match_labels` (best label per latent, "found but unlabelled" latents),
  :func:`compare_to_control`, :func:`plant_feature`, :func:`planted_recall`; on a model:
  :func:`collect_activations`, :func:`activation_source`, :func:`sae_label_report`, :func:`model_label_report`.
"""

from toolkit.unsupervised.baselines import ICA, NMF, PCA, FrozenDecoderSAE, KMeans, RandomDictionary
from toolkit.unsupervised.ccs import CCS, contrast_baselines, distractor_demo, make_contrast_pairs
from toolkit.unsupervised.matching import (
    LabelMatch,
    compare_to_control,
    match_labels,
    plant_feature,
    planted_recall,
)
from toolkit.unsupervised.metrics import (
    cosine_matrix,
    fraction_recovered,
    ground_truth_scores,
    mcc,
    mmcs,
    mmcs_between,
    reconstruction_metrics,
    spliced_scores,
    uniqueness,
)
from toolkit.unsupervised.model_data import activation_source, collect_activations
from toolkit.unsupervised.report import SAEReport, dataset_labels, model_label_report, sae_label_report
from toolkit.unsupervised.sae import SAEFitWarning, SparseAutoencoder, load_saelens
from toolkit.unsupervised.saelens_io import save_saelens
from toolkit.unsupervised.toy_data import (
    SparseFeatureData,
    ToyModelOfSuperposition,
    ci_toy,
    sharkey_toy,
    train_tms,
)

__all__ = [
    "CCS", "ICA", "NMF", "PCA", "FrozenDecoderSAE", "KMeans", "LabelMatch", "RandomDictionary", "SAEReport",
    "activation_source", "collect_activations", "dataset_labels", "model_label_report", "sae_label_report",
    "SparseAutoencoder", "SparseFeatureData", "ToyModelOfSuperposition", "ci_toy", "compare_to_control",
    "contrast_baselines", "cosine_matrix", "distractor_demo", "fraction_recovered", "ground_truth_scores",
    "load_saelens", "make_contrast_pairs", "match_labels", "mcc", "mmcs", "mmcs_between", "plant_feature",
    "planted_recall", "reconstruction_metrics", "SAEFitWarning", "save_saelens", "sharkey_toy", "spliced_scores",
    "train_tms", "uniqueness",
]
