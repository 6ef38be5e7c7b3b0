"""Real-browser end-to-end test: JupyterLab + Chromium (Playwright, sync API) over every explorer.

Starts JupyterLab on a free localhost port with a random token on a temporary copy of
``tests/browser/explorers.ipynb``, runs all cells, and for every explorer checks that its DOM is there, that
its image views are drawn, and that changing a control updates the view through the kernel. circuitsvis must
render offline (its root gets child nodes). Any page error, console error, Python traceback or widget error
fails the test. Then the notebook is saved with widget state and converted with nbconvert: the widget state
must be in the HTML, and without widget state the static snapshots must show in Chromium (offline).

Screenshots go to ``artifacts/browser/``. Chromium comes from the system (``/usr/bin/chromium`` or
``$SEARCHLIGHT_CHROMIUM``), never from ``playwright install``; without it the test is skipped loudly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lab import ARTIFACTS, CHROMIUM_ARGS, KERNEL_IDLE, chromium_path, open_notebook, require_browser, running_lab

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
NOTEBOOK = "explorers.ipynb"
EXPLORERS = ("attentionexplorer", "searchstateexplorer", "probeexplorer", "featurebrowser", "mazeeditor")
# Console noise that is not an error of ours: none is allowed by default; add exact substrings here with a reason.
IGNORED_CONSOLE: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A JupyterLab server on a temporary copy of the explorer notebook; yields (base_url, token, notebook_dir)."""
    require_browser()
    tmp = tmp_path_factory.mktemp("lab")
    nb_dir = tmp / "notebooks"
    nb_dir.mkdir()
    shutil.copy(HERE / NOTEBOOK, nb_dir / NOTEBOOK)
    with running_lab(nb_dir, tmp / "lab") as (base, token):
        yield base, token, nb_dir


RUN_DONE = """() => {
  const ps = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
  return ps.length > 0 && ps.every(t => /\\[\\d+\\]/.test(t));
}"""

