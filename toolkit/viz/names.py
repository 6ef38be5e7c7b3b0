"""The one vocabulary of the tables, heatmaps and explorers.

Residual-stream positions are named by **depth** (:func:`depth_name`): depth 0 is the embedding
(``blocks.0.hook_resid_pre``) and depth d the residual stream after block d-1 (``blocks.{d-1}.hook_resid_post``),
the numbers :func:`toolkit.probes.depth` gives. Attention heads keep their component name ``L{layer}H{head}``
(layer = block index): a head of layer l reads depth l and writes into depth l + 1.

Differences of a probe score are named by what they subtract (:func:`difference_name`): ``selectivity`` only
for Hewitt & Liang's score − control-task score, ``vs random-init`` for score − the random-init twin's score
and ``vs baseline`` for score − the trivial baseline's score.
"""

from __future__ import annotations

import html

from toolkit.activations.hooks import parse_hook
from toolkit.probes.cells import depth

DEPTH_NOTE = ("depth d = the residual stream after d blocks: depth 0 is the embedding (blocks.0.hook_resid_pre), "
              "depth d the output of block d-1 (blocks.{d-1}.hook_resid_post)")
HEAD_NOTE = "heads are named L{layer}H{head}: layer = block index (a head of layer l reads depth l)"

DIFFERENCES = {"control": "selectivity", "random_init": "vs random-init", "baseline": "vs baseline"}

def resid_depth(hook: str) -> int | None:
    """The depth of a residual-stream hook (``blocks.l.hook_resid_pre`` / ``_post``, ``hook_embed``), else None."""
    if hook == "hook_embed":
        return 0
    layer, site = parse_hook(hook)
    if layer is None or site not in ("hook_resid_pre", "hook_resid_post"):
        return None
    return depth(hook, layer + 1)


def depth_name(hook: str) -> str:
    """The name of a residual-stream hook: ``"depth 3"`` for ``blocks.2.hook_resid_post`` (and for
    ``blocks.3.hook_resid_pre``, the same point), ``"depth 0"`` for the embedding, ``"mid-block 1"`` for
    ``blocks.1.hook_resid_mid``; any other hook name is returned unchanged."""
    d = resid_depth(hook)
    if d is not None:
        return f"depth {d}"
    layer, site = parse_hook(hook)
    return f"mid-block {layer}" if layer is not None and site == "hook_resid_mid" else hook


def depth_html(hook: str) -> str:
    """:func:`depth_name` as HTML, with the hook name on hover (``title=``)."""
    return f"<span title='{html.escape(hook, quote=True)}'>{html.escape(depth_name(hook))}</span>"


def difference_name(value: str, subtracted: str) -> str:
    """The name of ``value − subtracted``: ``selectivity`` (control task), ``vs random-init``, ``vs baseline``."""
    name = DIFFERENCES.get(subtracted)
    return f"{name} ({value} − {subtracted})" if name else f"{value} − {subtracted}"
