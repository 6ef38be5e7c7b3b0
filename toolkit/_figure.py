"""A matplotlib Figure that shows itself in notebooks, shared by every layer of the pipeline.

A bare ``matplotlib.figure.Figure`` only displays in Jupyter once pyplot has been imported (that import
registers the inline formatter). The toolkit never touches pyplot's global state, so figures made by
``task.render``, ``History.plot`` and ``toolkit.viz`` carry their own ``_repr_png_``.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DEFAULT_DPI = 90


class NotebookFigure(Figure):
    """A ``Figure`` with an Agg canvas attached that renders as PNG in notebooks."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=DEFAULT_DPI)
        return buf.getvalue()
