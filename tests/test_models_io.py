"""models.save / load / pretrained: round trip, atomic writes, and refusals (mismatched config, shapes or
vocabulary; pickles; stale sidecars) with messages that say what differs."""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from toolkit import models, tasks
from toolkit.models import io as mio


@pytest.fixture(scope="module")
def tree():
    return tasks.TreeSearch(n_nodes=5, max_path=3)


@pytest.fixture()
def saved(tree, tmp_path):
    model = models.build(tree, d_model=16, n_layers=1, d_mlp=32, seed=4)
    model.searchlight["training"] = {"steps": 0, "final_eval": {"exact": 0.5}}
    path = models.save(model, tmp_path / "tiny", extra={"description": "a tiny test model"})
    return model, path


def test_round_trip_keeps_weights_outputs_and_metadata(tree, saved, tmp_path):
    model, path = saved
    assert path == tmp_path / "tiny.safetensors" and (tmp_path / "tiny.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["tiny.json", "tiny.safetensors"]  # no temporary files left
    for spelling in (tmp_path / "tiny", path, tmp_path / "tiny.json", str(path)):
        loaded = models.load(spelling)
        tokens = tree.generate(4, seed=2).tokens
        assert torch.equal(loaded(tokens), model(tokens))
    info = loaded.searchlight
    assert info["task"] == tree.spec() and info["vocab"] == tree.vocab.to_dict()
    assert info["training"]["final_eval"]["exact"] == 0.5 and info["extra"]["description"] == "a tiny test model"
    side = json.loads((tmp_path / "tiny.json").read_text())
    assert side["arch"]["d_model"] == 16 and side["toolkit_version"] and len(side["weights_sha256"]) == 64
    assert models.load(path, task=tree).cfg.d_model == 16


def _edit_sidecar(path: Path, fn):
    side_path = path.with_suffix(".json")
    side = json.loads(side_path.read_text())
    fn(side)
    side_path.write_text(json.dumps(side))


def test_config_that_does_not_match_the_weights_is_refused(saved):
    _, path = saved
    _edit_sidecar(path, lambda s: s["arch"].update(d_mlp=48))
    with pytest.raises(ValueError, match=r"does not match the architecture.*blocks\.0\.mlp\.in\.weight: file has "
                                         r"shape \(32, 16\), expected \(48, 16\)"):
        models.load(path)


def test_weights_with_other_shapes_are_refused(tree, saved, tmp_path):
    _, path = saved
    other = models.build(tree, d_model=24, n_layers=1, d_mlp=32)
    other_path = models.save(other, tmp_path / "other")
    os.replace(other_path, path)  # weights of another architecture under this sidecar
    _edit_sidecar(path, lambda s: s.pop("weights_sha256"))
    with pytest.raises(ValueError, match=r"d_model=16.*blocks\.0\.attn\.k\.bias: file has shape \(24,\), "
                                         r"expected \(16,\)"):
        models.load(path)


def test_vocabulary_mismatch_is_refused_and_named(tree, saved):
    _, path = saved

    def swap(side):
        toks = side["vocab"]["tokens"]
        toks[-1], toks[-2] = toks[-2], toks[-1]
    _edit_sidecar(path, swap)
    with pytest.raises(ValueError, match=r"vocabulary of tiny\.safetensors does not match .*position \d+: "
                                         r"checkpoint 'T4' vs task 'T3'"):
        models.load(path)


def test_vocabulary_of_an_explicit_task_is_checked(saved):
    _, path = saved
    with pytest.raises(ValueError, match="vocabulary .* checkpoint has 14 tokens, task has 20"):
        models.load(path, task=tasks.TreeSearch(n_nodes=8, max_path=4))


def test_d_vocab_inconsistent_with_the_stored_vocabulary(saved):
    _, path = saved
    _edit_sidecar(path, lambda s: s["vocab"]["tokens"].append("EXTRA"))
    with pytest.raises(ValueError, match="d_vocab=14 but the stored vocabulary has 15 tokens"):
        models.load(path)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = ""


def test_pickle_renamed_safetensors_is_refused_without_running_it(saved, tmp_path):
    global MARKER
    _, path = saved
    MARKER = str(tmp_path / "pwned")
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="is a Python pickle, not a safetensors file.*never unpickles"):
        models.load(path)
    assert not os.path.exists(MARKER)


def test_torch_save_zip_renamed_safetensors_is_refused(saved):
    model, path = saved
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match=r"zip archive \(torch\.save format\), not a safetensors file"):
        models.load(path)


def test_garbage_weights_and_stale_sidecars(tree, saved, tmp_path):
    model, path = saved
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        models.load(path)
    models.save(model, tmp_path / "tiny")
    stale = models.save(models.build(tree, d_model=16, n_layers=1, d_mlp=32, seed=5), tmp_path / "again")
    os.replace(stale, path)  # same architecture, different save: the checksum catches it
    with pytest.raises(ValueError, match="does not match its .json sidecar"):
        models.load(path)


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint metadata"):
        models.load(tmp_path / "nothing")
    with pytest.raises(IsADirectoryError, match="give a file name"):
        models.load(tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a Searchlight checkpoint sidecar"):
        models.load(tmp_path / "x")


def test_writes_are_atomic(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(mio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        models.save(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.json", "tiny.safetensors"]


def test_pretrained_lists_names_and_random_init_is_the_training_start():
    names = models.available()
    assert {"tree-8", "tree-8-2L", "tree-8-3L", "tree-10", "maze-4x4", "graph-10"} <= set(names)
    listing = "unknown pretrained model 'tree-9'; available:\n  graph-10: (?s:.*)\n  tree-8: binary"
    with pytest.raises(ValueError, match=listing):
        models.pretrained("tree-9")
    with pytest.raises(ValueError, match="seed only applies with random_init=True"):
        models.pretrained("tree-8", seed=1)
    control = models.pretrained("tree-8", random_init=True)
    assert control.searchlight["random_init"] and control.searchlight["name"] == "tree-8"
    fresh = models.build(models.task_of(control))  # the recipe's init seed (0)
    assert all(torch.equal(a, b) for a, b in zip(control.state_dict().values(), fresh.state_dict().values()))
    other = models.pretrained("tree-8", random_init=True, seed=1)
    assert not torch.equal(other.state_dict()["embed.weight"], control.state_dict()["embed.weight"])


@pytest.mark.parametrize("name", ["tree-8", "tree-8-1L", "tree-8-2L", "tree-8-3L", "tree-10", "tree-10-2L",
                                  "maze-4x4", "graph-10"])
def test_shipped_checkpoints_are_small_and_record_verified_accuracy(name):
    side = models.read_sidecar(models.CHECKPOINT_DIR / name)
    assert (models.CHECKPOINT_DIR / f"{name}.safetensors").stat().st_size <= 2_000_000
    extra = side["extra"]
    assert extra["verified_cpu"]["n"] >= 2000 and extra["heldout"]["n"] >= 2000
    score = extra["verified_cpu"][extra["score"]]
    assert score >= extra["bar"]
    model = models.pretrained(name)
    assert model.searchlight["name"] == name and not model.searchlight["random_init"]
