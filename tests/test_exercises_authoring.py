"""Single-source authoring: solution notebook -> learner notebook + stored solutions."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # authoring tools live outside toolkit
import authoring  # noqa: E402
from authoring import AuthoringError  # noqa: E402


def _nb(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for kind, source, *tags in cells:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        if kind == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="hello")]
            cell.execution_count = 3
        nb.cells.append(cell)
    return nb


EXERCISE = '''# Exercise 01.demo
def demo(x: int) -> int:
    """Double x."""
    # SOLUTION
    y = 2 * x
    return y
    # END SOLUTION'''


def test_solution_block_becomes_a_stub_keeping_signature_and_docstring():
    learner = authoring.make_learner(_nb(("code", EXERCISE)), "01_demo.ipynb")
    src = learner.cells[0].source
    assert 'def demo(x: int) -> int:\n    """Double x."""\n    raise NotImplementedError("Exercise 01.demo:' in src
    assert "2 * x" not in src and "SOLUTION" not in src
    assert learner.cells[0].outputs == [] and learner.cells[0].execution_count is None
    assert learner.metadata["searchlight"]["generated_from"] == "solutions/01_demo.ipynb"
    namespace: dict = {}
    exec(src, namespace)  # the stub is valid Python and raises only when called
    with pytest.raises(NotImplementedError, match="01.demo"):
        namespace["demo"](1)


def test_input_notebook_is_not_modified():
    nb = _nb(("code", EXERCISE))
    authoring.make_learner(nb)
    assert "2 * x" in nb.cells[0].source and nb.cells[0].outputs


def test_several_blocks_and_top_level_blocks():
    src = "# Exercise 01.two\nimport math\n# SOLUTION\na = 1\n# END SOLUTION\nb = 2\n# SOLUTION\nc = 3\n# END SOLUTION"
    out = authoring.strip_code(src)
    assert out.count("raise NotImplementedError") == 2 and "b = 2" in out and "a = 1" not in out


def test_markdown_answers_and_tagged_cells():
    nb = _nb(("markdown", "Question?\n<!-- SOLUTION -->\nBecause.\n<!-- END SOLUTION -->\nMore."),
             ("code", "# Exercise 01.tagged\n# comment kept\nx = secret()", "solution"))
    learner = authoring.make_learner(nb)
    assert learner.cells[0].source == "Question?\n*Your answer here.*\nMore."
    assert learner.cells[1].source.startswith("# Exercise 01.tagged\n# comment kept\nraise NotImplementedError")
    assert "secret" not in learner.cells[1].source
    assert authoring.extract_solutions(nb)["01.tagged"].endswith("x = secret()")


@pytest.mark.parametrize("source, match", [
    ("# SOLUTION\n# SOLUTION\n# END SOLUTION", "inside another"),
    ("x = 1\n# END SOLUTION", "without a '# SOLUTION'"),
    ("# SOLUTION\nx = 1", "never closed"),
])
def test_unbalanced_markers_are_errors(source, match):
    with pytest.raises(AuthoringError, match=match):
        authoring.strip_code(source, "nb cell 0")


def test_markdown_marker_errors():
    with pytest.raises(AuthoringError, match="without a matching"):
        authoring.strip_markdown("<!-- SOLUTION --> open")
    with pytest.raises(AuthoringError, match="without a"):
        authoring.strip_markdown("closed <!-- END SOLUTION -->")


def test_extract_solutions_checks_conventions():
    assert authoring.extract_solutions(_nb(("code", EXERCISE))) == {"01.demo": EXERCISE.replace(
        "    # SOLUTION\n", "").replace("\n    # END SOLUTION", "")}
    with pytest.raises(AuthoringError, match="no '# SOLUTION'"):
        authoring.extract_solutions(_nb(("code", "# Exercise 01.open\nx = 1")))
    with pytest.raises(AuthoringError, match="outside an exercise cell"):
        authoring.extract_solutions(_nb(("code", "# SOLUTION\nx = 1\n# END SOLUTION")))
    with pytest.raises(AuthoringError, match="two cells"):
        authoring.extract_solutions(_nb(("code", EXERCISE), ("code", EXERCISE)))


def test_solutions_module_round_trips():
    sols = {"01.b": "def f():\n    return 'x'", "01.a": "y = \"quotes\" and 'more'\n"}
    namespace: dict = {}
    exec(authoring.solutions_module(sols), namespace)
    assert namespace["SOLUTIONS"] == sols


def test_all_solutions_rejects_misplaced_ids(tmp_path):
    nbformat.write(_nb(("code", EXERCISE)), tmp_path / "02_other.ipynb")
    with pytest.raises(AuthoringError, match="belongs to notebook 01"):
        authoring.all_solutions(tmp_path)


def test_learner_path():
    from pathlib import Path

    assert authoring.learner_path(Path("tutorials/solutions/01_x.ipynb")) == Path("tutorials/01_x.ipynb")


def test_learner_copies_drop_test_markers():
    nb = _nb(("code", "# NBVAL_CHECK_OUTPUT\nex.claim('x', 1, at_least=0)"),
             ("code", "x = 1  # NBVAL_CHECK_OUTPUT stays"))
    learner = authoring.make_learner(nb)
    assert learner.cells[0].source == "ex.claim('x', 1, at_least=0)"
    assert learner.cells[1].source == "x = 1  # NBVAL_CHECK_OUTPUT stays"  # only whole marker lines are dropped
