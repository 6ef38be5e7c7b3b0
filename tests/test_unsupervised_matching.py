"""match_labels / planted features on data where the right answer is built in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.unsupervised import (
    PCA,
    RandomDictionary,
    SparseAutoencoder,
    compare_to_control,
    match_labels,
    plant_feature,
    planted_recall,
)
from toolkit.unsupervised.matching import expand_labels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def planted():
    """Latent 0 = a binary label, latent 1 = a regression label, latent 2 = one class of a multiclass
    label, latent 3 = strong but unrelated to any label, latent 4 = dead."""
    n = 2000
    g = _gen(0)
    flag = torch.rand(n, generator=g) < 0.3
    dist = torch.randn(n, generator=g)
    cls = torch.randint(0, 4, (n,), generator=g)
    noise = torch.rand(n, 4, generator=g)
    F = torch.zeros(n, 5)
    F[:, 0] = flag * (1 + noise[:, 0])
    F[:, 1] = torch.relu(dist + 0.3 * noise[:, 1])
    F[:, 2] = (cls == 2) * noise[:, 2]
    F[:, 3] = (noise[:, 3] > 0.5) * noise[:, 3]
    valid = torch.rand(n, generator=g) < 0.8  # the regression label is defined on 80% of rows
    labels = {"flag": (flag, None), "dist": (dist, valid), "cls": (cls, torch.ones(n, dtype=torch.bool))}
    return F, labels


def test_each_latent_finds_its_label_and_the_stray_one_is_unlabelled(planted):
    F, labels = planted
    res = match_labels(F, labels, threshold=0.5)
    best = {r["latent"]: r for r in res.latents}
    assert best[0]["best_label"] == "flag" and best[0]["metric"] == "auc" and best[0]["value"] > 0.99
    assert best[1]["best_label"] == "dist" and best[1]["metric"] == "r" and best[1]["value"] > 0.7
    assert best[2]["best_label"] == "cls=2" and best[2]["value"] > 0.9
    assert not best[3]["matched"]
    assert res.unlabelled == [3]  # latent 4 is dead, so not "strong"
    per_label = {r["label"]: r for r in res.labels}
    assert per_label["flag"]["best_latent"] == 0 and per_label["flag"]["n_positive"] > 0
    assert per_label["dist"]["n_valid"] == int(labels["dist"][1].sum())
    assert {"cls=0", "cls=1", "cls=2", "cls=3"} <= set(res.sub_labels)
    assert res.score.shape == (5, len(res.sub_labels))
    assert "unlabelled" in repr(res)


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    g = _gen(3)
    y = torch.rand(500, generator=g) < 0.4
    f = torch.relu(torch.randn(500, generator=g) + y.float() * 0.5)  # many exact zeros => ties
    res = match_labels(f[:, None], {"y": y})
    assert res.raw[0, 0] == pytest.approx(roc_auc_score(y.numpy(), f.numpy()), abs=1e-12)


def test_kinds_override_and_label_sources():
    n = 300
    dist = torch.randint(0, 5, (n,), generator=_gen(1))
    f = dist.float()[:, None] + 0.1 * torch.rand(n, 1, generator=_gen(2))
    as_classes = match_labels(f, {"dist": dist})
    assert any(s.startswith("dist=") for s in as_classes.sub_labels)
    as_regression = match_labels(f, {"dist": dist}, kinds={"dist": "regression"})
    assert as_regression.sub_labels == ["dist"] and as_regression.labels[0]["value"] > 0.99

    class Acts:  # the shape of toolkit.activations' cache: label_names + labels(name)
        label_names = ["dist"]

        def labels(self, name):
            return dist, torch.ones(n, dtype=torch.bool)

    assert match_labels(f, Acts(), kinds={"dist": "regression"}).sub_labels == ["dist"]
    multi = torch.rand(n, 3, generator=_gen(4)) < 0.5
    subs = expand_labels({"reach": (multi, None)}, n)
    assert [s.name for s in subs] == ["reach[0]", "reach[1]", "reach[2]"]


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="rows"):
        match_labels(torch.zeros(10, 2), {"a": torch.zeros(9)})
    with pytest.raises(ValueError, match="no usable label"):
        match_labels(torch.zeros(10, 2), {"a": torch.zeros(10)})
    with pytest.raises(ValueError, match="not one of"):
        match_labels(torch.zeros(10, 2), {"a": torch.zeros(10)}, kinds={"a": "ordinal"})
    with pytest.raises(TypeError, match="dict name"):
        match_labels(torch.zeros(10, 2), [1, 2])


def test_compare_to_control_on_the_same_labels(planted):
    F, labels = planted
    good = match_labels(F, labels)
    ctrl = match_labels(torch.randn(F.shape[0], 5, generator=_gen(9)), labels)
    rows = compare_to_control({"sae": good, "control": ctrl})
    by = {r["label"]: r for r in rows}
    assert by["flag"]["sae"] > by["flag"]["control"] + 0.5
    with pytest.raises(ValueError, match="different labels"):
        compare_to_control({"a": good, "b": match_labels(F, {"flag": labels["flag"]})})


def test_plant_feature_is_relative_to_data_scale():
    X = 10 * torch.randn(1000, 16, generator=_gen(0))
    p = plant_feature(X, strength=1.0, frequency=0.1, seed=0)
    assert abs(float(p["mask"].float().mean()) - 0.1) < 0.03
    torch.testing.assert_close(p["X"][~p["mask"]], X[~p["mask"]])
    delta = (p["X"] - X)[p["mask"]]
    cos = (delta / delta.norm(dim=1, keepdim=True)) @ p["direction"]
    assert float(cos.min()) > 0.999
    rms = float(X.pow(2).sum(1).mean().sqrt())
    assert 0.5 * rms <= float(delta.norm(dim=1).min()) and float(delta.norm(dim=1).max()) <= 1.5 * rms


def test_planted_recall_strong_feature_found_weak_one_missed():
    X = torch.randn(4000, 16, generator=_gen(1)) * torch.linspace(2.0, 0.5, 16)
    rows = planted_recall({"pca": lambda: PCA(4), "random": lambda: RandomDictionary(4)}, X,
                          strengths=(0.05, 2.0), frequencies=(0.3,), seed=0)
    got = {(r["method"], r["strength"]): r for r in rows}
    assert got[("pca", 2.0)]["recovered"] and got[("pca", 2.0)]["best_auc"] > 0.9
    assert not got[("pca", 0.05)]["recovered"]  # too weak: PCA misses it - "not found" is not "absent"
    assert not got[("random", 2.0)]["recovered"]
    assert np.isfinite(got[("random", 2.0)]["max_cos"])


def test_sae_latent_matches_a_planted_sparse_feature():
    X = torch.randn(6000, 16, generator=_gen(2))
    p = plant_feature(X, strength=2.0, frequency=0.05, seed=1)
    sae = SparseAutoencoder(d_sae=32, architecture="topk", k=4, n_samples=60_000, batch_size=256,
                            progress=False).fit(p["X"])
    res = match_labels(sae.transform(p["X"]), {"planted": p["mask"]})
    assert res.labels[0]["value"] > 0.95
