"""MazeEditor: click cells to open / close walls or move the origin and target, and watch the model re-solve
the maze live (its greedy path, and optionally what a probe decodes), after the procgen-tools maze editor.

The grid of buttons *is* the maze: a thick right / bottom border is a wall. Edits may leave the training
distribution (a maze with a loop or a closed-off region has a different number of passages); the editor
says so rather than forbidding it.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import torch

from toolkit import viz
from toolkit.activations.hooks import parse_hook
from toolkit.tasks import Maze
from toolkit.widgets._model import PLAIN_HINT, run_cache
from toolkit.widgets.base import Explorer
from toolkit.widgets.search_state import _hook_order, decode, normalise_probes

MODES = ("wall →", "wall ↓", "origin", "target")


class MazeEditor(Explorer):
    """Edit a maze and watch a maze model solve it.

    Args:
        model: a TransformerBridge trained on a ``tasks.MazeSearch`` task.
        data: a SearchDataset of that task to start from (``example`` picks the maze); None generates one.
        task: the MazeSearch task (default: ``data.task``, else rebuilt from the model).
        probes: optional ``{label: {layer_or_hook: probe}}`` for per-cell labels (``on_path``,
            ``dist_to_target``); decoded at the ``PATH`` token and drawn next to the model's path.

    Controls: ``mode`` (what a click does), ``probe`` and ``layer`` (when probes are given); the cell buttons
    (``explorer.cells[row][col]``) call :meth:`click`. Views: ``maze`` (image: the model's path as numbered
    cells over the maze, true shortest path in red; plus the probe's decoding) and ``info`` (HTML).
    """

    def __init__(self, model: Any, data: Any = None, *, example: int = 0, task: Any = None, probes: Any = None,
                 seed: int = 0):
        super().__init__()
        if isinstance(data, torch.Tensor):
            raise TypeError("MazeEditor needs a maze SearchDataset (tasks.MazeSearch(...).generate(n)); got a token "
                            "tensor" + PLAIN_HINT)
        if task is None:
            task = data.task if data is not None else _task_of(model)
        if not hasattr(task, "cell_names") or not hasattr(task, "size"):
            raise TypeError(f"MazeEditor needs a maze task (tasks.MazeSearch); got {type(task).__name__}")
        self.model, self.task = model, task
        if data is None:
            data = task.generate(1, seed=seed, split="test")
            example = 0
        if not 0 <= example < len(data):
            raise ValueError(f"example={example} is out of range for a dataset of {len(data)}")
        start = data[example].structure
        self.start = Maze(start.size, tuple(map(tuple, start.edges)), start.origin, start.target)
        self.maze = self.start
        self.probes = normalise_probes(probes) if probes is not None else {}
        for name in self.probes:
            lab = data.labels.get(name) if hasattr(data, "labels") else None
            if lab is not None and lab.values.shape[-1] != task.cells:
                raise ValueError(f"probe label {name!r} is not one value per cell; MazeEditor draws per-cell labels "
                                 "such as 'on_path' or 'dist_to_target'")
        self.kinds = {name: data.labels[name].kind if name in getattr(data, "labels", {}) else "regression"
                      for name in self.probes}
        self._fast = _fast(model)
        n = task.size
        self._control("mode", W.ToggleButtons(options=list(MODES), value=MODES[0], tooltips=[
            "open / close the wall to the right of the clicked cell", "open / close the wall below the clicked cell",
            "move the origin to the clicked cell", "move the target to the clicked cell"],
            style={"button_width": "62px"}), redraw=False)
        self.cells: list[list[W.Button]] = []
        for r in range(n):
            row = []
            for c in range(n):
                b = W.Button(description="", tooltip=task.cell_names[r * n + c],
                             layout=W.Layout(width="38px", height="38px", margin="0", padding="0"))
                b.add_class("searchlight-maze-cell")
                b.on_click(lambda _, r=r, c=c: self.click(r, c))
                row.append(b)
            self.cells.append(row)
        grid = W.GridBox([b for row in self.cells for b in row],
                         layout=W.Layout(grid_template_columns=f"repeat({n}, 38px)", grid_gap="0px",
                                         border="3px solid black", width=f"{38 * n + 6}px"))
        grid.add_class("searchlight-maze-grid")
        self.reset_button = W.Button(description="reset maze", icon="undo")
        self.reset_button.on_click(lambda _: self.reset())
        side = [W.Label("a click on a cell does:"), self.controls["mode"], grid, self.reset_button]
        if self.probes:
            names = list(self.probes)
            self._control("probe", W.Dropdown(options=names, value=names[0], description="probe"))
            hooks = sorted(self.probes[names[0]], key=_hook_order)
            self._control("layer", W.Dropdown(options=hooks, value=hooks[-1], description="layer"))
            self.controls["probe"].observe(self._set_layers, names="value")
            side += [self.controls["probe"], self.controls["layer"]]
        self._finish(W.HBox([W.VBox(side, layout=W.Layout(min_width="290px")),
                             W.VBox([self._image("maze"), self._html("info")])]))

    # ---------------------------------------------------------------- editing
    def click(self, row: int, col: int, mode: str | None = None) -> None:
        """Apply the current ``mode`` (or ``mode``) to cell ``(row, col)`` and re-run the model."""
        n = self.task.size
        if not (0 <= row < n and 0 <= col < n):
            raise ValueError(f"cell ({row},{col}) is outside the {n}x{n} maze")
        mode = mode or self.controls["mode"].value
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; valid modes: {list(MODES)}")
        v, m = row * n + col, self.maze
        if mode in ("wall →", "wall ↓"):
            u = v + 1 if mode == "wall →" else v + n
            if (mode == "wall →" and col == n - 1) or (mode == "wall ↓" and row == n - 1):
                self._note = f"({row},{col}) has no neighbour {'to the right' if mode == 'wall →' else 'below'}"
                self.refresh(changed="cell")
                return
            pair = {v, u}
            kept = tuple(e for e in m.edges if set(e) != pair)
            edges = kept if len(kept) < len(m.edges) else (*m.edges, (v, u))
            self.maze = Maze(n, edges, m.origin, m.target)
        elif mode == "origin":
            self.maze = Maze(n, m.edges, v, m.target if m.target != v else m.origin)
        else:
            self.maze = Maze(n, m.edges, m.origin if m.origin != v else m.target, v)
        self._note = ""
        self.refresh(changed="cell")

    def reset(self) -> None:
        """Back to the starting maze."""
        self.maze, self._note = self.start, ""
        self.refresh(changed="cell")

    def _set_layers(self, change: dict[str, Any]) -> None:
        hooks = sorted(self.probes[change["new"]], key=_hook_order)
        old = self.controls["layer"].value
        self._set_quiet("layer", options=hooks, value=old if old in hooks else hooks[-1])

    # ---------------------------------------------------------------- the model
    def prompt(self) -> torch.Tensor:
        """Token ids ``[prompt_len]`` of the edited maze, ending with ``PATH``."""
        t, m = self.task, self.maze
        words: list[str] = []
        for a, b in m.edges:
            words += [t.cell_names[a], t.cell_names[b]] + ([";"] if t.sep else [])
        words += ["ORIGIN", t.cell_names[m.origin], "TARGET", t.cell_names[m.target], "PATH"]
        return torch.tensor([t.vocab[w] for w in words], dtype=torch.long)

    @torch.no_grad()
    def solve(self) -> tuple[list[str], list[int]]:
        """Greedy generation from :meth:`prompt`: (generated tokens, the cells among them, in order)."""
        tokens = self.prompt()
        n_ctx = int(self.model.cfg.n_ctx)
        if len(tokens) >= n_ctx:
            raise ValueError(f"the edited maze needs {len(tokens)} prompt tokens but the model's context is {n_ctx}; "
                             "remove some passages (close walls)")
        words, cells = [], []
        vocab = self.task.vocab
        # one fixed shape [1, n_ctx] (causal: the padding after the cursor changes nothing before it); a new
        # sequence length per step made torch re-plan every matmul (measured ~100 ms per step)
        buf = torch.full((1, n_ctx), vocab.pad_id, dtype=torch.long)
        buf[0, : len(tokens)] = tokens
        cur = len(tokens)
        for _ in range(min(self.task.cells + 1, n_ctx - cur)):
            nxt = int(self._fast(buf)[0, cur - 1].argmax())
            word = vocab.tokens[nxt]
            words.append(word)
            buf[0, cur] = nxt
            cur += 1
            if word == "END":
                break
            if word in self.task.cell_names:
                cells.append(self.task.cell_names.index(word))
        return words, cells

    def verdict(self, cells: list[int]) -> str:
        """``"correct"`` (the shortest path), ``"valid"`` (a walkable path to the target), or what is wrong."""
        m = self.maze
        if not cells or cells[0] != m.origin:
            return "does not start at the origin"
        open_pairs = {frozenset(e) for e in m.edges}
        for a, b in zip(cells, cells[1:]):
            if frozenset((a, b)) not in open_pairs:
                return f"walks through a wall ({self.task.cell_names[a]} → {self.task.cell_names[b]})"
        if cells[-1] != m.target:
            return "does not reach the target"
        return "correct" if len(cells) == len(m.path) else "valid but not shortest"

    def probe_state(self) -> np.ndarray | None:
        """The selected probe's per-cell decoding at the ``PATH`` token (None without probes)."""
        if not self.probes:
            return None
        name, hook = self.controls["probe"].value, self.controls["layer"].value
        prompt = self.prompt()
        tokens = torch.full((1, int(self.model.cfg.n_ctx)), self.task.vocab.pad_id, dtype=torch.long)
        tokens[0, : len(prompt)] = prompt
        _, cache = run_cache(self.model, tokens, (parse_hook(hook)[1],))
        return decode(self.probes[name][hook], cache[hook][0, len(prompt) - 1], self.kinds[name])

    # ---------------------------------------------------------------- drawing
    def _paint_cells(self, path: list[int]) -> None:
        n, m = self.task.size, self.maze
        open_pairs = {frozenset(e) for e in m.edges}
        for r in range(n):
            for c in range(n):
                v = r * n + c
                b = self.cells[r][c]
                right = c < n - 1 and frozenset((v, v + 1)) not in open_pairs
                down = r < n - 1 and frozenset((v, v + n)) not in open_pairs
                b.layout.border_right = "4px solid black" if right else "1px solid #ddd"
                b.layout.border_bottom = "4px solid black" if down else "1px solid #ddd"
                b.layout.border_top = b.layout.border_left = "1px solid #ddd"
                step = path.index(v) if v in path else None
                b.description = "o" if v == m.origin else "x" if v == m.target else (str(step) if step else "")
                b.style.button_color = ("#7fc97f" if v == m.origin else "#f0027f" if v == m.target
                                        else "#fdc086" if step is not None else "white")

    def _draw(self) -> None:
        words, cells = self.solve()
        m = self.maze
        self.model_path, self.model_words = cells, words
        self.result = self.verdict(cells)
        self._paint_cells(cells)
        overlay = np.full(self.task.cells, np.nan)
        for i, v in enumerate(cells):
            overlay[v] = i
        example = _example(self.task, self.prompt(), m)
        state = self.probe_state()
        titles = [f"model: {self.result}"]
        if state is not None:  # two quantities (path step, probe output): a colour scale each
            name = self.controls["probe"].value
            titles.append(f"{name} decoded at PATH ({self.controls['layer'].value})")
            panels = self._figure("maze", (2, name), lambda: viz.TaskPanels(
                self.task, 2, width=7.4, height=2.9, shared=False, label=["model's step", name]))
            fig = panels.update([example, example], [overlay, state], titles)
        else:
            panel = self._figure("maze", 1, lambda: viz.TaskPanels(self.task, 1, width=3.7, height=2.9,
                                                                    label="model's step"))
            fig = panel.update([example], [overlay], titles)
        self._show("maze", fig)
        ood = []
        if len(m.edges) != self.task.cells - 1:
            ood.append(f"{len(m.edges)} passages (trained on exactly {self.task.cells - 1})")
        if m.distances(m.origin)[m.target] < 0:
            ood.append("the target is cut off from the origin")
        note = getattr(self, "_note", "")
        self.views["info"].value = (
            f"<div class='searchlight-maze-info'><b>model output:</b> <code>{' '.join(words)}</code><br>"
            f"<b>verdict:</b> <span class='searchlight-verdict'>{self.result}</span>; shortest path has "
            f"{len(m.path) - 1} steps"
            + (f"<br><span style='color:#b35806'>out of distribution: {'; '.join(ood)}</span>" if ood else "")
            + (f"<br><i>{note}</i>" if note else "") + "</div>")

    def _describe(self) -> str:
        m = self.maze
        names = self.task.cell_names
        extra = ""
        if self.probes:
            extra = f", probe={self.controls['probe'].value!r} at {self.controls['layer'].value!r}"
        return (f"{self.task.size}x{self.task.size}, {len(m.edges)} passages, origin={names[m.origin]}, "
                f"target={names[m.target]}, mode={self.controls['mode'].value!r}{extra}")


def _task_of(model: Any) -> Any:
    from toolkit.models import task_of

    return task_of(model)


def _fast(model: Any) -> Any:
    """A hook-free copy sharing the weights (much faster for token-by-token generation), else the model."""
    try:
        from toolkit.models import fast_module

        return fast_module(model).eval()
    except Exception:  # not a toolkit-built bridge: use it as is
        return model


def _example(task: Any, prompt: torch.Tensor, maze: Maze) -> Any:
    from toolkit.tasks.base import Example

    return Example(prompt, torch.zeros_like(prompt, dtype=torch.bool), len(prompt), maze)
