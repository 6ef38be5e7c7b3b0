"""Single-source notebooks: derive the learner notebook (and the stored solutions) from a solution notebook.

In a solution notebook (``tutorials/solutions/NN_name.ipynb``):

* an *exercise cell* is a code cell whose first line is ``# Exercise NN.name`` (the registered id);
* inside it, the solution code sits between a ``# SOLUTION`` line and an ``# END SOLUTION`` line. In the
  learner notebook each block becomes ``raise NotImplementedError("Exercise NN.name: ...")`` at the
  indentation of the ``# SOLUTION`` line, so the typed signature and docstring above it survive;
* a code cell tagged ``solution`` is replaced whole (its leading comment lines are kept);
* nbval's marker lines (``# NBVAL_CHECK_OUTPUT``) are dropped: they are test plumbing;
* in markdown cells, text between ``<!-- SOLUTION -->`` and ``<!-- END SOLUTION -->`` (e.g. the answer to a
  discussion question) becomes *"Your answer here."*

:func:`make_learner` does the transformation (outputs cleared), :func:`extract_solutions` returns each
exercise cell without its markers (what ``ex.show_solution`` displays), and :func:`solutions_module`
renders them into ``toolkit/exercises/_solutions.py``. ``scripts/make_learner_notebooks.py`` writes both.
An authoring tool, not part of the installed ``toolkit`` package: learners never import it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import nbformat

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# SOLUTION[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
HEADER = re.compile(r"^# Exercise (?P<id>\d\d\.[a-z0-9_]+)\b")
MD_BEGIN, MD_END = "<!-- SOLUTION -->", "<!-- END SOLUTION -->"
MD_STUB = "*Your answer here.*"
TAG = "solution"
TEST_MARKER = re.compile(r"^[ \t]*# NBVAL_[A-Z_]+[ \t]*$")  # nbval's cell markers: test plumbing, not for learners


class AuthoringError(ValueError):
    """A solution notebook breaks the authoring conventions (the message names the cell and the fix)."""


def _stub(exercise_id: str | None, indent: str) -> str:
    label = f"Exercise {exercise_id}" if exercise_id else "Exercise"
    return f'{indent}raise NotImplementedError("{label}: replace this line with your code")'


def exercise_id_of(source: str) -> str | None:
    """The id in an exercise cell's ``# Exercise NN.name`` first line, else None."""
    m = HEADER.match(source.lstrip("\n"))
    return m.group("id") if m else None


def _blocks(source: str, where: str) -> list[tuple[int, int, str]]:
    """(begin line, end line, indent) of each solution block; errors on unbalanced markers."""
    blocks, begin = [], None
    lines = source.split("\n")
    for i, line in enumerate(lines):
        m = BEGIN.match(line)
        if m:
            if begin is not None:
                raise AuthoringError(f"{where}: '# SOLUTION' on line {i + 1} inside another solution block; "
                                     "close the first one with '# END SOLUTION'")
            begin, indent = i, m.group("indent")
        elif END.match(line):
            if begin is None:
                raise AuthoringError(f"{where}: '# END SOLUTION' on line {i + 1} without a '# SOLUTION' above it")
            blocks.append((begin, i, indent))
            begin = None
    if begin is not None:
        raise AuthoringError(f"{where}: '# SOLUTION' on line {begin + 1} is never closed; add '# END SOLUTION'")
    return blocks


def strip_code(source: str, where: str = "cell") -> str:
    """Replace every solution block of a code cell by a ``raise NotImplementedError`` stub."""
    ex_id = exercise_id_of(source)
    blocks = _blocks(source, where)
    lines = source.split("\n")
    for begin, end, indent in reversed(blocks):
        lines[begin:end + 1] = [_stub(ex_id, indent)]
    return "\n".join(lines)


def unmark_code(source: str) -> str:
    """The solution as the learner should read it: the marker lines removed."""
    return "\n".join(line for line in source.split("\n") if not (BEGIN.match(line) or END.match(line)))


def strip_markdown(source: str, where: str = "cell") -> str:
    out, rest = [], source
    while MD_BEGIN in rest:
        head, _, tail = rest.partition(MD_BEGIN)
        if MD_END not in tail:
            raise AuthoringError(f"{where}: '{MD_BEGIN}' without a matching '{MD_END}'")
        _, _, rest = tail.partition(MD_END)
        out += [head, MD_STUB]
    if MD_END in rest:
        raise AuthoringError(f"{where}: '{MD_END}' without a '{MD_BEGIN}' before it")
    return "".join(out) + rest


