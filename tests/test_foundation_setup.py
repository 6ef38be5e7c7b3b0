"""The two-command setup: idempotent install, CPU torch by default, a documented override."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_toolkit_info_reports_versions(capsys):
    import toolkit

    report = toolkit.info()
    printed = capsys.readouterr().out
    for key in ("torch", "transformer_lens", "ipywidgets", "jupyterlab", "widgets render"):
        assert key in report and key in printed
    assert report["transformer_lens"].startswith("4."), "the toolkit targets TransformerLens 4.x"
    assert report["widgets render"].startswith("no"), "a plain pytest process has no kernel for widgets"


def test_unknown_submodule_is_an_attribute_error():
    import toolkit

    with pytest.raises(AttributeError, match="no attribute 'probez'"):
        toolkit.probez  # noqa: B018


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(not (ROOT / ".venv" / ".searchlight-installed").exists(),
                    reason="environment was not created by `make install` (e.g. a conda environment)")
def test_second_install_is_a_no_op():
    """`make -q install` exits 0 only when nothing would be re-run: a second `make test` reinstalls nothing."""
    result = subprocess.run(["make", "-q", "install"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"make would reinstall: {result.stdout}{result.stderr}"


def test_torch_is_the_cpu_build_by_default():
    import torch

    if os.environ.get("TORCH_INDEX"):
        pytest.skip("a torch build was chosen explicitly with TORCH_INDEX")
    assert torch.version.cuda is None, "make installs the CPU build of torch unless TORCH_INDEX is set"


def test_install_torch_script_is_idempotent():
    """With the requested version present, the script installs nothing and says so."""
    import torch

    version = torch.__version__.split("+")[0]
    result = subprocess.run(["bash", "scripts/install_torch.sh", sys.executable], cwd=ROOT,
                            env={**os.environ, "TORCH_VERSION": version}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"torch {version} already installed" in result.stdout
