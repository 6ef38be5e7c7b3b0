"""Train a model on a search task: AdamW, warm-up + cosine, gradient clipping, early stop, Ctrl-C safe.

The recipe defaults are the ones that worked on the tree task (lr 3e-3, betas (0.9, 0.99), weight decay 0.01,
batch 128, grad clip 1.0); lr 1e-3 learned nothing in 2k steps there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from toolkit._result import frame, plain
from toolkit.models.build import fast_module, meta, task_info
from toolkit.models.evaluate import evaluate, num_threads, target_loss

# Seeds for the data streams, far apart so training, evaluation and held-out sets never share a seed.
TRAIN_SEED_BASE = 1_000_000
EVAL_SEED_BASE = 900_000_000


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`.

    ``data="pool"`` pre-generates ``pool_size`` examples once (in ``workers`` processes) and samples batches
    from them; ``data="fresh"`` draws a new batch from ``task.generate`` every step. ``target_accuracy`` stops
    training at the first evaluation whose greedy exact accuracy reaches it. ``max_seconds`` is a time budget:
    the cosine schedule then runs on ``max(step / steps, elapsed / max_seconds)`` and training ends when either
    reaches 1 (results then depend on the machine's speed). ``fast=True`` trains through a hook-free module that
    shares the bridge's weights (same function, less overhead). ``threads``: torch CPU threads while training
    (restored afterwards; None keeps torch's setting) — one thread was 7-13x faster than two per step on the
    shared, loaded 2-core machine, two were ~1.7x faster on an idle one.
    """

    steps: int = 2000
    batch_size: int = 128
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    data: str = "pool"
    pool_size: int = 100_000
    workers: int = 1
    eval_every: int = 250
    eval_size: int = 512
    target_accuracy: float | None = None
    max_seconds: float | None = None
    device: str | None = None
    fast: bool = True
    threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_size", "pool_size", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.data not in ("fresh", "pool"):
            raise ValueError(f"TrainConfig.data must be 'fresh' or 'pool', got {self.data!r}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError(f"TrainConfig.target_accuracy must be in (0, 1], got {self.target_accuracy}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"TrainConfig.max_seconds must be > 0 (or None), got {self.max_seconds}")
        self.betas = tuple(self.betas)  # type: ignore[assignment]

    def lr_at(self, step: int, progress: float | None = None) -> float:
        """Learning rate at ``step`` (0-based): linear warm-up over ``warmup_steps``, then cosine down to
        ``min_lr_frac * lr``. ``progress`` in [0, 1] overrides ``step / steps`` for the cosine part."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if progress is None:
            progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        progress = min(1.0, max(0.0, progress))
        return self.lr * (self.min_lr_frac + (1 - self.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class History:
    """What happened during :func:`train`.

    ``loss[i]`` is the training loss at step ``i + 1``; ``evals`` holds one dict per evaluation
    (``step``, ``exact``, ``token``, ``loss``, ``by_difficulty``, ``elapsed_s``).
    """

    config: TrainConfig
    loss: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    steps_done: int = 0
    wall_s: float = 0.0
    stopped_early: bool = False
    interrupted: bool = False

    @property
    def final(self) -> dict[str, Any] | None:
        """The last evaluation, or None."""
        return self.evals[-1] if self.evals else None

    def to_dict(self) -> dict[str, Any]:
        return plain({"config": asdict(self.config), "loss": self.loss, "evals": self.evals,
                      "steps_done": self.steps_done, "wall_s": self.wall_s, "stopped_early": self.stopped_early,
                      "interrupted": self.interrupted})

    def table(self) -> Any:
        """One row per evaluation: ``step, exact, token, loss, elapsed_s`` (``by_difficulty`` left out)."""
        cols = ["step", "exact", "token", "loss", "elapsed_s"]
        return frame([{c: e.get(c) for c in cols} for e in self.evals], cols)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able record kept on the model and in checkpoints."""
        return {"steps": self.steps_done, "wall_s": round(self.wall_s, 1), "config": asdict(self.config),
                "final_eval": self.final, "stopped_early": self.stopped_early, "interrupted": self.interrupted}

    def __repr__(self) -> str:
        acc = f", exact {self.final['exact']:.1%} at step {self.final['step']}" if self.final else ""
        flags = " (interrupted)" if self.interrupted else " (stopped early)" if self.stopped_early else ""
        return f"History({self.steps_done} steps in {self.wall_s:.0f} s{acc}{flags})"

    def plot(self, smooth: int = 20) -> Any:
        """Learning curve: training loss (left) and held-out greedy exact accuracy by difficulty (right).

        Returns a ``matplotlib.figure.Figure`` (no pyplot state is touched; it displays in notebooks).
        """
        from toolkit._figure import NotebookFigure

        fig = NotebookFigure(figsize=(9, 3.2), layout="constrained")
        ax_loss, ax_acc = fig.subplots(1, 2)
        if self.loss:
            loss = torch.tensor(self.loss)
            k = max(1, min(smooth, len(loss)))
            smoothed = loss.unfold(0, k, 1).mean(1) if len(loss) >= k else loss
            ax_loss.plot(range(1, len(loss) + 1), loss.numpy(), color="0.8", lw=0.8, label="per step")
            ax_loss.plot(range(k, k + len(smoothed)), smoothed.numpy(), color="C0", label=f"mean of {k}")
            ax_loss.set_yscale("log")
            ax_loss.legend(frameon=False)
        ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
        if self.evals:
            steps = [e["step"] for e in self.evals]
            ax_acc.plot(steps, [e["exact"] for e in self.evals], "o-", color="k", label="all")
            keys = sorted({k for e in self.evals for k in e["by_difficulty"]}, key=lambda s: float(s))
            for i, key in enumerate(keys):
                pts = [(e["step"], e["by_difficulty"][key]["exact"]) for e in self.evals if key in e["by_difficulty"]]
                ax_acc.plot(*zip(*pts), ".-", color=f"C{i}", lw=1, label=f"difficulty {key}")
            ax_acc.legend(frameon=False, fontsize="small")
        ax_acc.set(xlabel="step", ylabel="exact (greedy)", title="held-out accuracy", ylim=(-0.02, 1.02))
        return fig


