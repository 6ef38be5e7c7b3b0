"""Tiny transformers for search tasks: build, train, evaluate, save/load, and shipped checkpoints.

    from toolkit import tasks, models
    task = tasks.TreeSearch(n_nodes=8)
    model = models.build(task)                       # ~200k-parameter TransformerBridge
    history = models.train(model, task, models.TrainConfig(steps=2000))
    history.plot()                                   # learning curve (a matplotlib Figure)
    print(models.evaluate(model, task.generate(2000, seed=1, split="test")))
    models.save(model, "my-tree")                    # my-tree.safetensors + my-tree.json
    model = models.pretrained("tree-8")              # shipped checkpoint
    control = models.pretrained("tree-8", random_init=True)   # same architecture, untrained
"""

from toolkit.models.build import DEFAULT_ARCH, arch_for, build, check_bridge, fast_module, n_params, task_of
from toolkit.models.evaluate import EvalResult, evaluate, greedy_generate, num_threads, target_loss
from toolkit.models.io import load, read_sidecar, save
from toolkit.models.pretrained import CHECKPOINT_DIR, available, pretrained
from toolkit.models.train import History, TrainConfig, train

__all__ = [
    "CHECKPOINT_DIR",
    "DEFAULT_ARCH",
    "EvalResult",
    "History",
    "TrainConfig",
    "arch_for",
    "available",
    "build",
    "check_bridge",
    "evaluate",
    "fast_module",
    "greedy_generate",
    "load",
    "n_params",
    "num_threads",
    "pretrained",
    "read_sidecar",
    "save",
    "target_loss",
    "task_of",
    "train",
]
