"""Visualisation: pure functions returning matplotlib Figures or HTML views (no pyplot global state)."""

from toolkit.viz.circuits import BUNDLE_MARK, CircuitsView, attention_heads, strip_bundles

__all__ = ["BUNDLE_MARK", "CircuitsView", "attention_heads", "strip_bundles"]