def _gen_chunk(spec: dict[str, Any], n: int, seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from toolkit import tasks

    d = tasks.from_spec(spec).generate(n, seed=seed, split=split)
    return d.tokens, d.loss_mask


def generate_pool(task: Any, n: int, seed: int, split: str = "train", workers: int = 1, progress: bool = False,
                  chunk: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples as ``(tokens [n, seq], loss_mask [n, seq])``; chunk ``i`` uses seed ``seed + i``, so the
    result does not depend on ``workers`` (processes used to generate the chunks)."""
    sizes = [min(chunk, n - start) for start in range(0, n, chunk)]
    bar = tqdm(total=n, desc="generating data", disable=not progress, leave=False)
    out: list[Any] = [None] * len(sizes)
    try:
        if workers > 1 and len(sizes) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            spec = task.spec()
            with ProcessPoolExecutor(min(workers, len(sizes)), mp_context=mp.get_context("spawn")) as ex:
                futures = {ex.submit(_gen_chunk, spec, k, seed + i, split): i for i, k in enumerate(sizes)}
                for fut, i in futures.items():
                    out[i] = fut.result()
                    bar.update(sizes[i])
        else:
            for i, k in enumerate(sizes):
                d = task.generate(k, seed=seed + i, split=split)
                out[i] = (d.tokens, d.loss_mask)
                bar.update(k)
    finally:
        bar.close()
    return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])


def _sampler(task: Any, cfg: TrainConfig, device: torch.device, progress: bool):
    """``sample(step) -> (tokens [b, seq], loss_mask [b, seq])`` on ``device``."""
    base = TRAIN_SEED_BASE * (cfg.seed + 1)
    if cfg.data == "fresh":
        def fresh(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            d = task.generate(cfg.batch_size, seed=base + step, split="train")
            return d.tokens.to(device), d.loss_mask.to(device)
        return fresh
    tokens, mask = generate_pool(task, cfg.pool_size, base, "train", cfg.workers, progress)
    tokens, mask = tokens.to(device), mask.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)

    def pooled(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(tokens), (cfg.batch_size,), generator=gen).to(device)
        return tokens[idx], mask[idx]
    return pooled


def train(model: Any, task: Any, config: TrainConfig | None = None, progress: bool = True,
          eval_data: Any = None, callback: Callable[[dict[str, Any]], None] | None = None,
          **overrides: Any) -> History:
    """Train ``model`` (in place) on ``task`` and return its :class:`History`.

    Args:
        model: a bridge from :func:`toolkit.models.build` (or load / pretrained).
        task: the task to train on; its vocabulary must match the model's.
        config: a :class:`TrainConfig`; keyword ``overrides`` (e.g. ``steps=500``) replace its fields.
        progress: show a tqdm progress bar.
        eval_data: held-out SearchDataset for the periodic evaluations (default: ``config.eval_size``
            fresh examples from the ``"test"`` split).
        callback: called with each evaluation record (a dict, see :class:`History`), e.g. ``print``.

    Ctrl-C (KeyboardInterrupt) stops training cleanly: the model keeps the weights trained so far and the
    history is returned with ``interrupted=True``.
    """
    cfg = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    with num_threads(cfg.threads):
        return _train(model, task, cfg, progress, eval_data, callback)


def _train(model: Any, task: Any, cfg: TrainConfig, progress: bool, eval_data: Any,
           callback: Callable[[dict[str, Any]], None] | None) -> History:
    info = meta(model)
    if info["vocab"] != task.vocab.to_dict():
        raise ValueError(f"the model was built for task {info['task']} whose vocabulary "
                         f"differs from this task's ({task!r}); build a model for this task with models.build(task)")
    if task.seq_len > model.cfg.n_ctx:
        raise ValueError(f"task sequences ({task.seq_len} tokens) are longer than the model's context "
                         f"({model.cfg.n_ctx}); build a model for this task with models.build(task)")
    if cfg.device is not None and next(model.parameters()).device != torch.device(cfg.device):
        model.to(cfg.device)
    device = next(model.parameters()).device
    if eval_data is None:
        eval_data = task.generate(cfg.eval_size, seed=EVAL_SEED_BASE + cfg.seed, split="test")

    hist = History(cfg)
    t0 = time.perf_counter()
    sample = _sampler(task, cfg, device, progress)
    net = fast_module(model) if cfg.fast else model
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=device.type == "cuda")
    pending: list[torch.Tensor] = []  # losses not yet copied to the host (avoids a sync every step)

    def flush() -> None:
        if pending:
            hist.loss.extend(torch.stack(pending).tolist())
            pending.clear()

    def run_eval(step: int) -> dict[str, Any]:
        flush()
        res = evaluate(net, eval_data, threads=None)
        rec = {"step": step, "exact": res.exact, "token": res.token, "token_greedy": res.token_greedy,
               "loss": res.loss, "train_loss": hist.loss[-1] if hist.loss else None,
               "by_difficulty": {str(k): v for k, v in res.by_difficulty.items()},
               "elapsed_s": round(time.perf_counter() - t0, 2)}
        hist.evals.append(rec)
        if callback is not None:
            callback(rec)
        return rec

    bar = tqdm(total=cfg.steps, desc="training", disable=not progress)
    t_start = time.perf_counter()
    model.train()
    net.train()
    try:
        for step in range(cfg.steps):
            frac = None
            if cfg.max_seconds is not None:
                elapsed = time.perf_counter() - t_start
                if elapsed >= cfg.max_seconds:
                    break
                frac = max((step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps),
                           elapsed / cfg.max_seconds)
            for group in opt.param_groups:
                group["lr"] = cfg.lr_at(step, frac)
            tokens, mask = sample(step)
            loss = target_loss(net(tokens), tokens, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            pending.append(loss.detach())
            hist.steps_done = step + 1
            bar.update(1)
            if hist.steps_done % cfg.eval_every == 0:
                rec = run_eval(hist.steps_done)
                net.train()
                bar.set_postfix(loss=f"{hist.loss[-1]:.4f}", exact=f"{rec['exact']:.1%}")
                if cfg.target_accuracy is not None and rec["exact"] >= cfg.target_accuracy:
                    hist.stopped_early = hist.steps_done < cfg.steps
                    break
            elif progress and step % 20 == 0:
                flush()
                bar.set_postfix(loss=f"{hist.loss[-1]:.4f}")
    except KeyboardInterrupt:
        hist.interrupted = True
        print(f"training interrupted at step {hist.steps_done}/{cfg.steps}; the model keeps the weights "
              "trained so far (call train() again to continue with a fresh schedule)")
    finally:
        bar.close()
        model.eval()
        net.eval()
    try:
        if hist.steps_done and (not hist.evals or hist.evals[-1]["step"] != hist.steps_done):
            run_eval(hist.steps_done)
    except KeyboardInterrupt:
        hist.interrupted = True
    flush()
    model.eval()
    net.eval()
    hist.wall_s = time.perf_counter() - t0
    info["training"] = {**hist.summary(), "task": task_info(task)}
    info["random_init"] = False
    return hist
