"""Every exercise: the reference passes, and every registered plausible mistake is rejected with its message.

Plus hand-written wrong answers that are not copies of a registered mistake.
"""

from __future__ import annotations

import pytest

from toolkit import exercises as ex


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


EXERCISES = ex.all_exercises()
MISTAKES = [(e.id, i) for e in EXERCISES for i in range(len(e.mistakes))]


@pytest.mark.parametrize("exercise_id", [e.id for e in EXERCISES])
def test_reference_passes(exercise_id):
    exercise = ex.get(exercise_id)
    result = ex.check(exercise_id, exercise.reference, show=False)
    assert result.passed, result.text()


@pytest.mark.parametrize("exercise_id, k", MISTAKES, ids=[f"{e}-mistake{k}" for e, k in MISTAKES])
def test_mistake_is_rejected_with_its_message(exercise_id, k):
    mistake = ex.get(exercise_id).mistakes[k]
    result = ex.check(exercise_id, mistake.fn, show=False)
    assert not result.passed
    assert any(c.message == mistake.message for c in result.failures), result.text()


# --- hand-written wrong answers --------------------------------------------------------------------------


def test_bfs_without_visited_set_is_stopped():
    def no_visited(neighbors, start, goal):
        queue = [[start]]
        while queue:
            path = queue.pop(0)
            if path[-1] == goal:
                return path
            queue.extend(path + [m] for m in neighbors.get(path[-1], []))
        return None

    result = ex.check("01.bfs", no_visited, show=False)
    assert not result and "endless loop" in result.text()


def test_bfs_returning_only_the_length_is_explained():
    from toolkit.exercises.chapters.ch01_search import bfs_path

    result = ex.check("01.bfs", lambda n, s, g: len(bfs_path(n, s, g) or []), show=False)
    assert "should be a list" in result.message


def test_backward_chain_that_forgets_to_reverse_a_copy():
    def sloppy(edges, goal):
        parent = dict((b, a) for a, b in edges)
        out = [goal]
        while out[-1] in parent:
            out.append(parent[out[-1]])
        return out

    assert "goal -> root" in ex.check("01.backward_chain", sloppy, show=False).message


def test_loss_returning_per_position_values_is_explained():
    import torch.nn.functional as F

    def per_position(logits, tokens, loss_mask):
        return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")

    assert "single number" in ex.check("02.next_token_loss", per_position, show=False).message


def test_edge_score_keeping_examples_is_a_shape_error():
    def per_example(pattern, target_mask):
        return pattern.diagonal(offset=-1, dim1=2, dim2=3).mean(2)  # [n, head]

    assert "should have shape" in ex.check("03.edge_score", per_example, show=False).message


def test_probe_accuracy_as_percentage_is_explained():
    from toolkit.exercises.chapters.ch04_probing import probe_accuracy

    result = ex.check("04.probe_accuracy", lambda *a: 100 * probe_accuracy(*a), show=False)
    assert "not a percentage" in result.message


def test_split_returning_one_mask_is_explained():
    from toolkit.exercises.chapters.ch04_probing import FORMAT, split_by_example

    result = ex.check("04.split_by_example", lambda *a: split_by_example(*a)[1], show=False)
    assert result.message == FORMAT


def test_split_without_shuffling_fails_the_seed_case():
    import torch

    def in_order(example_index, test_frac, seed):
        examples = torch.unique(example_index)
        test = torch.isin(example_index, examples[: round(test_frac * len(examples))])
        return ~test, test

    result = ex.check("04.split_by_example", in_order, show=False)
    assert "different split" in result.message
