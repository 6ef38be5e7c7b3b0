"""models.evaluate: the greedy rule (own outputs fed back, true tokens kept at non-targets), teacher forcing,
difficulty breakdown, hooks honoured, and the shipped tree-8 against its random-init control."""

import pytest
import torch

from toolkit import models, tasks
from toolkit.tasks.base import SearchDataset

V = 10


class NextIsPlusOne(torch.nn.Module):
    """Predicts ``last token + 1 (mod V)`` at every position."""

    def forward(self, tokens):
        return torch.nn.functional.one_hot((tokens + 1) % V, V).float()


def dataset(rows, masks, prompt_len, difficulty):
    return SearchDataset(task=None, tokens=torch.tensor(rows), loss_mask=torch.tensor(masks, dtype=torch.bool),
                         prompt_len=torch.tensor(prompt_len), labels={}, structures=[None] * len(rows),
                         meta={"difficulty": torch.tensor(difficulty)})


def test_greedy_feeds_back_own_outputs_and_keeps_true_tokens_at_non_targets():
    rows = [[0, 1, 2, 3, 4],   # all right
            [0, 1, 2, 5, 6],   # wrong at 3; teacher forcing recovers at 4, greedy does not
            [0, 1, 2, 7, 8]]   # position 3 is not a target: greedy keeps the true 7, then 8 is right
    masks = [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 0, 1]]
    data = dataset(rows, masks, [2, 2, 2], [1, 2, 2])
    res = models.evaluate(NextIsPlusOne(), data)
    assert res.correct.tolist() == [True, False, True]
    assert res.predictions[1].tolist() == [0, 1, 2, 3, 4]
    assert res.predictions[2].tolist() == [0, 1, 2, 7, 8]
    assert res.exact == pytest.approx(2 / 3)
    assert res.exact_teacher_forced == pytest.approx(2 / 3)
    assert res.token == pytest.approx(7 / 8)  # teacher forcing: only position 3 of row 1 is wrong
    assert res.token_greedy == pytest.approx(6 / 8)  # greedy: positions 3 and 4 of row 1 are wrong
    assert res.first_token == 1.0
    assert res.by_difficulty[1] == {"n": 1, "exact": 1.0, "token_greedy": 1.0}
    assert res.by_difficulty[2]["n"] == 2 and res.by_difficulty[2]["exact"] == pytest.approx(0.5)
    assert "difficulty 2" in str(res) and res.to_dict()["by_difficulty"]["2"]["n"] == 2


def test_greedy_generation_is_batched_consistently():
    rows = [[0, 1, 2, 3, 4], [0, 1, 2, 5, 6], [0, 1, 2, 7, 8]] * 5
    masks = [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 0, 1]] * 5
    data = dataset(rows, masks, [2] * 15, [1] * 15)
    one = models.evaluate(NextIsPlusOne(), data, batch_size=4)
    assert torch.equal(one.predictions, models.evaluate(NextIsPlusOne(), data).predictions)


def test_evaluate_rejects_wrong_inputs():
    tree = tasks.TreeSearch(n_nodes=8, max_path=4)
    with pytest.raises(TypeError, match="needs a SearchDataset"):
        models.evaluate(NextIsPlusOne(), tree.generate(2).tokens)
    small = models.build(tasks.TreeSearch(n_nodes=3, max_path=2), n_layers=1, d_model=16, d_mlp=32)
    with pytest.raises(ValueError, match="vocabulary has only"):
        models.evaluate(small, tree.generate(4))


@pytest.fixture(scope="module")
def tree8():
    return models.pretrained("tree-8")


def test_shipped_tree8_solves_fresh_examples_and_its_control_does_not(tree8):
    task = models.task_of(tree8)
    data = task.generate(200, seed=31337, split="test")
    trained = models.evaluate(tree8, data)
    control = models.evaluate(models.pretrained("tree-8", random_init=True), data)
    assert trained.exact >= 0.97, trained
    assert control.exact < 0.05, control
    assert set(trained.by_difficulty) == {1, 2, 3, 4}


def test_hooks_on_the_bridge_are_honoured(tree8):
    data = models.task_of(tree8).generate(200, seed=5, split="test")

    def zero(resid, hook):
        return torch.zeros_like(resid)

    with tree8.hooks(fwd_hooks=[("blocks.1.hook_resid_post", zero)]):
        ablated = models.evaluate(tree8, data)
    assert ablated.exact < 0.5
    assert models.evaluate(tree8, data).exact > 0.95  # hooks removed again
