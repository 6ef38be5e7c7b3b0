"""Committed notebooks stay small: no inlined circuitsvis bundle, no CDN import, nothing over 1 MB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "tutorials").rglob("*.ipynb"))
MAX_BYTES = 1_000_000
BUNDLE_SIGNS = ("CircuitsVis.render", "unpkg.com", "iife.js", "searchlight-circuitsvis-bundle")


def notebook_problems(path: Path) -> list[str]:
    raw = path.read_bytes()
    problems = []
    if len(raw) > MAX_BYTES:
        problems.append(f"{path.name} is {len(raw) / 1e6:.2f} MB (limit 1 MB): strip heavy outputs")
    text = raw.decode("utf-8")
    nb = json.loads(text)
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            blob = json.dumps(out)
            hit = next((s for s in BUNDLE_SIGNS if s in blob), None)
            if hit:
                problems.append(f"{path.name} cell {i} carries a circuitsvis bundle/CDN import ({hit!r}); "
                                "run scripts/execute_notebooks.py or toolkit.viz.strip_bundles")
    if "widgets" in nb.get("metadata", {}):
        problems.append(f"{path.name} stores widget state in its metadata: clear it before committing")
    return problems


def test_there_are_notebooks():
    assert (ROOT / "tutorials" / "00_welcome.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_small_and_bundle_free(path):
    problems = notebook_problems(path)
    assert not problems, "\n".join(problems)


def test_check_fails_on_an_inlined_bundle(tmp_path):
    import torch

    from toolkit import viz

    view = viz.attention_heads(["a", "b"], torch.full((1, 2, 2), 0.5))
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {},
                     "outputs": [{"output_type": "display_data", "data": view._repr_mimebundle_(),
                                  "metadata": {}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "bloated.ipynb"
    path.write_text(json.dumps(nb))
    problems = notebook_problems(path)
    assert any("1 MB" in p for p in problems) and any("bundle" in p for p in problems)
    # ... and stripping fixes it
    assert viz.strip_bundles(nb) == 1
    path.write_text(json.dumps(nb))
    assert notebook_problems(path) == []
