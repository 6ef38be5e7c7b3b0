"""models.train: it learns, is seeded, stops early, survives Ctrl-C, plots without pyplot, checks its inputs."""

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from toolkit import models, tasks

SMALL = {"d_model": 32, "n_layers": 2, "d_mlp": 64}
QUICK = {"steps": 40, "batch_size": 32, "warmup_steps": 5, "eval_every": 20, "eval_size": 64, "pool_size": 2000}


@pytest.fixture(scope="module")
def tree():
    return tasks.TreeSearch(n_nodes=5, max_path=2)


def test_training_lowers_the_loss_and_records_history(tree):
    model = models.build(tree, **SMALL)
    hist = models.train(model, tree, models.TrainConfig(**QUICK, lr=1e-2), progress=False)
    assert hist.steps_done == 40 and len(hist.loss) == 40
    assert sum(hist.loss[-5:]) / 5 < 0.8 * sum(hist.loss[:5]) / 5
    assert [e["step"] for e in hist.evals] == [20, 40]
    assert set(hist.final) >= {"exact", "token", "by_difficulty", "elapsed_s"}
    assert not model.training and not model.searchlight["random_init"]
    assert model.searchlight["training"]["steps"] == 40
    assert "40 steps" in repr(hist)


def test_training_is_reproducible_from_the_seed(tree):
    losses = []
    for _ in range(2):
        model = models.build(tree, **SMALL)
        losses.append(models.train(model, tree, progress=False, **{**QUICK, "steps": 12, "eval_every": 12}).loss)
    assert losses[0] == losses[1]
    model = models.build(tree, **SMALL)
    other = models.train(model, tree, progress=False, **{**QUICK, "steps": 12, "eval_every": 12, "seed": 1}).loss
    assert other != losses[0]


def test_fresh_data_and_bridge_training_also_work(tree):
    model = models.build(tree, **SMALL)
    hist = models.train(model, tree, progress=False, **{**QUICK, "steps": 6, "data": "fresh", "fast": False})
    assert hist.steps_done == 6 and all(torch.isfinite(torch.tensor(hist.loss)))


def test_early_stop_at_target_accuracy():
    model = models.pretrained("tree-8")
    task = models.task_of(model)
    hist = models.train(model, task, progress=False, steps=100, eval_every=3, eval_size=128, pool_size=1000,
                        lr=1e-5, warmup_steps=0, target_accuracy=0.9)
    assert hist.stopped_early and hist.steps_done == 3 and hist.final["exact"] >= 0.9


class InterruptingTree:
    """A task whose data stream raises KeyboardInterrupt on the n-th batch (like Ctrl-C mid-training)."""

    def __init__(self, task, at):
        self.task, self.at, self.calls = task, at, 0
        self.vocab, self.seq_len, self.spec = task.vocab, task.seq_len, task.spec

    def generate(self, n, seed=0, split="train"):
        if split == "train":
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
        return self.task.generate(n, seed=seed, split=split)


def test_ctrl_c_returns_the_model_trained_so_far(tree, capsys):
    model = models.build(tree, **SMALL)
    before = model.state_dict()["blocks.0.attn.q.weight"].clone()
    hist = models.train(model, InterruptingTree(tree, at=6), progress=False, **{**QUICK, "data": "fresh"})
    assert hist.interrupted and hist.steps_done == 5
    assert "interrupted at step 5/40" in capsys.readouterr().out
    assert hist.final["step"] == 5  # evaluated where it stopped
    assert not torch.equal(model.state_dict()["blocks.0.attn.q.weight"], before)
    assert model.searchlight["training"]["interrupted"]


def test_plot_returns_a_figure_without_pyplot_state(tree):
    model = models.build(tree, **SMALL)
    hist = models.train(model, tree, progress=False, **{**QUICK, "steps": 10, "eval_every": 5})
    open_before = plt.get_fignums()
    fig = hist.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert plt.get_fignums() == open_before


def test_inputs_are_checked(tree):
    model = models.build(tree, **SMALL)
    with pytest.raises(ValueError, match="vocabulary differs"):
        models.train(model, tasks.TreeSearch(n_nodes=6, max_path=2), progress=False, steps=1)
    with pytest.raises(ValueError, match="TrainConfig.steps must be a positive integer"):
        models.TrainConfig(steps=0)
    with pytest.raises(ValueError, match="'fresh' or 'pool'"):
        models.TrainConfig(data="stream")
    with pytest.raises(TypeError):
        models.train(model, tree, progress=False, stepz=3)


def test_learning_rate_schedule():
    cfg = models.TrainConfig(steps=1000, warmup_steps=100, lr=1e-2, min_lr_frac=0.1)
    assert cfg.lr_at(0) == pytest.approx(1e-4)
    assert cfg.lr_at(99) == pytest.approx(1e-2)
    assert cfg.lr_at(550) == pytest.approx(0.55e-2)
    assert cfg.lr_at(1000) == pytest.approx(1e-3)
    assert cfg.lr_at(200, progress=1.0) == pytest.approx(1e-3)


def test_time_budget_ends_training():
    tree = tasks.TreeSearch(n_nodes=5, max_path=2)
    model = models.build(tree, **SMALL)
    hist = models.train(model, tree, progress=False, **{**QUICK, "steps": 10**6, "max_seconds": 0.5})
    assert 0 < hist.steps_done < 10**6 and hist.final["step"] == hist.steps_done


@pytest.mark.slow
def test_pool_does_not_depend_on_the_number_of_workers(tree):
    from toolkit.models.train import generate_pool

    one = generate_pool(tree, 2500, seed=11, workers=1, chunk=1000)
    two = generate_pool(tree, 2500, seed=11, workers=2, chunk=1000)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
