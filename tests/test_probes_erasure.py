"""LEACE erasure and directions."""

from __future__ import annotations

import torch

from toolkit import probes


def data(seed=0, n=4000, d=12):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    means = torch.randn(4, d, generator=g) * 2
    X = means[y] + torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g) * 0.5
    return X, y


def test_leace_removes_linear_information_with_a_small_edit():
    X, y = data()
    chance = float((y[3000:] == torch.bincount(y[:3000]).argmax()).float().mean())
    before = probes.LogisticProbe().fit(X[:3000], y[:3000]).score(X[3000:], y[3000:])
    eraser = probes.LeaceEraser().fit(X, y)
    Xe = eraser.transform(X)
    after = probes.LogisticProbe().fit(Xe[:3000], y[:3000]).score(Xe[3000:], y[3000:])
    assert before > 0.9 and abs(after - chance) < 0.04, (before, after, chance)
    assert eraser.rank_ == 3  # k classes -> k - 1 directions
    # class-conditional means coincide after erasure
    means = torch.stack([Xe[y == c].mean(0) for c in range(4)])
    assert float((means - means.mean(0)).abs().max()) < 1e-3
    # the edit is no bigger than plain projection onto the span of the class-mean differences
    dirs = torch.stack([X[y == c].mean(0) - X.mean(0) for c in range(4)])
    proj = probes.project_out(X - X.mean(0), dirs) + X.mean(0)
    assert float((Xe - X).norm(dim=1).pow(2).mean()) <= float((proj - X).norm(dim=1).pow(2).mean()) + 1e-3


def test_direction_recovers_a_planted_direction():
    g = torch.Generator().manual_seed(5)
    u = torch.nn.functional.normalize(torch.randn(32, generator=g), dim=0)
    y = torch.randint(0, 2, (2000,), generator=g)
    X = torch.randn(2000, 32, generator=g) + 3.0 * y[:, None] * u
    for method in ("mean_diff", "probe"):
        v = probes.direction(X, y, method=method)
        assert float(v @ u) > 0.9, method
    raw = probes.direction(X, y, normalize=False)
    assert abs(float(raw.norm()) - 3.0) < 0.3
    z = X @ u + 0.1 * torch.randn(2000, generator=g)
    assert float(probes.direction(X, z) @ u) > 0.9  # regression target
    Y3 = torch.randint(0, 3, (2000,), generator=g)
    try:
        probes.direction(X, Y3)
    except ValueError as e:
        assert "cls=" in str(e)
    else:
        raise AssertionError("multiclass without cls= must raise")
