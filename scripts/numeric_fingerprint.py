#!/usr/bin/env python
"""Print a fingerprint of a small trained SAE and a trained tree model under the current numeric path.

    python scripts/numeric_fingerprint.py            # this process's path
    python scripts/numeric_fingerprint.py --both     # native, then ATEN_CPU_CAPABILITY=default
                                                     # MKL_ENABLE_INSTRUCTIONS=AVX2

`make test` runs ``--both`` before its two passes, so a CI log shows that the second pass really runs on another
floating-point path (different hashes), not just under other variable names. Seeded and single-threaded: on one
machine and one path the output is the same every time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


ALT_NUMERICS = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def both() -> int:
    """Fingerprint the native path and the alternative one in two processes; say whether they differ."""
    lines = []
    for extra in ({}, ALT_NUMERICS):
        env = {k: v for k, v in os.environ.items() if k not in ALT_NUMERICS} | extra
        out = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, check=True)
        lines.append(out.stdout.strip())
        print(lines[-1])
    differ = lines[0].split("; ", 1)[1] != lines[1].split("; ", 1)[1]
    print(f"the second pass runs on a different floating-point path: {'yes' if differ else 'NO (same weights)'}")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--both"]:
        return both()
    import torch

    from toolkit import models, tasks
    from toolkit.unsupervised import SparseAutoencoder, ci_toy

    torch.set_num_threads(1)
    X = ci_toy(seed=0).sample(20_000, torch.Generator().manual_seed(0))
    sae = SparseAutoencoder(d_sae=256, l1_coefficient=0.3, n_samples=100_000, seed=0, threads=1,
                            progress=False).fit(X)
    task = tasks.TreeSearch(n_nodes=8, max_path=4)
    model = models.build(task, seed=0)
    models.train(model, task, steps=30, batch_size=64, seed=0, pool_size=2_000, eval_every=1_000, progress=False)
    caps = torch.backends.cpu.get_cpu_capability()
    env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ}
    print(f"numeric path: torch {torch.__version__}, kernels {caps}, env {env or 'native'}; "
          f"SAE weights {digest([sae.W_enc_, sae.W_dec_])}, "
          f"tree model after 30 steps {digest(model.parameters())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
