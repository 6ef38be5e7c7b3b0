"""Figures display as images in a bare kernel: no pyplot import, only ``import toolkit`` (issue #19).

A ``matplotlib.figure.Figure`` made without pyplot displays as the text ``<Figure size ...>`` until the inline
backend is activated; 00_welcome's first widget showed exactly that. These tests start a real IPython kernel with
the same Python as the tests and look at the MIME types of what it sends back.
"""

from __future__ import annotations

DRAW = """
from matplotlib.figure import Figure
fig = Figure(figsize=(3, 2))
fig.subplots().plot([0, 1], [1, 0])
"""



def run(kc, code: str) -> list[dict]:
    """Execute ``code``; return the display/result/error/stream messages' contents (with their type)."""
    outputs: list[dict] = []
    kc.execute_interactive(code, timeout=120, output_hook=lambda msg: outputs.append(
        {"type": msg["msg_type"], **msg["content"]}))
    errors = [o for o in outputs if o["type"] == "error"]
    assert not errors, f"kernel error: {errors[0]['ename']}: {errors[0]['evalue']}"
    return [o for o in outputs if o["type"] in ("display_data", "execute_result", "stream")]


def mimes(outputs: list[dict]) -> list[set[str]]:
    return [set(o.get("data", {})) for o in outputs if o["type"] in ("display_data", "execute_result")]


def test_bare_figure_is_text_only_without_toolkit(kernel) -> None:
    """The failure this guards against is real: without ``import toolkit`` a bare Figure shows as text."""
    out = run(kernel, DRAW + "import sys\nprint('pyplot' in ' '.join(sys.modules))\nfig")
    assert any(o["type"] == "stream" and o["text"].strip() == "False" for o in out), "pyplot was already imported"
    assert mimes(out) == [{"text/plain"}], f"expected text only before import toolkit, got {mimes(out)}"


def test_import_toolkit_makes_every_figure_an_image(kernel) -> None:
    out = run(kernel, "import toolkit\n" + DRAW + "fig")
    assert mimes(out) == [{"text/plain", "image/png"}], mimes(out)
    # a subclass, the toolkit's own figures, display() and a figure shown inside an Output widget
    out = run(kernel, "from IPython.display import display\nfrom toolkit.viz.figure import new_figure\n"
                      "g = new_figure(2, 2)\ng.subplots().plot([1, 2])\ndisplay(fig)\ndisplay(g)")
    assert mimes(out) == [{"text/plain", "image/png"}] * 2, mimes(out)
    # inside an Output widget (how the explorers and 00's slider redraw): the frontend receives the same bundle
    out = run(kernel, "import ipywidgets as w\nbox = w.Output()\nwith box:\n    display(fig)")
    assert mimes(out) == [{"text/plain", "image/png"}], mimes(out)
    out = run(kernel, "import sys\nprint('matplotlib.pyplot' in sys.modules)")
    assert out[-1]["text"].strip() == "False", "the toolkit must not import pyplot"
