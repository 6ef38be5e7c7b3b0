#!/usr/bin/env python
"""Measure how far each notebook claim's number moves over seeds and numeric paths.

    python scripts/measure_claims.py                                  # every solution notebook (and 00)
    python scripts/measure_claims.py tutorials/solutions/04_*.ipynb --seeds 0 1 2 --jobs 2

Each notebook is executed (a temporary copy; the committed file is not touched) once per seed and numeric path:

- seed: ``SEARCHLIGHT_SEED`` (``exercises.run_seed()``), the offset every tutorial adds to its data, split and
  initialisation seeds, so each run sees other data and, where the notebook trains, another initialisation;
- numeric path: ``native`` (torch's best kernels for this CPU) and ``default-avx2``
  (``ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=AVX2``), which changes trained weights on one machine the
  way another CPU would.

Every ``exercises.claim`` the notebook makes is logged (``SEARCHLIGHT_CLAIMS_LOG``). The result per notebook goes to
``docs/claims/<notebook>.json`` and the table of all of them to ``docs/CLAIMS.md``: each claim, its bound, the
measured minimum / maximum over all runs and in how many runs it held. ``tests/test_exercises_claims.py`` fails when a
claim in a solution notebook has no record there or did not hold in every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "docs" / "claims"
TABLE = ROOT / "docs" / "CLAIMS.md"
PATHS = {
    "native": {},
    "default-avx2": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
sys.path.insert(0, str(ROOT))

from toolkit._io import atomic_write  # noqa: E402


def default_notebooks() -> list[Path]:
    return sorted((ROOT / "tutorials" / "solutions").glob("*.ipynb"))


def run_once(path: Path, seed: int, numeric: str, timeout: int) -> dict:
    """Execute ``path`` once; return its logged claims, wall time and any error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    tmp = Path(tempfile.mkdtemp(prefix="claims-"))
    log = tmp / "claims.jsonl"
    env = dict(os.environ)
    for key in ("SEARCHLIGHT_STRICT", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS"):
        env.pop(key, None)
    env.update(PATHS[numeric])
    env.update({"SEARCHLIGHT_SEED": str(seed), "SEARCHLIGHT_CLAIMS_LOG": str(log), "SEARCHLIGHT_PROGRESS": "off",
                "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            # True: nbclient 0.11 raises KeyError when a widget Output receives display output and
                            # widget state is not stored (02's live training plot); nothing is saved here anyway
                            store_widget_state=True, resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:300]
    except Exception as err:  # noqa: BLE001 - a cell timeout or a dead kernel fails this run, not the others
        error = f"{type(err).__name__}: {err}"[:300]
    finally:
        seconds = time.perf_counter() - start
        claims = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        shutil.rmtree(tmp, ignore_errors=True)
    return {"seed": seed, "path": numeric, "seconds": round(seconds, 1), "error": error, "claims": claims}


def summarise(path: Path, runs: list[dict]) -> dict:
    """Per claim (keyed by statement and bound): measured values and verdicts of every run."""
    claims: dict[str, dict] = {}
    for run in runs:
        for c in run["claims"]:
            key = f"{c['statement']} ({c['bound']})"
            entry = claims.setdefault(key, {"statement": c["statement"], "bound": c["bound"], "runs": []})
            entry["runs"].append({"seed": run["seed"], "path": run["path"], "measured": c["measured"],
                                  "held": c["held"]})
    for entry in claims.values():
        values = [r["measured"] for r in entry["runs"] if not isinstance(r["measured"], bool)]
        entry["min"] = min(values) if values else None
        entry["max"] = max(values) if values else None
        entry["held_in"] = f"{sum(r['held'] for r in entry['runs'])}/{len(entry['runs'])}"
    return {"notebook": str(path.relative_to(ROOT)), "seeds": sorted({r["seed"] for r in runs}),
            "paths": sorted({r["path"] for r in runs}),
            "runs": [{k: r[k] for k in ("seed", "path", "seconds", "error")} for r in runs],
            "claims": list(claims.values())}


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def margin(bound: str, low: float | None, high: float | None) -> float | None:
    """How far the worst run stayed inside the bound (negative: outside); None for equals= claims.

    Read from the bound's text (``≥ 0.95``, ``between 0.2 and 0.4``), so it is as precise as the text shows."""
    if low is None or bound.startswith("="):
        return None
    parts = bound.split()

    def number(text: str) -> float:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)

    if parts[0] == "between":
        return min(low - number(parts[1]), number(parts[3]) - high)
    limit = number(parts[1])
    return low - limit if parts[0] in ("≥", ">") else limit - high


def write_table() -> None:
    """docs/CLAIMS.md from every docs/claims/*.json."""
    lines = ["# Claims and their measured spread", "",
             "Generated by `scripts/measure_claims.py` (do not edit by hand). Each claim a solution notebook checks,",
             "with its bound, the number it measured in every run, and the worst margin (how far the worst run stayed",
             "inside the bound, in the claim's units; compare it with max - min): seeds (`SEARCHLIGHT_SEED`, which",
             "moves the data, the splits and, where the notebook trains, the initialisation) times numeric paths",
             "(`native`; `default-avx2` = `ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=AVX2`). A claim is kept",
             "only if it held in every run; `tests/test_exercises_claims.py` checks that.", ""]
    for file in sorted(OUT_DIR.glob("*.json")):
        data = json.loads(file.read_text())
        runs = data["runs"]
        errors = [r for r in runs if r["error"]]
        lines += [f"## `{data['notebook']}`", "",
                  f"Seeds {data['seeds']} × paths {data['paths']}: {len(runs)} runs, "
                  f"{min(r['seconds'] for r in runs):.0f}–{max(r['seconds'] for r in runs):.0f} s each"
                  + (f"; **{len(errors)} run(s) failed**: {errors[0]['error']}" if errors else "") + ".", "",
                  "| claim | bound | measured min | measured max | worst margin | held |", "|---|---|---|---|---|---|"]
        for c in data["claims"]:
            if c["min"] is None:
                values = sorted({str(r["measured"]) for r in c["runs"]})
                low = high = "/".join(values)
            else:
                low, high = _num(c["min"]), _num(c["max"])
            gap = _num(margin(c["bound"], c["min"], c["max"]))
            lines.append(f"| {c['statement']} | {c['bound']} | {low} | {high} | {gap} | {c['held_in']} |")
        lines.append("")
    atomic_write(TABLE, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every solution notebook")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--paths", nargs="+", choices=sorted(PATHS), default=sorted(PATHS))
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default 2)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--table-only", action="store_true", help="only rebuild docs/CLAIMS.md")
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        write_table()
        return 0
    notebooks = [p.resolve() for p in (args.notebooks or default_notebooks())]
    for p in notebooks:
        if not p.exists():
            raise SystemExit(f"{p}: no such notebook")
    jobs = [(p, s, n) for p in notebooks for s in args.seeds for n in args.paths]
    status = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda job: (job[0], run_once(*job, args.timeout)), jobs))
    for path in notebooks:
        runs = [r for p, r in results if p == path]
        summary = summarise(path, runs)
        out = OUT_DIR / f"{path.stem}.json"
        out.write_text(json.dumps(summary, indent=1) + "\n")
        bad = [c for c in summary["claims"] if not all(r["held"] for r in c["runs"])]
        partial = [c for c in summary["claims"] if len({(r["seed"], r["path"]) for r in c["runs"]}) < len(runs)]
        failed = [r for r in runs if r["error"]]
        status |= bool(bad or partial or failed)
        print(f"{summary['notebook']}: {len(summary['claims'])} claims over {len(runs)} runs; "
              f"{len(bad)} did not hold in every run; {len(partial)} missing from some runs; "
              f"{len(failed)} run(s) failed")
        for c in bad:
            print(f"  held {c['held_in']}: {c['statement']} ({c['bound']}); measured {_num(c['min'])}–{_num(c['max'])}")
        for c in partial:
            print(f"  not in every run (a statement must not contain measured numbers): {c['statement']}")
        for r in failed:
            print(f"  seed {r['seed']} {r['path']}: {r['error']}")
    write_table()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
