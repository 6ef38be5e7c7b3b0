"""Tutorial 05's open question, answered with the notebook's own numbers (shown after the learner's attempt)."""

from __future__ import annotations

from toolkit.exercises.questions import question


def _decoded_not_used(base_exact: float, erased: dict[str, tuple[float, float, float]],
                      later_goal_effect: float) -> str:
    """``erased[label] = (probe before, probe after erasure, model exact with erasure)``; ``later_goal_effect``: the
    largest normalised patching effect of the goal position entering layers 2 and 3 (section 4)."""
    before, after, exact = erased["ancestor_1"]
    return (f"Here: ancestor_1 decodes at {before:.0%} at the goal position after layer 2, a fresh probe after "
            f"erasure drops to {after:.0%} (chance 12.5%), yet the model keeps {exact:.1%} exact paths (without "
            f"erasure {base_exact:.1%}). Two explanations: (a) nothing downstream reads the parent at that position "
            "and layer (a by-product, or a stage needed only earlier in training); (b) the model does use it, but "
            "has a second copy elsewhere (e.g. at the root position, or recomputed later), so removing one copy "
            "is compensated. To tell them apart, erase it at both places at once (accuracy falls: redundancy), "
            "or patch the goal position at layer 2 from a tree with a different parent but the same depth-1 "
            "branch (nothing changes if nothing reads it). Section 4 points to (a) for the depth-1 decision: "
            f"entering layers 2 and 3, patching the goal position had an effect of at most {later_goal_effect:.2f}.")


question("05.decoded_not_used", _decoded_not_used)
