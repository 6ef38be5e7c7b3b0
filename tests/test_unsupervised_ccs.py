"""CCS finds a consistent binary feature without labels - and a salient distractor captures it."""

from __future__ import annotations

import pytest
import torch

from toolkit.unsupervised import CCS, contrast_baselines, distractor_demo, make_contrast_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST_CCS = dict(n_epochs=300, lr=1e-2, n_restarts=4)


def test_ccs_recovers_truth_direction_without_labels():
    d = make_contrast_pairs(n=600, d=32, truth_strength=1.0, seed=0)
    tr, te = slice(0, 300), slice(300, 600)
    ccs = CCS(**FAST_CCS, seed=0).fit(d["x_pos"][tr], d["x_neg"][tr])
    assert ccs.score(d["x_pos"][te], d["x_neg"][te], d["truth"][te]) > 0.85
    u = d["directions"][0]
    w = ccs.direction_ * ccs.std_pos_.reciprocal()  # back in activation coordinates (approximately)
    assert float((w / w.norm()) @ u).__abs__() > 0.5
    assert ccs.losses_.shape == (4,) and ccs.loss_ == pytest.approx(float(ccs.losses_.min()))
    p = ccs.predict_proba(d["x_pos"][te], d["x_neg"][te])
    assert p.shape == (300,) and float(p.min()) >= 0 and float(p.max()) <= 1


def test_baselines_without_distractor_find_truth_and_random_is_chance():
    d = make_contrast_pairs(n=600, d=32, seed=1)
    res = contrast_baselines(d["x_pos"], d["x_neg"], {"truth": d["truth"]}, seed=0, ccs_params=FAST_CCS)
    assert set(res) == {"ccs", "pca_diff", "kmeans_diff", "random", "logistic"}
    for method in ("ccs", "pca_diff", "kmeans_diff", "logistic"):
        assert res[method]["truth"] > 0.85, (method, res)
    assert res["random"]["truth"] < 0.7


def test_salient_distractor_hijacks_the_unsupervised_methods():
    rows = distractor_demo(distractor_strengths=(0.0, 3.0), n=600, d=32, seed=0, ccs_params=FAST_CCS)
    got = {(r["distractor_strength"], r["method"]): r for r in rows}
    for method in ("ccs", "pca_diff", "kmeans_diff"):
        assert got[(0.0, method)]["latched_onto"] == "truth", got[(0.0, method)]
        assert got[(3.0, method)]["latched_onto"] == "distractor", got[(3.0, method)]
        assert got[(3.0, method)]["acc_truth"] < 0.7
    # the supervised ceiling still reads the truth when trained on it
    assert got[(3.0, "logistic")]["acc_truth"] > 0.85
    assert got[(3.0, "logistic")]["latched_onto"] == "supervised"


def test_ccs_input_errors_and_threads_restored():
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="same shape"):
        CCS().fit(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(RuntimeError, match="not fitted"):
        CCS().predict(torch.zeros(5, 3), torch.zeros(5, 3))
    CCS(n_epochs=5, n_restarts=2).fit(torch.randn(10, 3), torch.randn(10, 3))
    assert torch.get_num_threads() == before
