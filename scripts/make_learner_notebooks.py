#!/usr/bin/env python
"""Generate the learner notebooks from the solution notebooks (single-source authoring).

    python scripts/make_learner_notebooks.py            # write tutorials/NN_*.ipynb + toolkit/exercises/_solutions.py
    python scripts/make_learner_notebooks.py --check    # exit 1 if any generated file is out of date

Each ``tutorials/solutions/NN_name.ipynb`` becomes ``tutorials/NN_name.ipynb`` with every ``# SOLUTION`` ...
``# END SOLUTION`` block replaced by a ``raise NotImplementedError`` stub and all outputs cleared; the solution
cells are collected into ``toolkit/exercises/_solutions.py`` (what ``ex.show_solution`` shows).
See toolkit/exercises/README.md for the conventions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from authoring import (  # noqa: E402
    AuthoringError,
    all_solutions,
    learner_path,
    learner_text,
    solutions_module,
)

from toolkit._io import atomic_write  # noqa: E402

SOLUTIONS_DIR = ROOT / "tutorials" / "solutions"
MODULE = ROOT / "toolkit" / "exercises" / "_solutions.py"


def planned() -> dict[Path, str]:
    """Every generated file and the text it should have."""
    out = {learner_path(p): learner_text(p) for p in sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*.ipynb"))}
    out[MODULE] = solutions_module(all_solutions(SOLUTIONS_DIR))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report out-of-date files (exit 1 if any)")
    args = parser.parse_args(argv)
    try:
        files = planned()
    except AuthoringError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    for path in stale:
        rel = path.relative_to(ROOT)
        if args.check:
            print(f"out of date: {rel}")
        else:
            atomic_write(path, files[path])
            print(f"wrote {rel}")
    if args.check and stale:
        print("run: python scripts/make_learner_notebooks.py", file=sys.stderr)
        return 1
    if not stale:
        print(f"{len(files)} generated files up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
