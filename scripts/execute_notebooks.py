#!/usr/bin/env python
"""Execute notebooks in place so the committed files show their results (and nbval has expected outputs).

    python scripts/execute_notebooks.py tutorials/solutions/01_what_is_search.ipynb [...]

Each notebook runs top to bottom in a fresh ``python3`` kernel whose working directory is the notebook's
folder. Afterwards: circuitsvis JavaScript bundles are replaced by a placeholder
(``toolkit.viz.strip_bundles``), widget state and execution timings are dropped, and the file must stay under
``--max-mb`` (default 1 MB). The kernel records exercise progress in a fresh temporary file (nothing is written to
your home) and, for notebooks under ``solutions/``, ``SEARCHLIGHT_STRICT=1`` (a failed exercise check is an error).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit._io import atomic_write  # noqa: E402


def kernel_env(path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SEARCHLIGHT_PROGRESS"] = str(Path(tempfile.mkdtemp(prefix="searchlight-")) / "progress.json")
    env.pop("MPLBACKEND", None)  # let the kernel use the inline backend so figures are saved
    if path.parent.name == "solutions":
        env["SEARCHLIGHT_STRICT"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def tidy(nb: nbformat.NotebookNode) -> int:
    """Strip circuitsvis bundles, widget state and timings. Returns the number of bundles stripped."""
    from toolkit.viz import strip_bundles

    stripped = strip_bundles(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return stripped


def execute(path: Path, timeout: int, max_mb: float) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            # True: nbclient 0.11 raises KeyError when a widget Output receives display output and
                            # widget state is not stored (00's slider); tidy() drops the state before saving
                            store_widget_state=True, resources={"metadata": {"path": str(path.parent)}})
    env = kernel_env(path)
    start = time.perf_counter()
    try:
        client.execute(env=env)
    finally:
        shutil.rmtree(Path(env["SEARCHLIGHT_PROGRESS"]).parent, ignore_errors=True)
    seconds = time.perf_counter() - start
    stripped = tidy(nb)
    text = nbformat.writes(nb, version=4) + "\n"
    size_mb = len(text.encode()) / 1e6
    if size_mb > max_mb:
        raise SystemExit(f"{path}: {size_mb:.2f} MB after execution (limit {max_mb} MB); lower figure dpi or "
                         "print less")
    atomic_write(path, text)
    print(f"{path}: {seconds:.1f} s, {size_mb * 1000:.0f} kB, {stripped} circuitsvis bundle(s) stripped")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--max-mb", type=float, default=1.0, help="largest allowed notebook file (default 1)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.exists()]
    if missing:
        print(f"error: no such notebook(s): {missing}", file=sys.stderr)
        return 2
    for path in args.notebooks:
        try:
            execute(path.resolve(), args.timeout, args.max_mb)
        except CellExecutionError as err:
            print(f"{path}: a cell failed; the file was not changed.\n{err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
