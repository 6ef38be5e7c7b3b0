"""One result protocol (issue #18): every result object has ``.table()`` -> DataFrame and ``.to_dict()``."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from toolkit.interventions.patching import PatchingResult
from toolkit.probes.result import COLUMNS, SweepResult
from toolkit.unsupervised.report import SAEReport


def _sweep() -> SweepResult:
    row = {c: None for c in COLUMNS} | {"label": "parent", "hook": "blocks.0.hook_resid_post", "score": 0.9,
                                        "found": True}
    return SweepResult(hooks=["blocks.0.hook_resid_post"], meta={"seed": 0}, rows=[row],
                       skipped=[("goal", None, "too few rows")])


def _patching() -> PatchingResult:
    return PatchingResult(torch.tensor([[1.0, 0.5]]), 1.0, 0.0, ["blocks.0.hook_resid_pre"], [0, 1], "position",
                          "logit_diff")


def _report() -> SAEReport:
    rows = [{"label": "parent", "sae": 0.9, "control": 0.4, "margin": 0.5}]
    metrics = {"sae": {"l0": torch.tensor(8.0), "explained_variance": 0.9}, "control": {"l0": 8.0}}
    return SAEReport(None, None, None, None, rows, metrics)


@pytest.mark.parametrize("make", [_sweep, _patching, _report], ids=["sweep", "patching", "sae_report"])
def test_every_result_has_table_and_to_dict(make):
    result = make()
    assert isinstance(result.table(), pd.DataFrame) and len(result.table()) >= 1
    d = result.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain Python all the way down


def test_patching_to_dict_keeps_the_scores_grid():
    d = _patching().to_dict()
    assert d["scores"] == [[1.0, 0.5]] and d["hooks"] == ["blocks.0.hook_resid_pre"] and d["per"] == "position"


def test_sweep_table_columns_are_unchanged():
    assert list(_sweep().table().columns) == list(COLUMNS)


def test_old_sae_report_table_list_still_works_with_a_warning():
    report = _report()
    with pytest.warns(DeprecationWarning, match=r"report.table\(\)"):
        rows = list(report.table)
    assert rows == report.rows
    assert report.table().to_dict("records") == report.rows


def test_label_match_eval_result_and_history_follow_the_protocol():
    import numpy as np

    from toolkit import models, tasks
    from toolkit.unsupervised import match_labels

    g = torch.Generator().manual_seed(0)
    y = torch.rand(400, generator=g) < 0.5
    features = torch.stack([y.float() + 0.1 * torch.randn(400, generator=g), torch.randn(400, generator=g)], 1)
    lm = match_labels(features, {"y": (y.long(), None)})
    assert isinstance(lm.table(), pd.DataFrame) and list(lm.table()["label"]) == ["y"]
    assert len(lm.table("latents")) == 2
    with pytest.raises(ValueError, match="'labels' or 'latents'"):
        lm.table("rows")
    with pytest.warns(DeprecationWarning, match=r"\.table\(\)"):
        assert lm.to_pandas().equals(lm.table())
    d = lm.to_dict()
    assert json.loads(json.dumps(d)) == d and d["labels"][0]["best_latent"] == 0

    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    model = models.build(task)
    ev = models.evaluate(model, task.generate(20, seed=1))
    assert list(ev.table()["difficulty"])[-1] == "all" and ev.table()["n"].iloc[-1] == 20
    assert json.loads(json.dumps(ev.to_dict())) == ev.to_dict()
    config = models.TrainConfig(steps=2, batch_size=8, eval_every=1, eval_size=8, pool_size=64, warmup_steps=1)
    hist = models.train(model, task, config, progress=False)
    assert list(hist.table().columns) == ["step", "exact", "token", "loss", "elapsed_s"] and len(hist.table()) >= 1
    assert json.loads(json.dumps(hist.to_dict())) == hist.to_dict()
    assert np.isfinite(hist.table()["loss"]).all()
