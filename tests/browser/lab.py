"""A JupyterLab server and Chromium for the browser tests (shared by every test in this folder).

:func:`running_lab` starts JupyterLab on a free localhost port with a random token, on a folder of the test's
choosing, with the settings the tests need (no news pop-up, widget state saved, no virtual scrolling so every cell
stays in the DOM). Chromium comes from the system (``/usr/bin/chromium`` or ``$SEARCHLIGHT_CHROMIUM``), never from
``playwright install``; without it the tests are skipped loudly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
            "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"}}


def chromium_path() -> str:
    path = os.environ.get("SEARCHLIGHT_CHROMIUM") or "/usr/bin/chromium"
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"BROWSER TEST SKIPPED: no Chromium at {path!r}. Install it (`make browser-deps`, i.e. "
                    "`apt-get install chromium`) or point SEARCHLIGHT_CHROMIUM at a Chromium binary.")
    return path


def require_browser() -> str:
    path = chromium_path()
    pytest.importorskip("playwright.sync_api", reason="BROWSER TEST SKIPPED: playwright is not installed")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_lab(nb_dir: Path, work: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """JupyterLab serving ``nb_dir`` (scratch files in ``work``); yields ``(base_url, token)``."""
    settings, workspaces, runtime = (work / d for d in ("settings", "workspaces", "runtime"))
    for d in (settings, workspaces, runtime):
        d.mkdir(parents=True, exist_ok=True)
    for plugin, values in SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    full_env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
                "JUPYTER_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(ROOT), **(env or {})}
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--notebook-dir={nb_dir}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.extension_manager=readonly", "--ServerApp.open_browser=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = work / "lab.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=nb_dir)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()}")
                try:
                    urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("jupyter lab did not answer within 60 s") from None
                    time.sleep(0.3)
            yield base, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def shutdown_kernels(base: str, token: str) -> None:
    """Stop every kernel the server runs (each notebook test leaves one behind)."""
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=30)


# --- what the page shows ------------------------------------------------------------------------------------

KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""

# Every cell of the open notebook: source, execution count, and its outputs without images (text kept).
CELLS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    const outs = [];
    if (c.type === 'code') {
      for (let j = 0; j < c.outputs.length; j++) {
        const o = c.outputs.get(j).toJSON();
        const data = o.data || {};
        const plain = data['text/plain'];
        outs.push({type: o.output_type, name: o.name || null,
                   text: Array.isArray(o.text) ? o.text.join('') : (o.text || null),
                   mimes: Object.keys(data),
                   plain: Array.isArray(plain) ? plain.join('') : (plain === undefined ? null : plain),
                   ename: o.ename || null, evalue: o.evalue || null, traceback: o.traceback || null});
      }
    }
    out.push({index: i, type: c.type, source: c.sharedModel.getSource(),
              count: c.type === 'code' ? c.executionCount : null, outputs: outs});
  }
  return out;
}"""

# [pending, running] prompts: '[*]' while a cell is queued or running
PENDING = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                      .filter(e => e.textContent.includes('*')).length"""

# What a person would call broken on the page, found in the DOM (so widget outputs are covered too).
PAGE_PROBLEMS = """() => {
  const problems = [];
  const texts = [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText || '');
  for (const t of texts) {
    if (/<Figure size [^>]*>|<matplotlib\\.[^>]*>/.test(t)) problems.push('a figure shown as text: ' + t.slice(0, 80));
    if (t.includes('Error displaying widget')) problems.push('Error displaying widget');
  }
  const explorers = document.querySelectorAll(
    '.searchlight-attentionexplorer, .searchlight-searchstateexplorer, .searchlight-probeexplorer, ' +
    '.searchlight-featurebrowser, .searchlight-mazeeditor');
  for (const root of explorers) {
    const cls = [...root.classList].find(c => c.startsWith('searchlight-') && c !== 'searchlight-explorer');
    const imgs = [...root.querySelectorAll("img[class*='searchlight-view-']")];
    // an explorer with image views must show a drawn image; one without (AttentionExplorer on plain tokens draws
    // its heatmap as HTML) must show an HTML view with drawn content (a table or a picture, not only text)
    const html = [...root.querySelectorAll("[class*='searchlight-view-']")].filter(e => e.tagName !== 'IMG');
    const drawn = imgs.length ? imgs.some(i => i.complete && i.naturalWidth > 0)
                              : html.some(e => e.querySelector('table, img, svg, canvas') !== null);
    if (!drawn) problems.push('empty explorer: ' + cls);
    const status = [...root.querySelectorAll('.searchlight-status')].map(e => e.textContent.trim()).filter(t => t);
    if (status.length) problems.push(cls + ' reports: ' + status.join(' | '));
  }
  return problems;
}"""


def open_notebook(browser, base: str, token: str, rel: str, problems: list[str], ignored: tuple[str, ...] = (),
                  viewport: dict[str, int] | None = None):
    """A new page on ``rel`` with its kernel idle; page and console errors are appended to ``problems``."""
    page = browser.new_page(viewport=viewport or {"width": 1300, "height": 1000})
    page.on("pageerror", lambda err: problems.append(f"pageerror: {err}"))
    page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" and not any(s in msg.text for s in ignored) else None)
    # a workspace of its own: otherwise JupyterLab reopens (and starts kernels for) the notebooks of earlier tests
    workspace = re.sub(r"[^A-Za-z0-9]+", "-", rel)
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{rel}?token={token}")
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)
    return page


def run_all(page, timeout_s: float) -> list[dict]:
    """Run All, wait until every cell ran or the run stopped at an error; returns :data:`CELLS`."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.time() + timeout_s
    while True:
        time.sleep(1.0)
        if page.evaluate(PENDING) == 0 and page.evaluate(KERNEL_IDLE):
            cells = page.evaluate(CELLS)
            code = [c for c in cells if c["type"] == "code"]
            errored = any(o["type"] == "error" for c in code for o in c["outputs"])
            if errored or all(c["count"] for c in code):
                return cells
        if time.time() > deadline:
            cells = page.evaluate(CELLS)
            last = max((c["index"] for c in cells if c["count"]), default=-1)
            raise AssertionError(f"Run All did not finish within {timeout_s:.0f} s (last cell run: {last})")


def cell_locator(page, index: int):
    """A locator for cell ``index`` of the open notebook, scrolled into the middle of the view."""
    page.evaluate("""(i) => { const node = window.jupyterapp.shell.currentWidget.content.widgets[i].node;
                              node.setAttribute('data-searchlight-test-cell', String(i));
                              node.scrollIntoView({block: 'center'}); }""", index)
    return page.locator(f"[data-searchlight-test-cell='{index}']")
