"""On-disk activation stores: same tensors as in memory, lazy reads, fingerprints, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from toolkit import activations, models, tasks

HOOKS = ["blocks.0.hook_resid_pre", "resid_post", "blocks.1.attn.hook_pattern"]


@pytest.fixture(scope="module")
def setup():
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(300, seed=5)
    model = models.build(task)
    mem = activations.cache(model, data, hooks=HOOKS, positions="loss", batch_size=32, progress=False)
    return task, data, model, mem


def test_store_equals_memory_and_reads_lazily(setup, tmp_path):
    _, data, model, mem = setup
    disk = activations.cache(model, data, hooks=HOOKS, positions="loss", batch_size=32, store=tmp_path / "s",
                             shard_examples=64, progress=False)
    assert disk.on_disk and len(disk) == len(mem)
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == ["manifest.json", "rows.safetensors"] + [f"shard_{k:05d}.safetensors" for k in range(5)]
    for h in HOOKS[:1] + mem.hook_names:
        assert torch.equal(disk[h], mem[h])
    h = "blocks.2.hook_resid_post"
    lazy = disk.lazy(h)
    assert lazy.shape == (len(mem), 64)
    assert torch.equal(lazy[100:400], mem[h][100:400])  # spans shard boundaries
    idx = torch.tensor([len(mem) - 1, 0, 333, 334, 5])
    assert torch.equal(lazy[idx], mem[h][idx])
    assert torch.equal(torch.cat(list(disk.batches(h, batch_size=97))), mem[h])
    shuffled = torch.cat(list(disk.batches(h, batch_size=97, shuffle=True, seed=1)))
    assert shuffled.shape == mem[h].shape and not torch.equal(shuffled, mem[h])
    assert torch.equal(shuffled.sort(0).values, mem[h].sort(0).values)
    # reopen lazily with the data: labels align again
    again = activations.load(tmp_path / "s", data)
    assert torch.equal(again.labels("goal")[0], mem.labels("goal")[0])
    assert torch.equal(again.select(again.position == 17)[h], mem[h][mem.position == 17])
    with pytest.raises(ValueError, match="does not match"):
        activations.load(tmp_path / "s", data.task.generate(300, seed=6))


def test_rerun_skips_finished_shards_and_checks_fingerprint(setup, tmp_path):
    task, data, model, mem = setup
    path = tmp_path / "s"
    activations.cache(model, data, hooks=HOOKS, positions="loss", batch_size=32, store=path, shard_examples=64,
                      progress=False)
    stamp = {p.name: p.stat().st_mtime_ns for p in path.glob("shard_*")}
    activations.cache(model, data, hooks=HOOKS, positions="loss", batch_size=32, store=path, shard_examples=64,
                      progress=False)
    assert stamp == {p.name: p.stat().st_mtime_ns for p in path.glob("shard_*")}
    other = models.build(task, seed=1)
    with pytest.raises(ValueError, match="overwrite=True"):
        activations.cache(other, data, hooks=HOOKS, positions="loss", batch_size=32, store=path,
                          shard_examples=64, progress=False)
    redo = activations.cache(other, data, hooks=HOOKS, positions="loss", batch_size=32, store=path,
                             shard_examples=64, progress=False, overwrite=True)
    assert not torch.equal(redo["blocks.3.hook_resid_post"], mem["blocks.3.hook_resid_post"])
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an activation store"):
        activations.cache(model, data, hooks=HOOKS, store=tmp_path / "junk", progress=False)


SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from toolkit import activations, models, tasks
    torch.set_num_threads(int(sys.argv[2]))
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    data = task.generate(300, seed=5)
    model = models.build(task)
    from toolkit.activations.fast_forward import FastForward
    def slowed(run):  # slow each batch down so the parent can kill us mid-run (fast pass and bridge alike)
        def wrapper(*a, **k):
            time.sleep(0.15)
            return run(*a, **k)
        return wrapper
    FastForward.__call__ = slowed(FastForward.__call__)
    model.forward = slowed(model.forward)
    activations.cache(model, data, hooks={hooks!r}, positions="loss", batch_size=32, store=sys.argv[1],
                      shard_examples=64, progress=False, threads=1)
""").format(hooks=HOOKS)


@pytest.mark.slow  # a fresh interpreter imports torch + transformer_lens (~5-13 s on a loaded machine)
def test_survives_kill_and_resumes_to_identical_tensors(setup, tmp_path):
    _, data, model, _ = setup
    path = tmp_path / "store"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(script), str(path), "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (path / "shard_00001.safetensors").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the caching subprocess ended early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (path / "shard_00004.safetensors.abc123.tmp").write_bytes(b"half a shard")  # as if killed mid-write
    manifest = json.loads((path / "manifest.json").read_text())
    done = sorted(p.name for p in path.glob("shard_*.safetensors"))
    assert not manifest["complete"] and 2 <= len(done) < 5, done
    with pytest.raises(ValueError, match="incomplete"):
        activations.load(path)
    resumed = activations.cache(model, data, hooks=HOOKS, positions="loss", batch_size=32, store=path,
                                shard_examples=64, progress=False)
    fresh = activations.cache(model, data, hooks=HOOKS, positions="loss", batch_size=32, progress=False)
    for h in fresh.hook_names:
        assert torch.equal(resumed[h], fresh[h]), h
    assert not list(path.glob("*.tmp"))
