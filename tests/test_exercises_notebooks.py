"""The committed tutorials: learner notebooks match their solutions, stubs fail their checks with a message,
and every registered exercise appears in its notebook with a heading, the right badge and a check cell."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from toolkit import exercises as ex

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # authoring tools live outside toolkit
import authoring  # noqa: E402

SOLUTIONS = sorted((ROOT / "tutorials" / "solutions").glob("[0-9][0-9]_*.ipynb"))
CHECK_CALL = re.compile(r"ex\.check\(\s*[\"'](?P<id>[^\"']+)[\"']\s*,\s*(?P<name>\w+)\s*\)")
IDS = [p.name for p in SOLUTIONS]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_there_are_solution_notebooks():
    assert SOLUTIONS, "no tutorials/solutions/NN_*.ipynb found"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=IDS)
def test_learner_notebook_is_generated_from_its_solution(solution):
    learner = authoring.learner_path(solution)
    assert learner.exists(), f"{learner.name} is missing: run scripts/make_learner_notebooks.py"
    assert learner.read_text(encoding="utf-8") == authoring.learner_text(solution), (
        f"{learner.name} has drifted from solutions/{solution.name}: run scripts/make_learner_notebooks.py")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=IDS)
def test_learner_notebook_has_no_test_plumbing(solution):
    text = authoring.learner_path(solution).read_text(encoding="utf-8")
    assert "NBVAL" not in text, f"{solution.name}: the learner copy shows nbval markers; regenerate it"


def test_stored_solutions_are_up_to_date():
    module = ROOT / "toolkit" / "exercises" / "_solutions.py"
    expected = authoring.solutions_module(authoring.all_solutions(ROOT / "tutorials" / "solutions"))
    assert module.read_text(encoding="utf-8") == expected, "run scripts/make_learner_notebooks.py"


def _check_calls(nb) -> list[tuple[str, str]]:
    return [(m["id"], m["name"]) for c in nb.cells if c.cell_type == "code" for m in CHECK_CALL.finditer(c.source)]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=IDS)
def test_learner_stubs_fail_their_checks_with_a_message(solution):
    """Run each stub (the learner's exercise cell, as generated) through its checker: a message, no crash."""
    nb = nbformat.read(authoring.learner_path(solution), as_version=4)
    cells = {authoring.exercise_id_of(c.source): c.source for c in nb.cells if c.cell_type == "code"}
    calls = _check_calls(nb)
    registered = [e for e in ex.all_exercises() if e.id.startswith(solution.name[:2] + ".")]
    assert calls or not registered, f"{solution.name} has no ex.check(...) cells"
    for ex_id, name in calls:
        assert ex_id in cells, f"{solution.name}: ex.check({ex_id!r}, ...) but no '# Exercise {ex_id}' cell"
        namespace = {"torch": torch, "np": np}
        exec(compile("from __future__ import annotations\n" + cells[ex_id], f"<{ex_id}>", "exec"), namespace)
        assert name in namespace, f"{solution.name}: the cell of {ex_id} does not define {name!r}"
        result = ex.check(ex_id, namespace[name], show=False, record=False)
        assert not result.passed
        assert result.cases[-1].name == "not implemented yet", result.text()
        assert "NotImplementedError" in result.message


@pytest.mark.parametrize("solution", SOLUTIONS, ids=IDS)
def test_every_registered_exercise_is_in_its_notebook(solution):
    nb = nbformat.read(solution, as_version=4)
    number = solution.name[:2]
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    checked = {ex_id for ex_id, _ in _check_calls(nb)}
    for exercise in ex.all_exercises(number):
        heading = f"### Exercise {exercise.id} · {exercise.title}"
        assert heading in markdown, f"{solution.name}: add the heading {heading!r}"
        after = markdown.split(heading, 1)[1][:300]
        assert exercise.badge() in after, f"{solution.name}: under {heading!r} put the badge {exercise.badge()!r}"
        assert exercise.id in checked, f"{solution.name}: no ex.check({exercise.id!r}, ...) cell"
    stray = checked - {e.id for e in ex.all_exercises()}
    assert not stray, f"{solution.name} checks unregistered exercises {sorted(stray)}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=IDS)
def test_notebook_header_states_time_difficulty_prerequisites(solution):
    first = nbformat.read(solution, as_version=4).cells[0].source
    for word in ("**Time:**", "**Difficulty:**", "**Prerequisites:**"):
        assert word in first, f"{solution.name}: the first cell should state {word}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=IDS)
def test_solution_notebook_is_executed(solution):
    nb = nbformat.read(solution, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), (
        f"{solution.name} has unexecuted cells: run scripts/execute_notebooks.py {solution.relative_to(ROOT)}")


def test_make_learner_notebooks_check_mode_passes(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mln", ROOT / "scripts" / "make_learner_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, capsys.readouterr().out


def test_execute_script_tidies_bundles_widget_state_and_timings():
    import importlib.util

    from toolkit.viz import BUNDLE_MARK

    spec = importlib.util.spec_from_file_location("exn", ROOT / "scripts" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("view")
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": f'<div class="{BUNDLE_MARK}"></div><script>CircuitsVis.render()</script>', "text/plain": "v"})]
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    assert module.tidy(nb) == 1
    assert "widgets" not in nb.metadata and "execution" not in nb.cells[0].metadata
    assert "CircuitsVis" not in nb.cells[0].outputs[0]["data"]["text/html"]
    import shutil

    env = module.kernel_env(ROOT / "tutorials" / "solutions" / "01_x.ipynb")
    learner_env = module.kernel_env(ROOT / "tutorials" / "01_x.ipynb")
    for e in (env, learner_env):
        shutil.rmtree(Path(e["SEARCHLIGHT_PROGRESS"]).parent)
    assert env["SEARCHLIGHT_STRICT"] == "1" and env["SEARCHLIGHT_PROGRESS"].endswith("progress.json")
    assert "SEARCHLIGHT_STRICT" not in learner_env
