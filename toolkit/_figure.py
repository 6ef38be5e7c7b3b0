"""Figures display as images in notebooks, whoever made them and whether or not pyplot was imported.

A bare ``matplotlib.figure.Figure`` displays in Jupyter as the text ``<Figure size 500x240 with 2 Axes>`` until
pyplot is imported (that import activates the inline backend, which registers a PNG formatter). The toolkit never
touches pyplot's global state, and a learner's ``Figure(...)`` made without pyplot must still show as a plot. So
``import toolkit`` registers, once, a PNG formatter for every ``Figure`` in the running IPython shell
(``toolkit._enable_notebook_figures``, by class name, so that the import stays light). That is the only mechanism:
figures made by ``task.render``, ``History.plot``, ``toolkit.viz`` or by hand in a notebook all go through it.
If pyplot's inline backend is activated later, it replaces the formatter with its own, which displays figures too.

:class:`NotebookFigure` attaches an Agg canvas (so ``fig.canvas`` draws without pyplot) and is the base of the
toolkit's figures; :func:`figure_png` is what the formatter calls (a figure class may speed it up by defining
``_repr_png_``, as :class:`toolkit.viz.figure.VizFigure` does).
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DEFAULT_DPI = 90


class NotebookFigure(Figure):
    """A ``Figure`` with an Agg canvas attached (draws and saves without pyplot)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of ``fig`` as a notebook shows it (``DEFAULT_DPI``, trimmed to what is drawn)."""
    fast = getattr(type(fig), "_repr_png_", None)
    if fast is not None:
        return fast(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DEFAULT_DPI, bbox_inches="tight")
    return buf.getvalue()
