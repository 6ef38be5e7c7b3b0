"""Claims: a notebook's findings stated with a tolerance, checked where they are made.

A claim is one sentence of the prose turned into a check: *what* is found, the number that shows it, and the
bound it must meet::

    from toolkit import exercises as ex
    ex.claim("parent is decodable after block 0", parent_acc[1], at_least=0.95)
    ex.claim("the trained model beats its random-init twin", trained - random, above=0.2)
    ex.claim("knocking out L0H1 breaks most paths", exact_after, at_most=0.3,
             if_fails="check that the knockout hook is on blocks.0.attn.hook_pattern")

The plain-text output is only the verdict and the bound, e.g. ``✔ parent is decodable after block 0 (≥ 0.95)``:
that is what the notebook tests compare, and it is the same on every CPU. The measured number is shown beside it
in the notebook's HTML view (and in plain text outside a kernel), never compared digit by digit: another CPU,
another kernel path of torch or another seed prints other digits, and the finding stands as long as the bound
holds. The bounds come from evidence: ``scripts/measure_claims.py`` reruns each solution notebook over seeds and
numeric paths and writes each claim's measured spread to ``docs/CLAIMS.md``.

A claim that fails shows ``✘`` with what was claimed, what was measured and what to check; with
``SEARCHLIGHT_STRICT=1`` (how the solution notebooks are tested) it raises :class:`ClaimFailed`.
``SEARCHLIGHT_CLAIMS_LOG=<file>`` appends every claim as a JSON line (used by the measuring script), and
``SEARCHLIGHT_SEED`` sets :func:`run_seed`, the offset a notebook adds to its seeds.
"""

from __future__ import annotations

import html
import json
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

from toolkit.exercises.core import strict_mode

LOG_ENV = "SEARCHLIGHT_CLAIMS_LOG"
SEED_ENV = "SEARCHLIGHT_SEED"
_GREEN, _RED = "#2e7d32", "#c62828"
_BOX = ("border-left: 4px solid {color}; padding: 3px 10px; margin: 3px 0; "
        "font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; line-height: 1.45;")
_DEFAULT_ADVICE = ("Rerun the notebook from the top (a cell run out of order is the usual cause); if it still "
                   "fails, compare your numbers with the spread in docs/CLAIMS.md: a run far outside it means "
                   "something upstream (data, model, an exercise answer) differs from the tutorial's.")


class ClaimFailed(AssertionError):
    """A claim did not hold, raised with ``SEARCHLIGHT_STRICT=1``."""


def run_seed() -> int:
    """The seed offset of this run: 0, unless ``SEARCHLIGHT_SEED`` is set.

    Tutorials add it to every seed they use (``task.generate(500, seed=SEED + 3)``) so that
    ``scripts/measure_claims.py`` can rerun a notebook on other data and other initialisations and measure how
    far each claim's number moves.
    """
    raw = os.environ.get(SEED_ENV, "").strip()
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{SEED_ENV}={raw!r} is not an integer; unset it or set e.g. {SEED_ENV}=1") from None


