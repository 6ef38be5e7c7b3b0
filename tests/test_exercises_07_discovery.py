"""Tutorial 07 exercises: chapter-specific checks (tests/test_exercises_checks.py runs every reference and mistake)."""

from __future__ import annotations

import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises.chapters import ch07_discovery as ch
from toolkit.exercises.chapters import ch07_discovery_methods as dm
from toolkit.exercises.chapters import ch07_discovery_methods_ccs as cc

IDS = ["07.label_corr", "07.best_matches", "07.plant_feature", "07.normalise_pairs", "07.ccs_loss", "07.pca",
       "07.lloyd_kmeans", "07.ccs_probe_losses", "07.fit_ccs", "07.resolve_sign"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_chapter_registers_its_exercises():
    assert sorted(e.id for e in ex.all_exercises("07")) == sorted(IDS)
    for e in ex.all_exercises("07"):
        assert e.mistakes, f"{e.id} diagnoses no plausible mistake"


def test_wrong_type_fails_cleanly():
    wrong = ex.check("07.normalise_pairs", lambda a, b: a, show=False, record=False)
    assert not wrong and "tuple" in wrong.message


def test_references_agree_with_the_toolkit():
    from toolkit.viz.features import label_match_matrix

    g = torch.Generator().manual_seed(0)
    latents = torch.relu(torch.randn(50, 4, generator=g))
    targets = (torch.rand(50, 3, generator=g) < 0.4).float()
    _, mat = label_match_matrix(latents, {f"t{k}": targets[:, k] for k in range(3)})
    assert torch.allclose(ch.label_corr(latents, targets), torch.as_tensor(mat).float(), atol=1e-5)
    a, b = torch.randn(30, 5, generator=g), torch.randn(30, 5, generator=g) + 2
    na, nb = ch.normalise_pairs(a, b)
    for side in (na, nb):
        assert torch.allclose(side.mean(0), torch.zeros(5), atol=1e-5)
        assert torch.allclose(side.std(0), torch.ones(5), atol=1e-5)


def test_reference_values_by_hand():
    assert float(ch.ccs_loss(torch.tensor([1.0]), torch.tensor([0.0]))) == 0.0
    assert float(ch.ccs_loss(torch.tensor([0.5]), torch.tensor([0.5]))) == pytest.approx(0.25)
    x = torch.zeros(3, 2)
    planted = ch.plant_feature(x, torch.tensor([3.0, 4.0]), torch.tensor([True, False, True]), 10.0)
    assert planted.tolist() == [[6.0, 8.0], [0.0, 0.0], [6.0, 8.0]]
    assert ch.best_matches(torch.tensor([[0.2, 0.8], [0.1, 0.2]]), ["a", "b"], 0.5) == ["b", None]


def test_method_references_agree_with_torch_sklearn_and_ccs():
    from sklearn.cluster import KMeans

    from toolkit import unsupervised as U
    from toolkit.unsupervised.train import generator

    # PCA: a plain torch SVD with sklearn's sign convention reproduces U.PCA
    for _, (X, k) in dm._pca_cases():
        for got, want in zip(dm._pca_torch(X, k), dm.pca(X, k)):
            assert torch.allclose(got, want, atol=1e-4)
    # Lloyd's k-means = scikit-learn's lloyd from the same start
    for _, (X, init, n_iter) in dm._kmeans_cases():
        c, labels = dm.lloyd_kmeans(X, init, n_iter)
        km = KMeans(init.shape[0], init=init.double().numpy(), n_init=1, max_iter=n_iter, tol=0.0,
                    algorithm="lloyd").fit(X.double().numpy())
        assert torch.allclose(c.double(), torch.from_numpy(km.cluster_centers_), atol=1e-4)
        assert labels.tolist() == km.labels_.tolist()
    # fit_ccs = U.CCS.fit when started from U.CCS's own initial probes
    data = U.make_contrast_pairs(n=40, d=8, seed=1)
    ccs = U.CCS(n_restarts=4, n_epochs=60, lr=0.02, weight_decay=0.01, seed=5).fit(data["x_pos"], data["x_neg"])
    w0 = torch.randn(8, 4, generator=generator(5, "ccs-init")) / 8 ** 0.5
    direction, bias, losses = cc.fit_ccs(data["x_pos"], data["x_neg"], w0, 60, 0.02, 0.01)
    assert torch.allclose(direction, ccs.direction_, atol=1e-5) and bias == pytest.approx(ccs.bias_, abs=1e-5)
    assert torch.allclose(losses, ccs.losses_, atol=1e-6)


def test_sign_is_chosen_on_labelled_rows_only():
    p = torch.tensor([0.9, 0.9, 0.1, 0.1])
    y = torch.tensor([False, False, False, False])
    assert cc.resolve_sign(p, y, torch.tensor([True, True, False, False])) == (True, 0.0)
    # a probe and its negation give p -> 1 - p: for consistent probabilities (p- = 1 - p+) the loss is unchanged
    p_pos = torch.tensor([0.9, 0.2, 0.7])
    assert float(ch.ccs_loss(p_pos, 1 - p_pos)) == pytest.approx(float(ch.ccs_loss(1 - p_pos, p_pos)))


def test_open_question_answer_uses_the_numbers():
    from toolkit.exercises import questions

    text = questions.answer_text(
        "07.absent_distance", "probe it, plant a feature, and check the layer and positions first please",
        plant_cos={0.1: 0.36, 0.3: 1.0, 1.0: 1.0}, plant_acc={0.1: 1.0, 0.3: 1.0, 1.0: 1.0},
        sae_scores={"token": 0.9, "position": 0.8, "depth": 0.2}, random_scores={"token": 0.7, "position": 0.95})
    assert "0.36" in text and "['depth']" in text and "0.80" in text and "0.70" in text
    assert "first" in questions.answer_text("07.absent_distance", "", plant_cos={}, plant_acc={}, sae_scores={},
                                            random_scores={})
