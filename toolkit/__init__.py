"""Searchlight: find learned search inside tiny transformers.

The package follows the pipeline of the curriculum; data flows one way::

    tasks -> models -> activations -> probes / unsupervised / interventions -> circuits -> signatures
        -> viz & widgets -> exercises

Import the submodules you need (``from toolkit import tasks, models``); they are loaded lazily so that
``import toolkit`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("searchlight-toolkit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

_SUBMODULES = (
    "tasks",
    "models",
    "activations",
    "probes",
    "interventions",
    "circuits",
    "signatures",
    "unsupervised",
    "viz",
    "widgets",
    "exercises",
)

__all__ = ["__version__", "info", *_SUBMODULES]


def _figure_png(fig) -> bytes:
    from toolkit._figure import figure_png

    return figure_png(fig)


def _enable_notebook_figures() -> None:
    """In a notebook, every matplotlib ``Figure`` displays as an image, pyplot or not (see ``toolkit._figure``).

    Registered by name, so ``import toolkit`` imports neither matplotlib nor IPython.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and hasattr(shell, "display_formatter"):
        shell.display_formatter.formatters["image/png"].for_type_by_name("matplotlib.figure", "Figure",
                                                                          _figure_png)


_enable_notebook_figures()


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"toolkit.{name}")
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")


def info(print_report: bool = True) -> dict[str, str]:
    """Report the versions that matter and whether widgets can render here.

    Returns a dict (name -> version or status); prints it as a small table unless ``print_report=False``.
    """
    from toolkit._env import environment_report

    report = environment_report()
    if print_report:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return report
