"""Visualisation: pure functions returning matplotlib Figures or HTML views (no pyplot global state).

Every plot returns a :class:`VizFigure` (a ``matplotlib.figure.Figure`` that displays itself in notebooks).

- tasks: :func:`render` (a task with a value per node / cell), :func:`render_positions` (per-token values
  pooled onto the task's elements), :func:`render_grid`, :func:`positions_to_overlay`
- attention: :func:`attention_heads` (interactive, offline circuitsvis), :func:`attention_heatmap` (static),
  :func:`attention_html` (fast HTML heatmap), :func:`token_strip`, :func:`heatmap_html`
- probes: :func:`probe_heatmap`, :func:`probe_curves`, :func:`confusion_matrix`, :func:`prediction_scatter`
- features: :func:`feature_dashboard` (:class:`FeatureDashboard` redraws in place), :func:`label_match`,
  :func:`top_examples`
- training: :func:`training_curves`, :func:`accuracy_by_difficulty`
- names (the one vocabulary): :func:`depth_name` / :func:`depth_html` ("depth d" for residual-stream hooks),
  :func:`difference_name` ("selectivity", "vs random-init", "vs baseline")
- live (figures the explorers keep and update in place): :class:`TaskPanels`, :class:`Panel`, :func:`clear_axes`
"""

from toolkit.viz.attention import attention_heatmap, token_strip
from toolkit.viz.circuits import BUNDLE_MARK, CircuitsView, attention_heads, strip_bundles
from toolkit.viz.features import (
    FeatureDashboard,
    example_overlay,
    feature_dashboard,
    label_match,
    label_match_matrix,
    top_examples,
    where_from_mask,
)
from toolkit.viz.figure import FastTextCanvas, VizFigure, new_figure, to_html, to_png
from toolkit.viz.html import attention_html, colour, heatmap_html
from toolkit.viz.live import Panel, TaskPanels, clear_axes, value_range
from toolkit.viz.names import DEPTH_NOTE, HEAD_NOTE, depth_html, depth_name, difference_name
from toolkit.viz.probes import confusion_matrix, pivot, prediction_scatter, probe_curves, probe_heatmap, records
from toolkit.viz.tasks import (
    element_table,
    n_elements,
    position_elements,
    positions_to_overlay,
    render,
    render_grid,
    render_positions,
    task_legend,
)
from toolkit.viz.training import accuracy_by_difficulty, training_curves

__all__ = [
    "BUNDLE_MARK",
    "CircuitsView",
    "DEPTH_NOTE",
    "FastTextCanvas",
    "FeatureDashboard",
    "HEAD_NOTE",
    "Panel",
    "TaskPanels",
    "VizFigure",
    "accuracy_by_difficulty",
    "attention_heads",
    "attention_heatmap",
    "attention_html",
    "clear_axes",
    "colour",
    "confusion_matrix",
    "depth_html",
    "depth_name",
    "difference_name",
    "element_table",
    "example_overlay",
    "feature_dashboard",
    "heatmap_html",
    "label_match",
    "label_match_matrix",
    "n_elements",
    "new_figure",
    "pivot",
    "position_elements",
    "prediction_scatter",
    "positions_to_overlay",
    "probe_curves",
    "probe_heatmap",
    "records",
    "render",
    "render_grid",
    "render_positions",
    "strip_bundles",
    "task_legend",
    "to_html",
    "to_png",
    "top_examples",
    "token_strip",
    "training_curves",
    "value_range",
    "where_from_mask",
]
