"""Tutorial 01, DFS and A*: the references agree with independent implementations (test_exercises_checks.py runs
every reference and registered mistake)."""

from __future__ import annotations

import pytest

from toolkit import exercises as ex
from toolkit.exercises.chapters import ch01_search as base
from toolkit.exercises.chapters import ch01_search_more as ch


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.setenv("SEARCHLIGHT_PROGRESS", "off")
    monkeypatch.delenv("SEARCHLIGHT_STRICT", raising=False)


def test_chapter_registers_dfs_and_astar():
    ids = [e.id for e in ex.all_exercises("01")]
    assert "01.dfs" in ids and "01.astar" in ids
    assert ex.get("01.astar").difficulty >= 3


def test_iterative_dfs_is_the_recursive_one():
    for _, (graph, start, goal) in ch._dfs_cases():
        assert ch.dfs_path(graph, start, goal) == base._dfs_path(graph, start, goal)


def test_astar_returns_a_shortest_path_and_expands_no_more_than_bfs():
    for _, (graph, start, goal, h) in ch._astar_cases():
        path, expanded = ch.astar(graph, start, goal, h)
        shortest = base.bfs_path(graph, start, goal)
        assert (path is None) == (shortest is None)
        if path is not None:
            assert len(path) == len(shortest) and path[0] == start and path[-1] == goal
            assert all(b in graph[a] for a, b in zip(path, path[1:]))
            layers = base.bfs_layers(graph, start)
            k = next(i for i, layer in enumerate(layers) if goal in layer)
            assert len(expanded) <= sum(len(layer) for layer in layers[: k + 1])
