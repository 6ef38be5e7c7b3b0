"""Ground-truth and reconstruction metrics on cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from toolkit.unsupervised import (
    fraction_recovered,
    ground_truth_scores,
    mcc,
    mmcs,
    mmcs_between,
    reconstruction_metrics,
    uniqueness,
)
from toolkit.unsupervised.metrics import unit_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dirs(n, d, seed):
    return unit_rows(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)))


def test_perfect_dictionary_scores_one_up_to_order_sign_and_scale():
    true = _dirs(20, 16, 0)
    learned = -3.0 * true[torch.randperm(20, generator=torch.Generator().manual_seed(1))]
    s = ground_truth_scores(learned, true)
    assert s == pytest.approx({"mmcs": 1.0, "fraction_recovered": 1.0, "mcc": 1.0, "uniqueness": 1.0})


def test_random_dictionary_is_near_the_expected_chance_level():
    true, rand = _dirs(512, 256, 0), _dirs(512, 256, 1)
    m = mmcs(rand, true)
    # max of 512 |N(0, 1/256)| draws is ~3.2 sigma = 0.2 (Sharkey et al. report ~0.19 for this case)
    assert 0.15 < m < 0.27
    assert fraction_recovered(rand, true) == 0.0


def test_duplicates_fool_mmcs_but_not_mcc_or_uniqueness():
    true = _dirs(10, 32, 0)
    learned = torch.cat([true[:5], true[:5]])  # half the features, each twice
    assert mmcs(learned, true) == pytest.approx(0.5 * 1 + 0.5 * mmcs(true[:5], true[5:]), abs=1e-6)
    dup = true[[0, 0, 0, 1]]
    assert mmcs(dup, true[:2]) == pytest.approx(1.0)
    assert mcc(dup, true[:2]) == pytest.approx(1.0)
    assert uniqueness(dup, true[:2]) == pytest.approx(2 / 4)
    # one direction cannot be matched twice by the Hungarian matching
    assert mcc(true[:1], true[:2]) == pytest.approx((1.0 + 0.0) / 2, abs=0.3)
    assert mcc(true[:1], true[:2]) < mmcs(true[:1], true[:2]) + 0.5
    assert math.isnan(uniqueness(_dirs(3, 32, 5), true))


def test_mmcs_between_dictionaries_without_ground_truth():
    small = _dirs(8, 16, 0)
    big = torch.cat([small, _dirs(8, 16, 1)])
    assert mmcs_between(small, big) == pytest.approx(1.0)
    assert mmcs_between(big, small) < 1.0


def test_reconstruction_metrics_known_values():
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    x_hat = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # second row shrunk to half
    codes = torch.tensor([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0]])
    m = reconstruction_metrics(x, x_hat, codes)
    assert m["mse"] == pytest.approx(0.5)
    var = ((x - x.mean(0)) ** 2).sum()
    assert m["explained_variance"] == pytest.approx(1 - 1.0 / float(var))
    assert m["l2_ratio"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["shrinkage"] == pytest.approx(0.25)
    assert m["l0"] == pytest.approx(1.0) and m["l1"] == pytest.approx(1.5)
    assert m["dead_latents"] == pytest.approx(1 / 3)
    assert m["dense_latents"] == pytest.approx(2 / 3)
    torch.testing.assert_close(m["feature_density"], torch.tensor([0.5, 0.5, 0.0]))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="dimension mismatch"):
        mmcs(_dirs(4, 8, 0), _dirs(4, 9, 0))
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_metrics(torch.zeros(3, 2), torch.zeros(3, 3))