def _tagged(cell: Any) -> bool:
    return TAG in (cell.get("metadata", {}).get("tags") or [])


def _replace_whole(source: str) -> str:
    lines = source.split("\n")
    keep = []
    for line in lines:
        if not line.startswith("#"):
            break
        keep.append(line)
    return "\n".join([*keep, _stub(exercise_id_of(source), "")])


def drop_test_markers(source: str) -> str:
    """The code without nbval's ``# NBVAL_CHECK_OUTPUT``-style marker lines."""
    return "\n".join(line for line in source.split("\n") if not TEST_MARKER.match(line))


def make_learner(nb: Any, source_name: str = "") -> Any:
    """The learner version of a solution notebook (a new nbformat node; the input is not modified)."""
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out.cells):
        where = f"{source_name or 'notebook'} cell {i}"
        if cell.cell_type == "code":
            cell.source = _replace_whole(cell.source) if _tagged(cell) else strip_code(cell.source, where)
            cell.source = drop_test_markers(cell.source)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
            cell.metadata.pop("scrolled", None)
        elif cell.cell_type == "markdown":
            cell.source = strip_markdown(cell.source, where)
    out.metadata.pop("widgets", None)
    out.metadata["searchlight"] = {"generated_from": f"solutions/{source_name}" if source_name else "solutions",
                                   "note": "generated by scripts/make_learner_notebooks.py; edit the solution"}
    return out


def extract_solutions(nb: Any, source_name: str = "") -> dict[str, str]:
    """``{exercise id: solution cell source}`` for every exercise cell; checks the conventions."""
    found: dict[str, str] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{source_name or 'notebook'} cell {i}"
        ex_id = exercise_id_of(cell.source)
        has_blocks = bool(_blocks(cell.source, where)) or _tagged(cell)
        if ex_id is None:
            if has_blocks:
                raise AuthoringError(f"{where}: a solution block outside an exercise cell; start the cell with "
                                     "'# Exercise NN.name' (the registered id)")
            continue
        if not has_blocks:
            raise AuthoringError(f"{where}: exercise cell {ex_id} has no '# SOLUTION' ... '# END SOLUTION' "
                                 "block, so the learner would see the solution")
        if ex_id in found:
            raise AuthoringError(f"{where}: exercise {ex_id} appears in two cells; use one cell per exercise")
        found[ex_id] = unmark_code(cell.source).strip("\n")
    return found


def learner_path(solution_path: Path) -> Path:
    """``tutorials/solutions/NN_name.ipynb`` -> ``tutorials/NN_name.ipynb``."""
    return solution_path.parent.parent / solution_path.name


def render(nb: Any) -> str:
    """The exact text written for a notebook (so regenerated and committed files compare equal)."""
    return nbformat.writes(nb, version=4) + "\n"


def learner_text(solution_path: Path) -> str:
    nb = nbformat.read(solution_path, as_version=4)
    return render(make_learner(nb, solution_path.name))


def solutions_module(solutions: dict[str, str]) -> str:
    """Python source of ``toolkit/exercises/_solutions.py`` for ``{id: source}``."""
    lines = ['"""Solution cells of tutorials/solutions/*.ipynb, shown by ``ex.show_solution``.',
             "",
             "Generated by scripts/make_learner_notebooks.py: do not edit by hand.",
             '"""',
             "# ruff: noqa: E501",
             "",
             "SOLUTIONS: dict[str, str] = {"]
    for ex_id in sorted(solutions):
        lines.append(f"    {ex_id!r}: (")
        for chunk in solutions[ex_id].splitlines(keepends=True):
            lines.append(f"        {chunk!r}")
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def all_solutions(solutions_dir: Path) -> dict[str, str]:
    """Solutions of every notebook in ``solutions_dir``; an id in two notebooks is an error."""
    merged: dict[str, str] = {}
    for path in sorted(solutions_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for ex_id, src in extract_solutions(nb, path.name).items():
            if ex_id in merged:
                raise AuthoringError(f"{path.name}: exercise {ex_id} is already defined in another notebook")
            if not path.name.startswith(ex_id.split(".")[0]):
                raise AuthoringError(f"{path.name}: exercise {ex_id} belongs to notebook {ex_id[:2]}; rename "
                                     "the id or move the cell")
            merged[ex_id] = src
    return merged
