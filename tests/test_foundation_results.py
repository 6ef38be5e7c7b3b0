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
