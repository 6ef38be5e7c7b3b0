"""``torch_threads(n)``: run a block on ``n`` torch threads, then restore the previous setting.

Measured on the shared 2-core machine (other jobs running): caching resid_post at the loss positions of 2000
tree-8 examples took a median 1.8 s on one thread and 7-14 s on torch's default two threads, because the
thread pool spins against the other jobs. The toolkit's batched loops therefore default to one thread;
pass ``threads=None`` to keep torch's own setting (e.g. on an idle many-core machine).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer or None (torch's setting), got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