def _number(value: Any, what: str) -> float | bool:
    """A Python float (or bool) from a float, int, bool, numpy scalar or one-element tensor."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            raise TypeError(f"{what} must be one number, got an array of shape {tuple(value.shape)}; reduce it "
                            "first (e.g. .mean() or .max())") from None
    if isinstance(value, bool):
        return value
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number or a bool, got {type(value).__name__}")
    return float(value)


def _fmt(value: float | bool, fmt: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "nan"
    return format(value, fmt)


@dataclass
class Claim:
    """One checked claim. Truthy when it held. ``measured`` is the number; ``bound`` says what it had to meet."""

    statement: str
    measured: float | bool
    bound: str
    held: bool
    fmt: str = ".3g"
    if_fails: str = ""

    def __bool__(self) -> bool:
        return self.held

    @property
    def text(self) -> str:
        """The verdict line the notebook tests compare: no measured digits."""
        return f"{'✔' if self.held else '✘'} {self.statement} ({self.bound})"

    @property
    def measured_text(self) -> str:
        return _fmt(self.measured, self.fmt)

    def report(self) -> str:
        """The verdict with the measured number, and for a failed claim what to check."""
        line = f"{self.text}: measured {self.measured_text}"
        if self.held:
            return line
        return (f"{line}\n  The claim was: {self.statement}, {self.bound}; this run measured {self.measured_text}."
                f"\n  What to check: {self.if_fails or _DEFAULT_ADVICE}")

    def html(self) -> str:
        color = _GREEN if self.held else _RED
        head = (f"<b>{'✔' if self.held else '✘'}</b> {html.escape(self.statement)} "
                f"<span style='opacity: .7'>({html.escape(self.bound)})</span> — measured "
                f"<code>{html.escape(self.measured_text)}</code>")
        if not self.held:
            head += (f"<br><span style='opacity: .85'>What to check: "
                     f"{html.escape(self.if_fails or _DEFAULT_ADVICE)}</span>")
        return f'<div style="{_BOX.format(color=color)}">{head}</div>'

    def __repr__(self) -> str:
        return self.report()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html()}

    def _ipython_display_(self) -> None:
        _show(self)

    def to_dict(self) -> dict[str, Any]:
        return {"statement": self.statement, "measured": self.measured, "bound": self.bound, "held": self.held}


def _bound(at_least: Any, at_most: Any, above: Any, below: Any, between: Any, equals: Any) -> tuple[str, Any]:
    given = {k: v for k, v in (("at_least", at_least), ("at_most", at_most), ("above", above), ("below", below),
                               ("between", between), ("equals", equals)) if v is not None}
    if len(given) != 1:
        raise TypeError("give exactly one bound: at_least=, at_most=, above=, below=, between=(low, high) or "
                        f"equals=; got {sorted(given) or 'none'}")
    return next(iter(given.items()))


def _decide(measured: float | bool, kind: str, limit: Any, fmt: str) -> tuple[str, bool]:
    """The bound as text (e.g. ``≥ 0.95``) and whether ``measured`` meets it. NaN meets no bound."""
    if kind == "equals":
        return f"= {limit}", measured == limit
    if isinstance(measured, bool):
        raise TypeError(f"a True/False measurement takes equals=, not {kind}=")
    nan = math.isnan(measured)
    if kind == "between":
        try:
            low, high = (float(_number(v, "between")) for v in limit)
        except (TypeError, ValueError):
            raise TypeError(f"between= takes (low, high), got {limit!r}") from None
        if low > high:
            raise ValueError(f"between=({low}, {high}): low is above high")
        return f"between {_fmt(low, fmt)} and {_fmt(high, fmt)}", not nan and low <= measured <= high
    limit = float(_number(limit, kind))
    symbol, ok = {"at_least": ("≥", measured >= limit), "at_most": ("≤", measured <= limit),
                  "above": (">", measured > limit), "below": ("<", measured < limit)}[kind]
    return f"{symbol} {_fmt(limit, fmt)}", not nan and ok


def claim(statement: str, measured: Any, *, at_least: Any = None, at_most: Any = None, above: Any = None,
          below: Any = None, between: Any = None, equals: Any = None, fmt: str = ".3g", if_fails: str = "",
          show: bool = True) -> Claim:
    """Check one finding against its bound, show the verdict, and return it.

    Args:
        statement: the finding in words, as the prose states it ("parent is decodable after block 0").
        measured: the number that shows it: a float, int, bool, numpy scalar or one-element tensor.
        at_least / at_most / above / below / between / equals: exactly one bound. ``between=(low, high)`` is
            inclusive; ``equals`` is for exact facts (a bool, a count from data generation).
        fmt: format of the numbers in the report (``".3g"``; ``".0%"`` for fractions shown as percent).
        if_fails: what a learner should check when the claim fails (a default advice otherwise).
        show: display the verdict (False: just return it).

    Returns:
        A :class:`Claim`, truthy when it held. With ``SEARCHLIGHT_STRICT=1`` a failed claim raises
        :class:`ClaimFailed` instead.
    """
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError("statement must be a non-empty sentence saying what is claimed")
    value = _number(measured, "measured")
    kind, limit = _bound(at_least, at_most, above, below, between, equals)
    bound_text, held = _decide(value, kind, limit, fmt)
    result = Claim(statement.strip(), value, bound_text, bool(held), fmt, if_fails)
    _log(result)
    if show:
        _show(result)
    if strict_mode() and not result.held:
        raise ClaimFailed(result.report())
    return result


def _log(result: Claim) -> None:
    path = os.environ.get(LOG_ENV, "").strip()
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:  # one short line per append: safe for one writer per file
        f.write(json.dumps(result.to_dict()) + "\n")


def _show(result: Claim) -> None:
    """Display a claim once per cell execution (rich in a kernel, text elsewhere)."""
    from toolkit.exercises.display import _ipython

    shell = _ipython()
    if shell is None or not hasattr(shell, "kernel"):
        print(result.report())
        return
    count = getattr(shell, "execution_count", None)
    if getattr(result, "_shown_at", object()) == count:
        return  # already displayed by claim() in this cell; the cell's last value is the same object
    result._shown_at = count  # type: ignore[attr-defined]
    from IPython.display import display

    display(result._repr_mimebundle_(), raw=True)
