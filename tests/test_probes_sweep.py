"""probes.sweep on planted data: found only where the signal beats the trivial baseline and the twin."""

from __future__ import annotations

import pytest
import torch

from toolkit import activations, models, probes, tasks
from toolkit.activations import Activations
from toolkit.tasks.base import Label, SearchDataset

N, SEQ, V, D = 600, 6, 10, 24


def synthetic(seed: int = 0):
    """Tokens, three labels, and activations: layer 0 = token/position only; layer 1 adds the planted label."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V, (N, SEQ), generator=g)
    mask = torch.ones(N, SEQ, dtype=torch.bool)
    mask[:, 0] = False
    base = torch.zeros(N, SEQ, V + SEQ)
    base.scatter_(2, tokens[..., None], 1.0)
    base[:, torch.arange(SEQ), V + torch.arange(SEQ)] = 1.0
    planted = torch.randint(0, 4, (N, SEQ), generator=g)  # context-dependent: not a function of the token
    trivial = tokens % 3  # readable from the current token alone
    noise = torch.randint(0, 3, (N, SEQ), generator=g)
    labels = {name: Label(name, "multiclass", v, mask, k, base)
              for name, v, k in (("planted", planted, 4), ("trivial", trivial, 3), ("noise", noise, 3))}
    depth = planted.float()[..., None] + 0.1 * torch.randn(N, SEQ, 1, generator=g)
    labels["depth"] = Label("depth", "regression", depth, mask, None, base)
    data = SearchDataset(None, tokens, mask.clone(), torch.ones(N, dtype=torch.long), labels, [None] * N)
    emb = torch.randn(V + SEQ, D, generator=g)
    means = torch.randn(4, D, generator=g) * 1.5
    h0 = base @ emb + 0.3 * torch.randn(N, SEQ, D, generator=g)
    h1 = h0 + means[planted]
    twin1 = h0 + 0.3 * torch.randn(N, SEQ, D, generator=g)
    ex, pos = mask.nonzero(as_tuple=True)
    rows = {"example_index": ex, "position": pos, "token": tokens[ex, pos]}
    hooks = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
    meta = {"hooks": hooks, "row_shapes": {h: [D] for h in hooks}, "dtype": "float32", "n_layers": 1}
    acts = Activations({hooks[0]: h0[ex, pos], hooks[1]: h1[ex, pos]}, rows, data, meta)
    twin = Activations({hooks[0]: h0[ex, pos], hooks[1]: twin1[ex, pos]}, rows, data, meta)
    return acts, twin


@pytest.fixture(scope="module")
def result():
    acts, twin = synthetic()
    return acts, twin, probes.sweep(acts, random_acts=twin, n_boot=100, progress=False)


def cell(res, label, hook):
    (row,) = [r for r in res.rows if r["label"] == label and r["hook"] == hook]
    return row


def test_found_only_where_the_signal_is(result):
    _, _, res = result
    pre, post = "blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"
    assert cell(res, "planted", post)["found"] and cell(res, "planted", post)["score"] > 0.9
    assert not cell(res, "planted", pre)["found"]
    # decodable everywhere, but no better than the trivial token baseline -> not found
    t = cell(res, "trivial", post)
    assert t["score"] > 0.95 and t["baseline"] > 0.95 and not t["found"]
    assert not any(r["found"] for r in res.rows if r["label"] == "noise")
    d = cell(res, "depth", post)
    assert d["metric"] == "r2" and d["score"] > 0.9 and d["found"]
    for r in res.rows:
        assert r["score_lo"] <= r["score"] + 1e-9 and r["score"] <= r["score_hi"] + 1e-9
    assert cell(res, "planted", post)["layer"] == 1 and cell(res, "planted", pre)["layer"] == 0
    assert cell(res, "noise", post)["chance"] == pytest.approx(1 / 3, abs=0.06)


def test_the_random_init_twin_blocks_a_finding(result):
    acts, _, _ = result
    same = probes.sweep(acts, labels="planted", random_acts=acts, n_boot=50, progress=False)
    assert not any(r["found"] for r in same.rows)  # the twin reads it as well as the model


def test_control_and_selectivity(result):
    _, _, res = result
    r = cell(res, "planted", "blocks.0.hook_resid_post")
    assert r["selectivity"] == pytest.approx(r["score"] - r["control"])
    acts, twin, _ = result
    tok = probes.sweep(acts, labels="trivial", control="token", random_acts=twin, n_boot=0, progress=False)
    assert all(row["control"] > 0.95 for row in tok.rows)  # a per-token control is memorised perfectly
    with pytest.raises(ValueError, match="control"):
        probes.sweep(acts, control="word", progress=False)


def test_table_probes_directions_and_maps(result):
    acts, twin, res = result
    tab = res.table()
    assert list(tab.columns)[:6] == ["label", "kind", "metric", "group", "layer", "hook"]
    assert len(tab) == 4 * 2 and tab["found"].dtype == bool
    probe = res.probes["planted"]["blocks.0.hook_resid_post"]
    X = acts["blocks.0.hook_resid_post"]
    y, _ = acts.labels("planted")
    assert probe.score(X, y) > 0.9
    v = res.direction("planted", "blocks.0.hook_resid_post", cls=2)
    assert v.shape == (D,) and float(v.norm()) == pytest.approx(1.0)
    bypos = probes.sweep(acts, labels="planted", random_acts=twin, group_by="position", n_boot=0, progress=False)
    grid = bypos.map("planted")
    assert list(grid.columns) == list(range(1, SEQ)) and list(grid.index) == acts.hook_names
    assert bool((grid.loc["blocks.0.hook_resid_post"] > 0.8).all())
    # padded, row-weighted batching of the per-position cells == fitting each position on its own
    for p in (1, 4):
        at_p = acts.position == p
        alone = probes.sweep(acts.select(at_p), labels="planted", random_acts=twin.select(at_p), n_boot=0,
                             progress=False)
        for r in alone.rows:
            (b,) = [x for x in bypos.rows if x["group"] == p and x["hook"] == r["hook"]]
            for col in ("score", "baseline", "random_init"):
                assert b[col] == pytest.approx(r[col], abs=0.011), (p, r["hook"], col)
    assert res.found()[0][0] in ("planted", "depth")
    assert "found" in repr(res)


def test_all_labels_in_one_solve_equal_one_label_at_a_time(result):
    # every label's cells (each position x hook x variant, plus baselines) share batched solves; problems are
    # independent, so a sweep of all labels gives each label's sweep on its own
    acts, twin, _ = result
    every = probes.sweep(acts, random_acts=twin, group_by="position", n_boot=20, progress=False)
    rows = {(r["label"], r["group"], r["hook"]): r for r in every.rows}
    for label in acts.label_names:
        alone = probes.sweep(acts, labels=label, random_acts=twin, group_by="position", n_boot=20, progress=False)
        for r in alone.rows:
            b = rows[(label, r["group"], r["hook"])]
            for col in ("score", "score_lo", "baseline", "control", "random_init"):
                assert b[col] == pytest.approx(r[col], abs=1e-6), (label, r["group"], r["hook"], col)


def test_errors_and_skips(result):
    acts, _, _ = result
    with pytest.raises(KeyError, match="no label"):
        probes.sweep(acts, labels="parent", progress=False)
    with pytest.raises(ValueError, match="not among the cached hooks"):
        probes.sweep(acts, layers=3, progress=False)
    with pytest.raises(ValueError, match="group_by"):
        probes.sweep(acts, group_by="layer", progress=False)
    few = probes.sweep(acts, labels="planted", min_rows=10_000, progress=False)
    assert few.rows == [] and few.skipped and "train" in few.skipped[0][2]
    mlp = probes.sweep(acts, labels="planted", layers=["blocks.0.hook_resid_post"], probe="mlp", control=False,
                       n_boot=0, progress=False)
    assert mlp.rows[0]["score"] > 0.85


def test_twin_given_as_a_model_is_cached_at_the_same_rows():
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(300, seed=4)
    model, twin = models.build(task), models.build(task, seed=1)
    acts = activations.cache(model, data, hooks="blocks.0.hook_resid_post", positions="parent", progress=False)
    res = probes.sweep(acts, labels="parent", random_acts=twin, control=False, n_boot=0, progress=False)
    tw = activations.cache(twin, data, hooks="blocks.0.hook_resid_post", positions="parent", progress=False)
    ref = probes.sweep(acts, labels="parent", random_acts=tw, control=False, n_boot=0, progress=False)
    assert res.rows[0]["random_init"] == pytest.approx(ref.rows[0]["random_init"])


def test_sweep_refuses_nan_and_inf_activations_and_label_values():
    acts, _ = synthetic()
    hook = "blocks.0.hook_resid_post"
    acts[hook][[4, 9], 0] = float("nan")
    acts[hook][9, 1] = float("inf")
    with pytest.raises(ValueError, match=r"acts\['blocks\.0\.hook_resid_post'\] has NaN in 2 of \d+ rows and inf in 1 "
                                         r"of \d+ rows \(first at row 4\); drop those rows with acts\.select\(keep\)"):
        probes.sweep(acts, labels="planted", control=False, n_boot=0, progress=False)
    acts, _ = synthetic()
    values = acts.data.labels["depth"].values
    values[0, 2, 0] = float("nan")  # a valid row of the regression label (position 0 is masked out)
    with pytest.raises(ValueError, match=r"label 'depth' \(at its valid rows\) has NaN in 1 of"):
        probes.sweep(acts, labels="depth", control=False, n_boot=0, progress=False)
