"""Tutorial 01's open question, answered with the notebook's own numbers (shown after the learner's attempt)."""

from __future__ import annotations

from toolkit.exercises.questions import question


def _backward_chaining_search(tree_fwd: float, tree_bwd: float, maze_fwd: float, maze_path: float) -> str:
    """Numbers of section 5: mean nodes touched by forward BFS / backward chaining in the test trees, and cells
    touched by forward BFS / on the path in the test mazes."""
    return (f"On these trees backward chaining touches {tree_bwd:.1f} nodes on average, exactly the path, while "
            f"forward BFS touches {tree_fwd:.1f}; in the mazes BFS touches {maze_fwd:.1f} cells for a path of "
            f"{maze_path:.1f}. So backward chaining considers no alternatives: as an *algorithm* it is a walk, not a "
            "search through candidates. A model can still be an optimizer in the definition's sense to a degree: "
            "the objective (the goal) must be represented where the walk starts, and the walk iterates a learned "
            "step ('find my parent') from an explicitly represented sub-goal. To say yes you would need to see "
            "inside it (1) the goal decodable where the answer is computed, (2) the intermediate sub-goals "
            "(ancestors) decodable, one more per step, and (3) an intervention on one of them changing the answer "
            "as the algorithm predicts. A model that matched shallow patterns would not carry those states, or "
            "editing them would not change its output. Decodable intermediate states plus their causal use is the "
            "evidence tutorials 04 and 05 look for.")


question("01.backward_chaining_search", _backward_chaining_search)
