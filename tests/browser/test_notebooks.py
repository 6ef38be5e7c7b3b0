"""Run All in JupyterLab + Chromium over the real tutorials, as a learner would (issue #19).

* Every solution notebook (00 included) runs to the end with no error output, no figure shown as text, no "Error
  displaying widget", no empty explorer, and no page or console error. The text of its ``# NBVAL_CHECK_OUTPUT``
  cells (claim verdicts, exact facts) must equal the saved outputs, as nbval checks them: in ``make test`` this is
  the pass on the other floating-point path, so the claims are checked on both paths.
* 00_welcome's slider redraws its plot.
* Every learner notebook with exercises stops at its first unsolved exercise with one short message naming it: one
  error output, in the first ``ex.check`` cell, one line, no traceback; no cell after it ran; no test markers.

A screenshot of each notebook goes to ``artifacts/browser/notebooks/``. The notebooks run on a temporary copy of
``tutorials/`` (nothing in the repository is touched).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from lab import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    PAGE_PROBLEMS,
    ROOT,
    cell_locator,
    open_notebook,
    require_browser,
    run_all,
    running_lab,
    shutdown_kernels,
)

TUTORIALS = ROOT / "tutorials"
SOLUTIONS = sorted((TUTORIALS / "solutions").glob("[0-9][0-9]_*.ipynb"))
LEARNERS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
SHOTS = ARTIFACTS / "notebooks"
RUN_ALL_TIMEOUT_S = 900
CHECK_CALL = re.compile(r"^\s*ex\.check\(", re.M)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# pytest-timeout's 600 s default (pyproject.toml) would cut a notebook's Run All before the test's own limit does
pytestmark = [pytest.mark.browser, pytest.mark.timeout(RUN_ALL_TIMEOUT_S + 300)]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    """(browser, base_url, token) with JupyterLab serving a copy of tutorials/."""
    chromium = require_browser()
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("tutorials-lab")
    nb_dir = tmp / "tutorials"
    shutil.copytree(TUTORIALS, nb_dir)
    env = {"SEARCHLIGHT_PROGRESS": str(tmp / "progress.json")}
    with running_lab(nb_dir, tmp / "lab", env) as (base, token), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser, base, token
        finally:
            browser.close()


def checked_text(outputs: list[dict]) -> str:
    """What nbval compares in a checked cell: stdout and plain text, widget views left out."""
    parts = []
    for o in outputs:
        if o["type"] == "stream" and o["name"] == "stdout":
            parts.append(o["text"])
        elif o["type"] in ("display_data", "execute_result") and WIDGET_VIEW not in o["mimes"] and o["plain"]:
            parts.append(o["plain"] + "\n")
    return "\n".join(line.rstrip() for line in "".join(parts).strip().splitlines())


def saved_checked_text(nb) -> dict[int, str]:
    out = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in cell.source:
            outs = [{"type": o.output_type, "name": o.get("name"), "text": "".join(o.get("text", "")),
                     "mimes": list(o.get("data", {})), "plain": "".join(o.get("data", {}).get("text/plain", ""))}
                    for o in cell.outputs]
            out[i] = checked_text(outs)
    return out


def errors_in(cells: list[dict]) -> list[str]:
    found = []
    for c in cells:
        for o in c["outputs"]:
            if o["type"] == "error":
                found.append(f"cell {c['index']}: {o['ename']}: {o['evalue']}")
            elif o["type"] == "stream" and o["name"] == "stderr" and "Traceback" in (o["text"] or ""):
                found.append(f"cell {c['index']} stderr: {o['text'][:300]}")
    return found


def check_slider_redraws(page, cells: list[dict]) -> None:
    """00_welcome: moving the layer slider redraws the figure below it."""
    index = next(c["index"] for c in cells if "IntSlider(" in c["source"])
    cell = cell_locator(page, index)
    img = cell.locator(".jp-OutputArea-output img").first
    img.wait_for(state="visible", timeout=30_000)
    before = img.get_attribute("src")
    cell.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("""([i, old]) => {
        const cell = document.querySelector(`[data-searchlight-test-cell='${i}']`);
        const img = cell && cell.querySelector('.jp-OutputArea-output img');
        return !!img && !!img.getAttribute('src') && img.getAttribute('src') !== old; }""",
                           arg=[index, before], timeout=30_000)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_runs_clean_in_the_browser(session, path: Path) -> None:
    browser, base, token = session
    problems: list[str] = []
    page = open_notebook(browser, base, token, f"solutions/{path.name}", problems)
    try:
        cells = run_all(page, RUN_ALL_TIMEOUT_S)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"solutions-{path.stem}.png"))
        errors = errors_in(cells)
        assert not errors, f"{path.name}: errors after Run All:\n" + "\n".join(errors)
        unrun = [c["index"] for c in cells if c["type"] == "code" and not c["count"]]
        assert not unrun, f"{path.name}: cells {unrun} did not run"
        shown = page.evaluate(PAGE_PROBLEMS)
        assert not shown, f"{path.name}: " + "; ".join(shown)
        saved = saved_checked_text(nbformat.read(path, as_version=4))
        for i, expected in saved.items():
            got = checked_text(cells[i]["outputs"])
            assert got == expected, (f"{path.name} cell {i} (checked) differs from the saved output:\n--- saved\n"
                                     f"{expected}\n--- this run\n{got}")
        if path.stem == "00_welcome":
            check_slider_redraws(page, cells)
        assert not problems, f"{path.name}: browser errors:\n" + "\n".join(problems)
    finally:
        page.close()
        shutdown_kernels(base, token)


@pytest.mark.parametrize("path", LEARNERS, ids=lambda p: p.stem)
def test_learner_notebook_stops_kindly_at_its_first_exercise(session, path: Path) -> None:
    browser, base, token = session
    nb = nbformat.read(path, as_version=4)
    assert "NBVAL" not in path.read_text(encoding="utf-8"), f"{path.name} shows test markers to learners"
    checks = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    problems: list[str] = []
    page = open_notebook(browser, base, token, path.name, problems)
    try:
        cells = run_all(page, RUN_ALL_TIMEOUT_S)
        SHOTS.mkdir(parents=True, exist_ok=True)
        errors = [(c["index"], o) for c in cells for o in c["outputs"] if o["type"] == "error"]
        if not checks:  # no exercise (00): runs to the end like its solution
            assert not errors_in(cells), errors_in(cells)
            page.screenshot(path=str(SHOTS / f"{path.stem}.png"))
        else:
            stop = checks[0]
            cell_locator(page, stop)
            page.screenshot(path=str(SHOTS / f"{path.stem}.png"))
            assert [i for i, _ in errors] == [stop], (
                f"{path.name}: Run All should stop with one error at cell {stop} (the first check), got "
                f"{[(i, o['ename']) for i, o in errors]}")
            lines = errors[0][1]["traceback"] or []
            ex_id = nb.cells[stop].source.split('"')[1]
            assert len(lines) == 1 and "Traceback" not in lines[0] and ex_id in lines[0], (
                f"{path.name}: the stop should be one line naming {ex_id}, got {lines}")
            ran_after = [c["index"] for c in cells[stop + 1:] if c["count"]]
            assert not ran_after, f"{path.name}: cells {ran_after} ran after the unsolved exercise"
            others = [c["index"] for c in cells[:stop] if c["type"] == "code" and not c["count"]]
            assert not others, f"{path.name}: cells {others} before the first exercise did not run"
        shown = page.evaluate(PAGE_PROBLEMS)
        assert not shown, f"{path.name}: " + "; ".join(shown)
        assert not problems, f"{path.name}: browser errors:\n" + "\n".join(problems)
    finally:
        page.close()
        shutdown_kernels(base, token)
