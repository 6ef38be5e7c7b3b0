"""Offline-safe circuitsvis: interactive attention views that never touch the network.

circuitsvis decides at every render whether to inline its ~1.3 MB JavaScript bundle or import it from a CDN,
and it decides by opening a connection to google.com. We skip that probe and always render from the bundle that
ships inside the installed circuitsvis package, so a view works offline and never waits on a timeout.

Saved notebooks must not carry the bundle. Each view is therefore returned as a :class:`CircuitsView`, whose
rich output marks the bundle with :data:`BUNDLE_MARK`; :func:`strip_bundles` replaces marked HTML with a short
text placeholder. It runs as JupyterLab's pre-save hook (``make lab`` configures it) and in the notebook tests.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import uuid4

import torch

BUNDLE_MARK = "searchlight-circuitsvis-bundle"
PLACEHOLDER = "[interactive circuitsvis view: re-run the cell to see it; the JS bundle is not saved]"


@lru_cache(maxsize=1)
def _bundle() -> str:
    import circuitsvis

    path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    if not path.exists():
        raise FileNotFoundError(f"circuitsvis's bundled JavaScript is missing at {path}; reinstall circuitsvis")
    return path.read_text(encoding="utf-8").replace("</script>", "")


def _props_json(props: dict[str, Any]) -> str:
    def convert(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().tolist()
        if hasattr(v, "tolist"):
            return v.tolist()
        return v

    return json.dumps({k: convert(v) for k, v in props.items() if v is not None})


class CircuitsView:
    """A circuitsvis element rendered from the local bundle.

    Displays as interactive HTML in JupyterLab; ``str(view)`` and the text fallback give a one-line summary.
    """

    def __init__(self, element: str, summary: str, **props: Any):
        self.element = element
        self.summary = summary
        self.props = props

    def html(self) -> str:
        """Self-contained HTML (bundle inlined). Used for display and for saving standalone pages."""
        uid = "circuits-vis-" + uuid4().hex[:12]
        return (
            f'<div id="{uid}" class="{BUNDLE_MARK}" style="margin: 15px 0;"></div>\n'
            f'<script crossorigin type="module" class="{BUNDLE_MARK}">\n{_bundle()}\n'
            f'CircuitsVis.render("{uid}", CircuitsVis.{self.element}, {_props_json(self.props)});\n</script>'
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self.html(), "text/plain": f"<{self.summary}>"}

    def __repr__(self) -> str:
        return f"<{self.summary}>"


def attention_heads(tokens: Sequence[str], pattern: torch.Tensor,
                    head_names: Sequence[str] | None = None, causal: bool = True) -> CircuitsView:
    """Interactive view of the heads of one layer (circuitsvis ``AttentionHeads``).

    Args:
        tokens: the ``seq`` token strings.
        pattern: ``[n_heads, seq, seq]`` attention probabilities (query, key).
        head_names: optional names, default ``H0, H1, ...``.
        causal: mask the upper triangle (True for our decoder-only models).
    """
    pattern = torch.as_tensor(pattern, dtype=torch.float32)
    if pattern.ndim != 3 or pattern.shape[1] != pattern.shape[2]:
        raise ValueError(f"pattern must be [n_heads, seq, seq], got shape {tuple(pattern.shape)}")
    if pattern.shape[1] != len(tokens):
        raise ValueError(f"pattern covers {pattern.shape[1]} positions but {len(tokens)} tokens were given; "
                         "pass the token strings of exactly the positions in the pattern")
    names = list(head_names) if head_names is not None else [f"H{h}" for h in range(pattern.shape[0])]
    if len(names) != pattern.shape[0]:
        raise ValueError(f"{len(names)} head names for {pattern.shape[0]} heads")
    return CircuitsView(
        "AttentionHeads", f"attention heads: {pattern.shape[0]} heads x {len(tokens)} tokens",
        tokens=[str(t) for t in tokens], attention=pattern, attentionHeadNames=names, maskUpperTri=causal,
    )


def strip_bundles(nb: dict[str, Any]) -> int:
    """Replace every saved circuitsvis HTML output in a notebook (nbformat dict) by a text placeholder.

    Returns the number of outputs changed. Works in place on the JSON dict, so it can run as a Jupyter
    pre-save hook or on ``json.load``-ed files.
    """
    changed = 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            body = data.get("text/html")
            if body is None:
                continue
            text = "".join(body) if isinstance(body, list) else body
            if BUNDLE_MARK in text or "CircuitsVis.render" in text or "unpkg.com/circuitsvis" in text:
                data["text/html"] = f"<pre>{html.escape(PLACEHOLDER)}</pre>"
                data.setdefault("text/plain", PLACEHOLDER)
                changed += 1
    return changed


def pre_save_hook(model: dict[str, Any], **kwargs: Any) -> None:
    """Jupyter ``FileContentsManager.pre_save_hook``: strip circuitsvis bundles from notebooks being saved."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        strip_bundles(model["content"])
