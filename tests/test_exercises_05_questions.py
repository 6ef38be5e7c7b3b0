"""Every open question (**Question.**) in a solution notebook has an `ex.answer` cell with a registered reference
answer right after it (issue #17); the answer templates of 01, 02 and 05 render with the notebooks' numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from toolkit import exercises as ex  # noqa: F401 - registers every chapter's questions
from toolkit.exercises import questions

SOLUTIONS = sorted((Path(__file__).resolve().parents[1] / "tutorials" / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_question_has_a_reference_answer(path):
    cells = json.loads(path.read_text())["cells"]
    for i, cell in enumerate(cells):
        text = "".join(cell["source"])
        if cell["cell_type"] != "markdown" or "**Question.**" not in text:
            continue
        assert "<!-- SOLUTION -->" not in text, f"{path.name}: the question's answer is still a markdown solution"
        nxt = "".join(cells[i + 1]["source"]) if i + 1 < len(cells) else ""
        found = re.search(r'ex\.answer\("([0-9]{2}\.\w+)"', nxt)
        assert cells[i + 1]["cell_type"] == "code" and found, f"{path.name}: no ex.answer cell after the question"
        assert found.group(1) in questions.questions(), f"{found.group(1)} is not registered"


def test_answer_templates_use_the_numbers():
    text = questions.answer_text("02.depth_by_layers", "a long enough attempt at an answer with words in it " * 2,
                                 depth={1: 0, 2: 4, 3: 4}, exact={1: 0.33, 2: 0.98, 3: 1.0}, max_len=4)
    assert "2 layers: 4 (98% exact)" in text and "2-layer model solves paths of 4 edges" in text
    assert "not reliable even on single edges" in text
    text = questions.answer_text("02.depth_by_layers", "a long enough attempt at an answer with words in it " * 2,
                                 depth={1: 1, 2: 2}, exact={1: 0.9, 2: 0.95}, max_len=4)
    assert "No model here solves paths longer" in text
    text = questions.answer_text("05.decoded_not_used", "a long enough attempt at an answer with words in it " * 2,
                                 base_exact=1.0, erased={"ancestor_1": (1.0, 0.12, 0.998)}, later_goal_effect=0.01)
    assert "99.8% exact paths" in text and "at most 0.01" in text
    text = questions.answer_text("01.backward_chaining_search", "a long enough attempt at an answer with words " * 2,
                                 tree_fwd=6.0, tree_bwd=3.5, maze_fwd=9.4, maze_path=5.9)
    assert "3.5 nodes" in text and "6.0" in text
