"""The contract every search task follows: vocabulary, dataset, labels, task.

Conventions used across the whole toolkit (models, activations, probes, unsupervised, viz):

* ``tokens``     LongTensor ``[n, seq]``; every example is padded with ``vocab.pad_id`` to ``task.seq_len``.
* ``loss_mask``  BoolTensor ``[n, seq]``; True where the *token at that position* is a training target
  (it is predicted from the position before). Position 0 is never a target. The model's loss is
  ``CE(logits[:, :-1], tokens[:, 1:])`` averaged over ``loss_mask[:, 1:]``.
* ``prompt_len`` LongTensor ``[n]``; tokens ``[:prompt_len]`` are given, the rest is generated greedily.
* a :class:`Label` lives at some positions (``mask [n, seq]``) and has ``values [n, seq, *shape]``;
  values at positions outside the mask are meaningless (filled with ``fill``).
* every label carries ``baseline_features [n, seq, f]``: the trivial information a probe must beat
  (e.g. a one-hot of the current token, or of the target cell). A probe fit on these features gives the
  label's *trivial baseline* score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from toolkit._threads import one_thread  # noqa: F401  (re-exported for the task modules)

LabelKind = Literal["binary", "multiclass", "multilabel", "regression"]


class Vocab:
    """A fixed list of string tokens.

    ``to_str`` turns ids into a space-separated string (padding dropped unless ``keep_pad``);
    ``from_str`` is its inverse and raises ``ValueError`` naming the unknown token.
    """

    def __init__(self, tokens: Sequence[str], pad: str = "PAD"):
        tokens = list(tokens)
        if len(set(tokens)) != len(tokens):
            dupes = sorted({t for t in tokens if tokens.count(t) > 1})
            raise ValueError(f"vocabulary has duplicate tokens: {dupes}")
        if pad not in tokens:
            raise ValueError(f"pad token {pad!r} must be in the vocabulary")
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.pad = pad
        self.pad_id: int = self.index[pad]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def __getitem__(self, token: str) -> int:
        try:
            return self.index[token]
        except KeyError:
            raise KeyError(f"unknown token {token!r}; the vocabulary has {len(self)} tokens, e.g. "
                           f"{self.tokens[: min(8, len(self))]}") from None

    def to_str(self, tokens: torch.Tensor | Sequence[int], keep_pad: bool = False) -> str | list[str]:
        """``[seq]`` -> one string; ``[n, seq]`` -> a list of strings."""
        t = torch.as_tensor(tokens)
        if t.ndim == 2:
            return [self.to_str(row, keep_pad) for row in t]  # type: ignore[misc]
        if t.ndim != 1:
            raise ValueError(f"to_str expects a [seq] or [n, seq] tensor, got shape {tuple(t.shape)}")
        words = [self.tokens[int(i)] for i in t if keep_pad or int(i) != self.pad_id]
        return " ".join(words)

    def from_str(self, text: str) -> torch.Tensor:
        """Space-separated tokens -> LongTensor ``[seq]`` (no padding added)."""
        ids = []
        for word in text.split():
            if word not in self.index:
                raise ValueError(f"unknown token {word!r} in {text[:60]!r}; valid tokens: {self.tokens}")
            ids.append(self.index[word])
        return torch.tensor(ids, dtype=torch.long)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "pad": self.pad}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        return cls(d["tokens"], pad=d["pad"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens and self.pad == other.pad

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {' '.join(self.tokens[:12])}{' ...' if len(self) > 12 else ''})"


@dataclass
class Label:
    """One ground-truth quantity of the search state, aligned to token positions.

    Attributes:
        name: e.g. ``"parent"``, ``"ancestor_2"``, ``"dist_to_target"``.
        kind: ``binary`` / ``multiclass`` (values are class ids) / ``multilabel`` (values ``[..., K]`` 0/1) /
            ``regression`` (float values).
        values: ``[n, seq]`` (binary, multiclass, regression) or ``[n, seq, K]`` (multilabel, or a
            per-cell regression target such as a distance map).
        mask: BoolTensor ``[n, seq]``: positions where the label is defined *and computable* from the tokens
            up to and including that position (a causal model can only know it there).
        n_classes: classes for multiclass, ``K`` for multilabel, else None.
        baseline_features: float ``[n, seq, f]``: the trivial information a probe must beat.
        baseline_name: what those features are (``"current token"``, ``"target cell"``).
        class_names: optional names for the classes / the K outputs.
        description: one sentence for tables and tooltips.
    """

    name: str
    kind: LabelKind
    values: torch.Tensor
    mask: torch.Tensor
    n_classes: int | None = None
    baseline_features: torch.Tensor | None = None
    baseline_name: str = "current token"
    class_names: list[str] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.mask.dtype != torch.bool:
            raise TypeError(f"label {self.name!r}: mask must be bool, got {self.mask.dtype}")
        if tuple(self.values.shape[:2]) != tuple(self.mask.shape):
            raise ValueError(f"label {self.name!r}: values {tuple(self.values.shape)} do not start with "
                             f"mask shape {tuple(self.mask.shape)}")

    def rows(self) -> torch.Tensor:
        """Values at the masked positions, in row-major (example, position) order: ``[n_rows, *shape]``."""
        return self.values[self.mask]

    def index(self, idx: int | slice | torch.Tensor) -> Label:
        """The same label restricted to some examples."""
        bf = None if self.baseline_features is None else self.baseline_features[idx]
        return Label(self.name, self.kind, self.values[idx], self.mask[idx], self.n_classes, bf,
                     self.baseline_name, self.class_names, self.description)


@dataclass
class Example:
    """One example: the tensors of a dataset row plus task-specific structure (tree, maze, graph)."""

    tokens: torch.Tensor  # [seq]
    loss_mask: torch.Tensor  # [seq]
    prompt_len: int
    structure: Any  # task-specific: a Tree, a Maze, a Graph
    index: int = 0

    def __repr__(self) -> str:
        return f"Example(index={self.index}, prompt_len={self.prompt_len}, structure={self.structure!r})"


class LazyStructures(Sequence):
    """Per-example structure objects built on first access from per-example numpy arrays.

    ``make(**{key: array[i]})`` builds example ``i``'s structure; indexing with a slice / index array returns
    another ``LazyStructures`` (nothing is built), so generating large datasets stays fast.
    """

    def __init__(self, make: Callable[..., Any], arrays: dict[str, np.ndarray]):
        self.make, self.arrays = make, arrays
        self._n = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, int | np.integer):
            if not -self._n <= idx < self._n:
                raise IndexError(f"structure {idx} out of range for {self._n} examples")
            return self.make(**{k: v[int(idx) % self._n] for k, v in self.arrays.items()})
        sel = np.arange(self._n)[idx] if isinstance(idx, slice) else np.asarray(idx, dtype=np.int64)
        return LazyStructures(self.make, {k: v[sel] for k, v in self.arrays.items()})

    def __repr__(self) -> str:
        return f"LazyStructures(n={self._n})"


@dataclass
class SearchDataset:
    """A batch of generated examples with their ground truth.

    ``data[i]`` -> :class:`Example`; ``data[a:b]`` or ``data[index_tensor]`` -> a smaller SearchDataset.
    """

    task: Any  # the Task that generated it
    tokens: torch.Tensor  # [n, seq] long
    loss_mask: torch.Tensor  # [n, seq] bool
    prompt_len: torch.Tensor  # [n] long
    labels: dict[str, Label]
    structures: Sequence[Any]  # per example: the task's structure object (a list or LazyStructures)
    seed: int | None = None
    meta: dict[str, torch.Tensor] = field(default_factory=dict)  # per-example [n] extras, e.g. path length

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, idx: int | slice | torch.Tensor | Sequence[int]) -> Example | SearchDataset:
        """An int gives an Example; a slice, index list / tensor or boolean mask ``[n]`` gives a SearchDataset."""
        if isinstance(idx, torch.Tensor | np.ndarray) and idx.ndim == 0:
            idx = int(idx)
        if isinstance(idx, int | np.integer):
            idx = int(idx)
            n = len(self)
            if not -n <= idx < n:
                raise IndexError(f"example {idx} out of range for a dataset of {n}")
            i = idx % n
            return Example(self.tokens[i], self.loss_mask[i], int(self.prompt_len[i]), self.structures[i], i)
        if isinstance(idx, slice):
            sel = torch.arange(len(self))[idx]
        else:
            sel = torch.as_tensor(idx)
            if sel.dtype == torch.bool:
                if sel.shape != (len(self),):
                    raise IndexError(f"a boolean mask must have shape ({len(self)},), got {tuple(sel.shape)}")
                sel = torch.nonzero(sel).flatten()
            sel = sel.long()
        return SearchDataset(
            self.task, self.tokens[sel], self.loss_mask[sel], self.prompt_len[sel],
            {k: v.index(sel) for k, v in self.labels.items()},
            self.structures[sel.numpy()] if isinstance(self.structures, LazyStructures)
            else [self.structures[int(i)] for i in sel], self.seed,
            {k: v[sel] for k, v in self.meta.items()},
        )

    def label(self, name: str) -> Label:
        if name not in self.labels:
            raise KeyError(f"no label {name!r}; this dataset has: {sorted(self.labels)}")
        return self.labels[name]

    def strings(self) -> list[str]:
        return self.task.vocab.to_str(self.tokens)

    def __repr__(self) -> str:
        return (f"SearchDataset({self.task.name}, n={len(self)}, seq={self.tokens.shape[1]}, "
                f"labels={sorted(self.labels)})")


@dataclass
class Candidates:
    """The moves a task offers at each decision point, for the search signatures (:mod:`toolkit.signatures`).

    A *decision point* is a position whose next token is a move the model picks among several candidates (the
    children of the current tree node, the open cells next to the current maze cell). Shapes (``K`` = the most
    candidates any decision point has):

    Attributes:
        decision: BoolTensor ``[n, seq]``: the decision points (the token at ``pos + 1`` is the chosen move).
        ids: LongTensor ``[n, seq, K]``: candidate token ids, padded with -1 (all -1 off the decision points).
        score: FloatTensor ``[n, seq, K]``: each candidate's score, lower is better (e.g. the distance to the goal
            after taking that move); NaN where ``ids`` is -1.
        chosen: LongTensor ``[n, seq]``: index into ``K`` of the correct move (the next token), -1 off the
            decision points.
        baseline_features: float ``[n, seq, f]``: what a model knows without reading the structure (the current
            token, and a lookup table of the goal token and the position); a probe must beat a probe on these.
        baseline_name, score_name: short descriptions for reports.
    """

    decision: torch.Tensor
    ids: torch.Tensor
    score: torch.Tensor
    chosen: torch.Tensor
    baseline_features: torch.Tensor
    baseline_name: str = "current token + (goal token x position)"
    score_name: str = "distance to the goal after the move"

    def __post_init__(self) -> None:
        n, seq = self.decision.shape
        if self.ids.shape[:2] != (n, seq) or self.score.shape != self.ids.shape or self.chosen.shape != (n, seq):
            raise ValueError(f"Candidates: decision {tuple(self.decision.shape)}, ids {tuple(self.ids.shape)}, "
                             f"score {tuple(self.score.shape)}, chosen {tuple(self.chosen.shape)} do not line up")
        picked = self.chosen[self.decision]
        if bool((picked < 0).any()):
            raise ValueError("Candidates: every decision point needs its chosen move among its candidates")

    @property
    def k(self) -> int:
        return self.ids.shape[2]

    def index(self, idx: Any) -> Candidates:
        """The same candidates restricted to some examples."""
        return Candidates(self.decision[idx], self.ids[idx], self.score[idx], self.chosen[idx],
                          self.baseline_features[idx], self.baseline_name, self.score_name)


def lookup_features(tokens: torch.Tensor, goal: torch.Tensor, n_goals: int, vocab_size: int) -> torch.Tensor:
    """Baseline ``[n, seq, vocab_size + n_goals * seq]``: one-hot current token ⊕ one-hot (goal, position) pair.

    ``goal [n]`` in ``0..n_goals-1``. A linear probe on these features can memorise any table of (goal,
    position) -> value, i.e. everything a model that never reads the structure could know."""
    n, seq = tokens.shape
    feats = torch.zeros(n, seq, vocab_size + n_goals * seq, dtype=torch.float32)
    feats.scatter_(2, tokens.unsqueeze(-1), 1.0)
    pair = vocab_size + goal.long()[:, None] * seq + torch.arange(seq)[None, :]
    feats.scatter_(2, pair.unsqueeze(-1), 1.0)
    return feats


class Task:
    """Base class: a search task with a vocabulary, a generator, a solver and a renderer.

    Subclasses set ``name`` and implement ``vocab``, ``seq_len``, ``generate``, ``solve``, ``render``
    and ``spec`` (a JSON-able dict: ``"type"`` plus the constructor arguments; ``tasks.from_spec`` rebuilds it).
    """

    name: str = "task"

    @property
    def vocab(self) -> Vocab:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def seq_len(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(self, n: int, seed: int = 0, split: str = "train") -> SearchDataset:  # pragma: no cover
        raise NotImplementedError

    def solve(self, example: Example) -> Any:  # pragma: no cover
        raise NotImplementedError

    def render(self, example: Example, overlay: Any = None, ax: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def candidates(self, data: SearchDataset) -> Candidates:
        """The candidate moves at every decision point (see :class:`Candidates`); tasks without next-move
        choices raise ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} defines no next-move candidates; the search signatures "
                                  "need a task whose answer is a sequence of moves (TreeSearch, MazeSearch, "
                                  "TreeLookup) or a Task subclass that implements candidates(data)")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "type")
        return f"{type(self).__name__}({args})"


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Validate an integer hyper-parameter; the error names the parameter and its valid range."""
    rng = f"[{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer in {rng}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name}={value} is out of range; valid range: {rng}")
    return value


LabelFn = Callable[[SearchDataset], Label]

SPLITS = {"train": 0, "test": 1, "heldout": 2}


@dataclass
class Solution:
    """What a reference solver returns.

    Attributes:
        path: the answer as node / cell ids (trees: root..goal labels; mazes: origin..target cells;
            graphs: one bool per query, True = reachable).
        trace: the search, one entry per step. Trees: the backward-chaining sequence
            ``[goal, parent(goal), ..., root]``; mazes / graphs: dicts ``{"frontier": [...], "visited": [...]}``
            of a breadth-first search, one per BFS layer.
        algorithm: ``"backward-chaining"`` or ``"bfs"``.
    """

    path: list[Any]
    trace: list[Any]
    algorithm: str = ""


def make_rng(seed: int, split: str, salt: int) -> np.random.Generator:
    """A platform-independent generator for ``(task salt, split, seed)``; distinct splits get disjoint streams."""
    check_int("seed", seed, 0)
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; use one of {sorted(SPLITS)}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([salt, SPLITS[split], seed])))


def own_masks(labels: dict[str, Label]) -> dict[str, Label]:
    """Give every label its own contiguous mask, so editing one label's mask never touches another's.

    (Values and baseline features may be shared or broadcast views: treat them as read-only.)"""
    for label in labels.values():
        label.mask = label.mask.clone(memory_format=torch.contiguous_format)
    return labels




def token_position_features(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The trivial baseline ``[n, seq, vocab_size + seq]``: one-hot current token ⊕ one-hot position (float32)."""
    n, seq = tokens.shape
    feats = torch.zeros(n, seq, vocab_size + seq, dtype=torch.float32)
    feats.scatter_(2, tokens.unsqueeze(-1), 1.0)
    feats[:, torch.arange(seq), vocab_size + torch.arange(seq)] = 1.0
    return feats
