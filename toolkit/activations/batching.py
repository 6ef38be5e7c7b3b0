"""Which dataset rows the current forward pass holds.

Interventions with per-example positions or source activations (``[n, seq, ...]`` for the whole dataset)
need to know which rows a batch covers. Every toolkit loop that runs a model over a dataset in batches
(``activations.cache``, ``interventions.logits`` / ``run`` / ``capture``) wraps each forward pass in
``batch_rows(start, stop)``; hooks read it with :func:`current_rows`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_ROWS: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("searchlight_rows", default=None)


@contextmanager
def batch_rows(start: int, stop: int) -> Iterator[None]:
    """Declare that the next forward pass holds dataset rows ``[start, stop)``."""
    token = _ROWS.set((start, stop))
    try:
        yield
    finally:
        _ROWS.reset(token)


def current_rows() -> tuple[int, int] | None:
    return _ROWS.get()
