"""Environment report behind :func:`toolkit.info`."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

_PACKAGES = ("torch", "transformer_lens", "ipywidgets", "jupyterlab", "circuitsvis", "matplotlib", "numpy")


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def widgets_status() -> str:
    """Can ipywidgets render in the current process? (needs an IPython kernel with comms)."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError as err:
        return f"no ({err.name} missing)"
    shell = get_ipython()
    if shell is None:
        return "no (not inside a Jupyter kernel; widgets fall back to text)"
    if getattr(shell, "kernel", None) is None:
        return "no (IPython without a kernel, e.g. a terminal)"
    return "yes"


def environment_report() -> dict[str, str]:
    import torch

    from toolkit import __version__

    report = {"searchlight": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        report[name] = _version(name)
    report["torch build"] = "CUDA " + torch.version.cuda if torch.version.cuda else "CPU"
    report["torch threads"] = str(torch.get_num_threads())
    report["widgets render"] = widgets_status()
    return report
