"""The one result protocol: every result object has ``.table()`` (a pandas DataFrame) and ``.to_dict()``.

``table()`` returns a DataFrame when pandas is installed (a list of row dicts otherwise); ``to_dict()`` returns
plain Python (numbers, strings, lists, dicts), ready for ``json.dumps``. :func:`frame` and :func:`plain` are the
two helpers every result class uses for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def frame(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> Any:
    """``rows`` as a pandas DataFrame (the list itself when pandas is not installed)."""
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=None if columns is None else list(columns))


def plain(x: Any) -> Any:
    """``x`` with tensors / arrays as (nested) lists and numpy scalars as Python numbers; dict keys as str."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    if isinstance(x, torch.Tensor | np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x
