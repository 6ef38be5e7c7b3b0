"""environment.yml and pyproject.toml must declare the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_requirements(text: str) -> dict[str, str]:
    project = tomllib.loads(text)["project"]
    reqs = list(project["dependencies"]) + [r for extra in project.get("optional-dependencies", {}).values()
                                           for r in extra]
    return {_name(r): r.replace(" ", "") for r in reqs}


def environment_requirements(text: str) -> dict[str, str]:
    env = yaml.safe_load(text)
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    reqs = [r for r in pip_section if not r.startswith("-")]
    return {_name(r): r.replace(" ", "") for r in reqs}


def compare(pyproject_text: str, environment_text: str) -> list[str]:
    """Human-readable differences; empty when the two files agree."""
    py, env = pyproject_requirements(pyproject_text), environment_requirements(environment_text)
    problems = [f"{n} is in pyproject.toml but not environment.yml" for n in sorted(py.keys() - env.keys())]
    problems += [f"{n} is in environment.yml but not pyproject.toml" for n in sorted(env.keys() - py.keys())]
    problems += [f"{n}: pyproject.toml says {py[n]!r}, environment.yml says {env[n]!r}"
                 for n in sorted(py.keys() & env.keys()) if py[n] != env[n]]
    return problems


def test_files_agree():
    problems = compare((ROOT / "pyproject.toml").read_text(), (ROOT / "environment.yml").read_text())
    assert not problems, "environment.yml and pyproject.toml disagree:\n" + "\n".join(problems)


def test_environment_yml_shape():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "searchlight"
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip_section, "environment.yml must install this package (pip: -e .)"


@pytest.mark.parametrize("where", ["pyproject", "environment"])
def test_detects_a_dependency_added_on_one_side(where):
    py, env = (ROOT / "pyproject.toml").read_text(), (ROOT / "environment.yml").read_text()
    if where == "pyproject":
        py = py.replace('"scikit-learn>=1.4",', '"scikit-learn>=1.4",\n    "einops>=0.8",')
    else:
        env = env.replace("      - -e .", "      - einops>=0.8\n      - -e .")
    problems = compare(py, env)
    assert problems and "einops" in problems[0]


def test_detects_a_changed_bound():
    env = (ROOT / "environment.yml").read_text().replace("tqdm>=4.66", "tqdm>=4.0")
    assert any("tqdm" in p for p in compare((ROOT / "pyproject.toml").read_text(), env))
