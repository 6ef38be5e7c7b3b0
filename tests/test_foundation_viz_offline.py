"""Rendering attention with toolkit.viz never opens a network connection."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from toolkit import viz


@pytest.fixture
def no_network(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network access attempted during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return calls


def test_render_makes_no_network_call(no_network):
    pattern = torch.softmax(torch.randn(2, 4, 4), dim=-1)
    view = viz.attention_heads(["S1", "T2", "|", ":"], pattern)
    bundle = view._repr_mimebundle_()
    assert no_network == []
    html = bundle["text/html"]
    assert "CircuitsVis.render" in html and "AttentionHeads" in html
    assert "unpkg.com" not in html and "google.com" not in html
    assert "2 heads x 4 tokens" in bundle["text/plain"]


def test_circuitsvis_own_render_would_probe_the_network(no_network):
    """The reason the wrapper exists: circuitsvis's own repr tries google.com first."""
    import circuitsvis.attention

    circuitsvis.attention.attention_heads(torch.zeros(1, 2, 2), ["a", "b"])._repr_html_()
    assert no_network, "circuitsvis no longer probes the network; the wrapper may be simplified"


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match=r"\[n_heads, seq, seq\]"):
        viz.attention_heads(["a"], torch.zeros(3, 3))
    with pytest.raises(ValueError, match="2 tokens were given"):
        viz.attention_heads(["a", "b"], torch.zeros(1, 3, 3))


def test_strip_bundles_leaves_other_html_alone():
    nb = {"cells": [{"outputs": [{"data": {"text/html": "<b>table</b>"}}]}]}
    assert viz.strip_bundles(nb) == 0
    assert nb["cells"][0]["outputs"][0]["data"]["text/html"] == "<b>table</b>"


def test_jupyter_pre_save_hook_strips_the_bundle():
    """`make lab` configures this hook (scripts/jupyter_server_config.py): saved notebooks stay small."""
    from toolkit.viz.circuits import PLACEHOLDER, pre_save_hook

    view = viz.attention_heads(["a", "b"], torch.full((1, 2, 2), 0.5))
    nb = {"cells": [{"outputs": [{"data": view._repr_mimebundle_()}]}]}
    pre_save_hook({"type": "notebook", "content": nb}, path="x.ipynb")
    assert PLACEHOLDER in nb["cells"][0]["outputs"][0]["data"]["text/html"]
    assert len(str(nb)) < 1000
    config = (Path(__file__).resolve().parents[1] / "scripts" / "jupyter_server_config.py").read_text()
    assert "toolkit.viz.circuits.pre_save_hook" in config
