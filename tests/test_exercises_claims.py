"""The claim API (toolkit.exercises.claims) and the link between the notebooks' claims and docs/CLAIMS.md."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from toolkit import exercises as ex
from toolkit.exercises.claims import ClaimFailed

ROOT = Path(__file__).resolve().parents[1]
VERDICT = re.compile(r"^([✔✘]) (.+) \(((?:[≥≤<>=]|between) [^()]*)\)$")


@pytest.fixture(autouse=True)
def _lenient(monkeypatch):
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)
    monkeypatch.delenv("SEARCHLIGHT_CLAIMS_LOG", raising=False)


@pytest.mark.parametrize(("kwargs", "value", "held", "bound"), [
    ({"at_least": 0.95}, 0.97, True, "≥ 0.95"),
    ({"at_least": 0.95}, 0.95, True, "≥ 0.95"),
    ({"at_least": 0.95}, 0.9499, False, "≥ 0.95"),
    ({"above": 0.5}, 0.5, False, "> 0.5"),
    ({"at_most": 0.1}, 0.1, True, "≤ 0.1"),
    ({"below": 0.1}, 0.1, False, "< 0.1"),
    ({"between": (0.2, 0.4)}, 0.3, True, "between 0.2 and 0.4"),
    ({"between": (0.2, 0.4)}, 0.41, False, "between 0.2 and 0.4"),
    ({"equals": True}, True, True, "= True"),
    ({"equals": 3}, 4, False, "= 3"),
])
def test_bounds(kwargs, value, held, bound):
    c = ex.claim("the thing", value, show=False, **kwargs)
    assert bool(c) is held
    assert c.bound == bound
    assert c.text == f"{'✔' if held else '✘'} the thing ({bound})"


def test_verdict_text_has_no_measured_digits_but_the_report_does():
    c = ex.claim("parent is decodable", 0.987654, at_least=0.9, show=False)
    assert "0.988" not in c.text and c._repr_mimebundle_()["text/plain"] == c.text
    assert "0.988" in c.report() and "0.988" in c.html()


def test_accepts_tensors_numpy_and_bools():
    assert ex.claim("t", torch.tensor(0.7), at_least=0.5, show=False)
    assert ex.claim("n", np.float32(0.7), at_least=0.5, show=False)
    assert ex.claim("b", np.bool_(True), equals=True, show=False)
    assert ex.claim("limit as tensor", 0.7, at_least=torch.tensor(0.5), show=False)


def test_nan_meets_no_bound():
    assert not ex.claim("nan", math.nan, at_most=1.0, show=False)
    assert not ex.claim("nan", math.nan, between=(0, 1), show=False)


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({}, TypeError, "exactly one bound"),
    ({"at_least": 1, "at_most": 2}, TypeError, "exactly one bound"),
    ({"between": (2, 1)}, ValueError, "low is above high"),
    ({"between": 3}, TypeError, "between= takes (low, high)"),
])
def test_bad_bounds_say_what_to_fix(kwargs, error, words):
    with pytest.raises(error, match=re.escape(words)):
        ex.claim("x", 1.0, show=False, **kwargs)


def test_bad_measurements_say_what_to_fix():
    with pytest.raises(TypeError, match="reduce it first"):
        ex.claim("x", torch.ones(3), at_least=0, show=False)
    with pytest.raises(TypeError, match="number or a bool"):
        ex.claim("x", "0.5", at_least=0, show=False)
    with pytest.raises(TypeError, match="equals="):
        ex.claim("x", True, at_least=0, show=False)
    with pytest.raises(TypeError, match="non-empty sentence"):
        ex.claim("  ", 1.0, at_least=0, show=False)


def test_strict_mode_raises_with_claim_measurement_and_advice(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_STRICT", "1")
    with pytest.raises(ClaimFailed) as info:
        ex.claim("goal is decodable", 0.42, at_least=0.9, if_fails="check the hook name", show=False)
    message = str(info.value)
    assert "goal is decodable" in message and "≥ 0.9" in message and "0.42" in message
    assert "check the hook name" in message
    assert ex.claim("fine", 1.0, at_least=0.9, show=False)


def test_failure_outside_strict_mode_is_shown_not_raised(capsys):
    c = ex.claim("goal is decodable", 0.42, at_least=0.9)
    out = capsys.readouterr().out
    assert not c and "✘ goal is decodable (≥ 0.9): measured 0.42" in out and "What to check" in out


def test_log_appends_one_json_line_per_claim(tmp_path, monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("SEARCHLIGHT_CLAIMS_LOG", str(log))
    ex.claim("a", 0.5, at_least=0.1, show=False)
    ex.claim("b", False, equals=True, show=False)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows == [{"statement": "a", "measured": 0.5, "bound": "≥ 0.1", "held": True},
                    {"statement": "b", "measured": False, "bound": "= True", "held": False}]


def test_run_seed(monkeypatch):
    monkeypatch.delenv("SEARCHLIGHT_SEED", raising=False)
    assert ex.run_seed() == 0
    monkeypatch.setenv("SEARCHLIGHT_SEED", "2")
    assert ex.run_seed() == 2
    monkeypatch.setenv("SEARCHLIGHT_SEED", "two")
    with pytest.raises(ValueError, match="not an integer"):
        ex.run_seed()


# --- the notebooks' claims against their measured spread ------------------------------------------------

def _saved_verdicts(path: Path) -> list[str]:
    """Verdict lines in a notebook's saved outputs of checked cells."""
    nb = json.loads(path.read_text())
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "NBVAL_CHECK_OUTPUT" not in "".join(cell["source"]):
            continue
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) or "".join(out.get("data", {}).get("text/plain", ""))
            lines += [line for line in text.splitlines() if VERDICT.match(line)]
    return lines


NOTEBOOKS = sorted((ROOT / "tutorials" / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_saved_claim_held_in_every_measured_run(path):
    """Each claim a checked cell shows was measured by scripts/measure_claims.py and held in every run."""
    verdicts = _saved_verdicts(path)
    assert verdicts, f"{path.name}: no checked cell shows a claim; state the notebook's findings with ex.claim"
    record = ROOT / "docs" / "claims" / f"{path.stem}.json"
    assert record.exists(), f"{path.name} has claims but no {record.relative_to(ROOT)}: run scripts/measure_claims.py"
    data = json.loads(record.read_text())
    assert len(data["seeds"]) >= 3 and set(data["paths"]) == {"native", "default-avx2"}, (
        f"{record.name}: measure over >= 3 seeds and both numeric paths")
    assert not [r for r in data["runs"] if r["error"]], f"{record.name}: some measured runs failed"
    measured = {f"{c['statement']} ({c['bound']})": c for c in data["claims"]}
    n_runs = len(data["runs"])
    for line in verdicts:
        sign, statement, bound = VERDICT.match(line).groups()
        assert sign == "✔", f"{path.name}: the saved output shows a failed claim: {line}"
        entry = measured.get(f"{statement} ({bound})")
        assert entry is not None, f"{path.name}: '{line}' has no measured spread: rerun scripts/measure_claims.py"
        assert all(r["held"] for r in entry["runs"]), f"{path.name}: '{line}' did not hold in every measured run"
        assert len({(r["seed"], r["path"]) for r in entry["runs"]}) == n_runs, (
            f"{path.name}: '{line}' was not made in every measured run")