ERROR_OUTPUTS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const out = [];
  const cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    const outs = c.outputs;
    for (let j = 0; j < outs.length; j++) {
      const o = outs.get(j).toJSON();
      if (o.output_type === 'error') out.push(o.ename + ': ' + o.evalue);
      if (o.output_type === 'stream' && o.name === 'stderr' && /Traceback|Error/.test(o.text)) out.push(o.text);
    }
  }
  return out;
}"""


def _explorer(page, kind: str):
    return page.locator(f".searchlight-{kind}").first


def _image_src(page, kind: str, view: str) -> str:
    return _explorer(page, kind).locator(f".searchlight-view-{view}").first.get_attribute("src") or ""


def _wait_text(page, kind: str, selector: str, text: str, timeout: float = 30_000) -> None:
    page.wait_for_function(
        """([k, sel, text]) => { const root = document.querySelector('.searchlight-' + k);
             const el = root && root.querySelector(sel); return !!el && el.textContent.includes(text); }""",
        arg=[kind, selector, text], timeout=timeout)


# every element matched by a selector shows its whole text (nothing cut off or hidden by an ellipsis)
FITS = """sel => [...document.querySelectorAll(sel)].length > 0 &&
                 [...document.querySelectorAll(sel)].every(e => e.scrollWidth <= e.clientWidth + 1)"""
# two elements share a row: their vertical extents overlap
SAME_ROW = """([a, b]) => { const r = document.querySelector(a).getBoundingClientRect();
                              const q = document.querySelector(b).getBoundingClientRect();
                              return r.top < q.bottom && q.top < r.bottom; }"""


def _wait_src_change(page, kind: str, view: str, old: str, timeout: float = 30_000) -> None:
    page.wait_for_function(
        """([k, v, old]) => { const root = document.querySelector('.searchlight-' + k);
             const img = root && root.querySelector('.searchlight-view-' + v);
             return !!img && !!img.getAttribute('src') && img.getAttribute('src') !== old; }""",
        arg=[kind, view, old], timeout=timeout)


def test_explorers_in_jupyterlab(lab) -> None:
    from playwright.sync_api import sync_playwright

    base, token, nb_dir = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = open_notebook(browser, base, token, NOTEBOOK, problems, IGNORED_CONSOLE,
                                 viewport={"width": 1500, "height": 1100})
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(RUN_DONE, timeout=150_000)
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
            errors = page.evaluate(ERROR_OUTPUTS)
            assert not errors, f"Python errors in the notebook: {errors}"

            # every explorer is rendered, with its image views drawn
            for kind in EXPLORERS:
                root = _explorer(page, kind)
                root.wait_for(state="visible", timeout=30_000)
                imgs = root.locator("img[class*='searchlight-view-']")
                assert imgs.count() >= 1, f"{kind}: no image views"
                for i in range(imgs.count()):
                    ok = imgs.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
                    assert ok, f"{kind}: image view {i} is empty"
                root.screenshot(path=str(ARTIFACTS / f"{kind}.png"))

            # circuitsvis renders offline: its root div gets children
            cv = page.locator("div.searchlight-circuitsvis-bundle").first
            cv.wait_for(state="attached", timeout=30_000)
            page.wait_for_function("""() => { const d = document.querySelector('div.searchlight-circuitsvis-bundle');
                                            return !!d && d.childElementCount > 0; }""", timeout=30_000)
            cv.scroll_into_view_if_needed()
            cv.screenshot(path=str(ARTIFACTS / "circuitsvis.png"))

            # change one control per explorer; the view must update through the kernel
            old = _image_src(page, "attentionexplorer", "task")
            _explorer(page, "attentionexplorer").locator(".searchlight-control-layer button", has_text="1").click()
            _wait_text(page, "attentionexplorer", ".searchlight-view-heatmap caption", "L1H0")
            _wait_src_change(page, "attentionexplorer", "task", old)

            old = _image_src(page, "searchstateexplorer", "state")
            _explorer(page, "searchstateexplorer").locator(".searchlight-control-label select").select_option("depth")
            _wait_text(page, "searchstateexplorer", ".searchlight-view-description", "depth (")  # label name, kind
            _wait_src_change(page, "searchstateexplorer", "state", old)

            # depths are named "depth d" everywhere, the hook on hover; no readout is cut off; play sits beside
            # the depth buttons it animates
            state = _explorer(page, "searchstateexplorer")
            depth_buttons = state.locator(".searchlight-control-layer button")
            assert depth_buttons.first.inner_text().strip() == "depth 0"
            assert depth_buttons.first.get_attribute("title") == "blocks.0.hook_resid_pre"
            assert page.evaluate(FITS, ".searchlight-searchstateexplorer .searchlight-control-layer button"), \
                "a depth button's text is cut off"
            assert page.evaluate(FITS, ".searchlight-probeexplorer .searchlight-control-value button"), \
                "a ProbeExplorer colour-by button's text is cut off"
            assert page.evaluate(SAME_ROW, [".searchlight-searchstateexplorer .searchlight-play-depth",
                                            ".searchlight-searchstateexplorer .searchlight-control-layer"]), \
                "the play button is not beside the depth buttons"

            old = _image_src(page, "probeexplorer", "confusion")
            _explorer(page, "probeexplorer").locator(
                "button.searchlight-probe-cell[title^='ancestor_1 @ blocks.1.hook_resid_post']").click()
            _wait_text(page, "probeexplorer", ".searchlight-view-cell caption", "ancestor_1")
            _wait_src_change(page, "probeexplorer", "confusion", old)

            old = _image_src(page, "featurebrowser", "example")
            _explorer(page, "featurebrowser").locator(".searchlight-control-example select").select_option(index=3)
            _wait_text(page, "featurebrowser", ".searchlight-view-where caption", "example 3")
            _wait_src_change(page, "featurebrowser", "example", old)

            old = _image_src(page, "mazeeditor", "maze")
            _explorer(page, "mazeeditor").locator("button.searchlight-maze-cell").first.click()
            _wait_text(page, "mazeeditor", ".searchlight-view-info", "trained on exactly 15")
            _wait_src_change(page, "mazeeditor", "maze", old)

            for kind in EXPLORERS:
                _explorer(page, kind).screenshot(path=str(ARTIFACTS / f"{kind}-after.png"))
            status = page.evaluate("""() => [...document.querySelectorAll('.searchlight-status')]
                                              .map(e => e.textContent.trim()).filter(t => t)""")
            assert not status, f"explorer errors: {status}"
            bad = page.locator("text=Error displaying widget")
            assert bad.count() == 0, "a widget failed to display"
            assert not page.evaluate(ERROR_OUTPUTS), "Python errors after interacting"

            # save with widget state (enabled in the lab settings) for the nbconvert check
            page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function("""() => !window.jupyterapp.shell.currentWidget.context.model.dirty""",
                                   timeout=30_000)
        finally:
            browser.close()
        assert not problems, "browser errors:\n" + "\n".join(problems)
        _check_nbconvert(pw, nb_dir / NOTEBOOK)


def _check_nbconvert(pw, path: Path) -> None:
    """The saved notebook converts to HTML with widget state; without it, the static snapshots show offline."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    classes = {c for m in state.values() for c in m.get("state", {}).get("_dom_classes", [])}
    missing = [k for k in EXPLORERS if f"searchlight-{k}" not in classes]
    assert not missing, f"saved widget state lacks explorers {missing}"
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "application/vnd.jupyter.widget-state+json" in html and "searchlight-mazeeditor" in html

    del nb.metadata["widgets"]
    static, _ = HTMLExporter().from_notebook_node(nb)
    out = ARTIFACTS / "explorers-static.html"
    out.write_text(static, encoding="utf-8")
    errors: list[str] = []
    browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.on("pageerror", lambda err: errors.append(f"pageerror: {err}"))
        page.goto(out.resolve().as_uri())
        snaps = page.locator(".searchlight-snapshot")
        assert snaps.count() == len(EXPLORERS), f"{snaps.count()} static snapshots, expected {len(EXPLORERS)}"
        drawn = page.evaluate("""() => [...document.querySelectorAll('.searchlight-snapshot img')]
                                        .map(i => i.complete && i.naturalWidth > 0)""")
        assert drawn and all(drawn), f"snapshot images not drawn: {drawn}"
        page.wait_for_function("""() => { const d = document.querySelector('div.searchlight-circuitsvis-bundle');
                                        return !!d && d.childElementCount > 0; }""", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "nbconvert-static.png"))
    finally:
        browser.close()
    assert not errors, f"errors in the static HTML: {errors}"
