"""Explorers: small ipywidgets apps composed from :mod:`toolkit.viz` (widgets call the library, never the reverse).

- :class:`AttentionExplorer` (model, data): example / layer / head / query -> attention on the task + heatmap
- :class:`SearchStateExplorer` (model, data, probes): step through layers, watch the decoded search state
- :class:`ProbeExplorer` (sweep result): layer x label heatmap; a cell -> confusion matrix, control, predictions
- :class:`FeatureBrowser` (sae, acts, data): pick a latent, see its dashboard; pick an example, see what fires
- :class:`MazeEditor` (model, task): click cells to toggle walls / move the goal, watch the model's path
"""

from toolkit.widgets.attention import AttentionExplorer
from toolkit.widgets.base import Explorer

__all__ = ["AttentionExplorer", "Explorer"]
