"""Explorers: small ipywidgets apps composed from :mod:`toolkit.viz` (widgets call the library, never the reverse).

- :class:`AttentionExplorer` (model, data): example / layer / head / query -> attention on the task + heatmap
- :class:`SearchStateExplorer` (model, data, probes): step through layers, watch the decoded search state
- :class:`ProbeExplorer` (sweep result, acts): label x layer heatmap; a cell -> numbers, confusion matrix,
  per-position predictions
- :class:`FeatureBrowser` (sae, acts, data): pick a latent, see its dashboard; pick an example, see what fires
- :class:`MazeEditor` (model, data): click cells to toggle walls / move origin and target, watch the model

Every explorer displays as one widget, has a readable ``repr``, exposes ``controls`` (set ``.value`` to drive it
from code), ``views`` and ``figures`` (the matplotlib Figure each image view keeps and redraws in place), and
``timings_ms`` / ``draw_counts``.
"""

from toolkit.widgets.attention import AttentionExplorer
from toolkit.widgets.base import Explorer
from toolkit.widgets.features import FeatureBrowser
from toolkit.widgets.maze import MazeEditor
from toolkit.widgets.probe import ProbeExplorer
from toolkit.widgets.search_state import SearchStateExplorer

__all__ = ["AttentionExplorer", "Explorer", "FeatureBrowser", "MazeEditor", "ProbeExplorer", "SearchStateExplorer"]
