"""Each signature test on hand-built rows: True where the code is planted, False on pure noise; metrics; errors."""

from __future__ import annotations

import math

import pytest
import torch

from toolkit import models, signatures, tasks
from toolkit.signatures.candidates import auc, candidates_test
from toolkit.signatures.evaluation import evaluation_test, pair_accuracy
from toolkit.signatures.rows import DecisionRows

V, R = 10, 800


def _rows(planted: bool, seed: int = 0) -> DecisionRows:
    """Decision points with two candidates among tokens 5..9 (slot 0 or 1 chosen); current token in 0..4."""
    g = torch.Generator().manual_seed(seed)
    cur = torch.randint(0, 5, (R,), generator=g)
    ids = torch.stack([torch.randperm(5, generator=g)[:2] + 5 for _ in range(R)])
    chosen = torch.randint(0, 2, (R,), generator=g)
    score = torch.where(torch.arange(2)[None, :] == chosen[:, None], 1.0, 3.0)
    member = torch.zeros(R, V)
    member.scatter_(1, ids, 1.0)
    rel = torch.zeros(R, V)
    rel.scatter_(1, ids, score - 1.0)
    noise = torch.randn(R, 2 * V, generator=g)
    X = torch.cat([member, rel], 1) + 0.3 * noise if planted else noise
    base = torch.nn.functional.one_hot(cur, V).float()
    test = torch.arange(R) % 3 == 0
    return DecisionRows({"h": X}, {"h": torch.randn(R, 2 * V, generator=g)}, ids, score, chosen, cur, base,
                        "current token", torch.arange(R), torch.zeros(R, dtype=torch.long), test, V)


def test_candidates_true_when_planted_false_on_noise():
    yes = candidates_test(_rows(True), threshold=0.1)
    no = candidates_test(_rows(False), threshold=0.1)
    assert yes.verdict and yes.score > 0.9 and yes.margin > 0.3
    assert not no.verdict and abs(no.score - 0.5) < 0.1
    assert no.baseline is not None and no.twin is not None


def test_evaluation_true_when_planted_false_on_noise():
    yes, probes = evaluation_test(_rows(True), threshold=0.1)
    no, _ = evaluation_test(_rows(False), threshold=0.1)
    assert yes.verdict and yes.score > 0.9
    assert not no.verdict and abs(no.score - 0.5) < 0.1
    assert set(probes["h"]) <= set(range(5, 10))


def test_auc_matches_pair_counting():
    g = torch.Generator().manual_seed(1)
    s = torch.randint(0, 5, (60,), generator=g).float()  # many ties
    y = torch.randint(0, 2, (60,), generator=g)
    pos, neg = s[y == 1], s[y == 0]
    want = float(((pos[:, None] > neg[None, :]).float() + 0.5 * (pos[:, None] == neg[None, :]).float()).mean())
    assert abs(auc(s, y) - want) < 1e-6
    assert math.isnan(auc(s, torch.zeros(60)))


def test_pair_accuracy_counts_only_pairs_with_different_scores():
    true = torch.tensor([[0.0, 2.0], [0.0, 0.0], [1.0, float("nan")], [2.0, 0.0]])
    pred = torch.tensor([[0.1, 0.9], [5.0, 1.0], [0.0, 1.0], [0.2, 0.4]])
    acc, n = pair_accuracy(pred, true)
    assert n == 2 and acc == 0.5


def test_run_refuses_bad_input():
    model = models.pretrained("tree-8")
    data = models.task_of(model).generate(20, seed=100, split="test")
    with pytest.raises(TypeError, match="SearchDataset"):
        signatures.run(model, data.tokens, progress=False)
    with pytest.raises(ValueError, match="thresholds"):
        signatures.run(model, data, thresholds={"search": 0.1}, progress=False)
    with pytest.raises(TypeError, match="TransformerBridge"):
        signatures.run(object(), data, progress=False)
    graph = tasks.GraphSearch()
    with pytest.raises(NotImplementedError, match="no next-move candidates"):
        signatures.run(models.pretrained("graph-10"), graph.generate(8), progress=False)


def test_make_twin_never_returns_the_model_itself():
    twin, how = signatures.make_twin(models.pretrained("tree-8"))
    assert "random_init=True" in how
    twin2, how2 = signatures.make_twin(twin)
    assert "seed=1" in how2
    a, b = twin.state_dict(), twin2.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_report_table_dict_and_plot():
    import json

    import matplotlib

    matplotlib.use("Agg")
    yes = candidates_test(_rows(True), threshold=0.1)
    ev, _ = evaluation_test(_rows(False), threshold=0.1)
    rep = signatures.SignatureReport({"candidates": yes.verdict, "evaluation": ev.verdict},
                                     {"candidates": yes, "evaluation": ev}, "m", "t", R, R, 0)
    assert rep.n_yes == 1 and not rep.searches
    assert list(rep.table()["criterion"]) == ["candidates", "evaluation"]
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["verdicts"] == {"candidates": True, "evaluation": False} and "failure" in d["evidence"]["candidates"]
    assert rep.plot().axes and "1/3" in repr(rep) or "1/3" in str(rep)
