"""circuits: ablating a set of components is the existing interventions' ablation; faithfulness / completeness hit
their definitions at the ends and sit next to seeded random circuits of the same size; Circuit JSON round trip."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
import torch
from test_circuits_helpers import V, neox, tiny

from toolkit import circuits, interventions, models, tasks


@pytest.fixture(scope="module")
def setup():
    model = tiny(n_layers=2, n_heads=2)
    g = torch.Generator().manual_seed(0)
    return model, torch.randint(0, V, (24, 8), generator=g), torch.randint(0, V, (40, 8), generator=g)


@pytest.mark.parametrize("method", ["mean", "resample"])
def test_ablating_every_head_is_interventions_ablate(setup, method):
    model, tokens, ref = setup
    comps = circuits.all_components(model, mlps=False)
    with circuits.ablate_components(model, comps, method=method, reference=ref, seed=3):
        ours = interventions.logits(model, tokens)
    edits = [interventions.ablate(model, f"blocks.{layer}.attn.hook_z", method=method, reference=ref, seed=3)
             for layer in range(2)]  # all built (captured) before any is switched on, as ablate_components does
    with ExitStack() as stack:
        for e in edits:
            stack.enter_context(e)
        theirs = interventions.logits(model, tokens)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert not torch.allclose(ours, interventions.logits(model, tokens), atol=1e-3)


def test_ablating_mlps_and_positions_and_the_empty_set(setup):
    model, tokens, ref = setup
    clean = interventions.logits(model, tokens)
    with circuits.ablate_components(model, [], method="mean", reference=ref):
        assert torch.equal(interventions.logits(model, tokens), clean)
    with circuits.ablate_components(model, ["MLP1"], method="mean", reference=ref):
        ours = interventions.logits(model, tokens)
    with interventions.ablate(model, "blocks.1.hook_mlp_out", method="mean", reference=ref):
        torch.testing.assert_close(ours, interventions.logits(model, tokens), rtol=0, atol=1e-6)
    # a component's own positions: only those positions (and, the model being causal, later ones) change
    with circuits.ablate_components(model, [{"layer": 0, "head": 1, "positions": [5]}], reference=ref):
        part = interventions.logits(model, tokens)
    assert torch.equal(part[:, :5], clean[:, :5]) and not torch.allclose(part[:, 5], clean[:, 5], atol=1e-4)
    sources = circuits.reference_activations(model, ref)
    with circuits.ablate_components(model, ["L1H0", (0, None)], sources=sources):
        a = interventions.logits(model, tokens)
    with circuits.ablate_components(model, ["L1H0", (0, None)], reference=ref):
        torch.testing.assert_close(a, interventions.logits(model, tokens), rtol=0, atol=0)
    with pytest.raises(ValueError, match="head must be in 0..1"):
        circuits.ablate_components(model, [(0, 5)], reference=ref).__enter__()
    with pytest.raises(ValueError, match="needs reference="):
        circuits.ablate_components(model, ["L0H0"]).__enter__()


def _last_logit(lg, data):
    return float(lg[:, -1, 0].mean() - lg[:, -1, 1].mean())


def test_faithfulness_and_completeness_at_their_definitions(setup):
    model, tokens, ref = setup
    full = circuits.all_components(model)
    kw = {"metric": _last_logit, "reference": ref, "progress": False}
    f_full = circuits.faithfulness(model, full, tokens, n_random=2, **kw)
    f_none = circuits.faithfulness(model, [], tokens, n_random=2, **kw)
    assert f_full.value == pytest.approx(1.0, abs=1e-9) and f_none.value == pytest.approx(0.0, abs=1e-9)
    assert f_full.full == pytest.approx(_last_logit(interventions.logits(model, tokens), None), abs=1e-6)
    c_none = circuits.completeness(model, [], tokens, n_random=2, **kw)
    assert c_none.value == pytest.approx(c_none.full, abs=1e-9) and c_none.normalized == pytest.approx(1.0)
    c_full = circuits.completeness(model, full, tokens, n_random=2, **kw)
    assert c_full.value == pytest.approx(c_full.ablated, abs=1e-9)

    circ = ["L0H1", "L1H0", "MLP1"]
    f = circuits.faithfulness(model, circ, tokens, n_random=4, seed=4, **kw)
    again = circuits.faithfulness(model, circ, tokens, n_random=4, seed=4, **kw)
    other = circuits.faithfulness(model, circ, tokens, n_random=4, seed=5, **kw)
    assert f.meta["random_circuits"] == again.meta["random_circuits"] != other.meta["random_circuits"]
    torch.testing.assert_close(f.random, again.random)
    for rc in f.meta["random_circuits"]:
        assert sum(n.startswith("MLP") for n in rc) == 1 and sum(n.startswith("L") for n in rc) == 2
    assert f.percentile == pytest.approx(100 * float((f.random <= f.value).float().mean()))
    row = f.table().iloc[0]
    assert row.n_random == 4 and row.random_mean == pytest.approx(float(f.random.mean()))
    assert json.loads(json.dumps(f.to_dict()))["kind"] == "faithfulness"
    # the same circuit by hand: only L0H1, L1H0, MLP1 run
    rest = [c for c in circuits.all_components(model) if c.name not in circ]
    with circuits.ablate_components(model, rest, reference=ref):
        by_hand = _last_logit(interventions.logits(model, tokens), None)
    assert f.raw == pytest.approx(by_hand, abs=1e-6)
    assert f.value == pytest.approx((by_hand - f.ablated) / (f.full - f.ablated), abs=1e-6)


def test_faithfulness_on_a_search_dataset_with_a_named_metric():
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(24, seed=1)
    model = models.build(task, n_layers=2, d_model=32, d_mlp=64)
    f = circuits.faithfulness(model, [{"layer": 1, "head": 0, "positions": "query"}], data, metric="loss",
                              n_random=2, progress=False)
    assert f.n_heads == 1 and f.n_mlps == 0 and len(f.random) == 2 and 0 <= f.percentile <= 100
    assert f.full == pytest.approx(interventions.run(model, data, "loss"), abs=1e-6)
    everywhere = circuits.faithfulness(model, ["L1H0"], data, metric="loss", n_random=0, progress=False)
    assert everywhere.raw != pytest.approx(f.raw, abs=1e-6)  # at the query only, L1H0 is ablated elsewhere
    spec = circuits.Circuit("tree-8", task.spec(), "loss", [{"layer": 1, "head": 0, "role": "r", "positions": "query"}])
    scores = spec.measure(model, data, n_random=2, progress=False)
    assert scores["faithfulness"].value == pytest.approx(f.value, abs=1e-9)
    assert scores["completeness"].kind == "completeness" and len(scores["completeness"].random) == 2


def test_circuit_json_round_trip_and_bad_fields(tmp_path):
    c = circuits.Circuit(model="tree-8", task={"type": "tree", "n_nodes": 8}, metric="token_acc",
                         components=[{"layer": 0, "head": 1, "role": "goal mover", "positions": "query"},
                                     {"layer": 2, "head": None, "role": "answer MLP", "positions": [3, 4]}],
                         faithfulness=0.91, completeness=None, notes="hand-found")
    path = c.to_json(tmp_path / "sub" / "tree-8.json")
    back = circuits.Circuit.from_json(path)
    assert back == c and back.names == ["L0H1", "MLP2"]
    assert list(back.table().name) == ["L0H1", "MLP2"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["tree-8.json"]  # no temporary file left behind
    good = json.loads(path.read_text())
    bad_cases = {
        "components[1].head": lambda d: d["components"][1].update(head="x"),
        "components[0].role": lambda d: d["components"][0].pop("role"),
        "components[0].colour": lambda d: d["components"][0].update(colour="red"),
        "faithfulness": lambda d: d.update(faithfulness="high"),
        "metric": lambda d: d.pop("metric"),
        "model": lambda d: d.update(model=3),
        "components[1].positions": lambda d: d["components"][1].update(positions=[1.5]),
    }
    for field, breaks in bad_cases.items():
        d = json.loads(json.dumps(good))
        breaks(d)
        (tmp_path / "bad.json").write_text(json.dumps(d))
        with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
            circuits.Circuit.from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"components\[0\].head.*2 heads"):
        circuits.Circuit("m", {}, "loss", [{"layer": 0, "head": 3, "role": "", "positions": None}]).check_model(
            tiny())


def test_ablation_and_faithfulness_on_gpt_neox(tmp_path):
    """A foreign architecture booted from a folder (parallel attention + MLP, rotary): the same tools apply."""
    model = neox(tmp_path)
    g = torch.Generator().manual_seed(0)
    tokens, ref = torch.randint(0, V, (16, 8), generator=g), torch.randint(0, V, (16, 8), generator=g)
    with circuits.ablate_components(model, ["L0H2", "L0H3", "MLP1"], reference=ref):
        ours = interventions.logits(model, tokens)
    heads = interventions.ablate(model, "blocks.0.attn.hook_z", method="mean", heads=[2, 3], reference=ref)
    mlp = interventions.ablate(model, "blocks.1.hook_mlp_out", method="mean", reference=ref)  # unablated mean
    with heads, mlp:
        torch.testing.assert_close(ours, interventions.logits(model, tokens), rtol=0, atol=1e-6)
    kw = {"metric": _last_logit, "reference": ref, "n_random": 3, "progress": False}
    assert circuits.faithfulness(model, circuits.all_components(model), tokens, **kw).value == pytest.approx(1.0)
    f = circuits.faithfulness(model, ["L1H0"], tokens, **kw)
    assert f.n_heads == 1 and f.n_mlps == 0 and all(len(r) == 1 for r in f.meta["random_circuits"])
