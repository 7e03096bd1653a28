"""The exercises' solutions (``notebooks/solutions/``): one per lesson with exercises, paired, clean, and run.

nbval executes them with the other notebooks (``pytest notebooks/``); these fast checks (no kernel) make
sure that every lesson's "## Exercises" cell points at a solutions notebook that exists, that each one is a
clean jupytext pair starting with the Colab cell and asserting its answers, and that pytest collects the
folder at all.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest

from dcft_edu.experiments.colab import colab_cell

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
SOL_DIR = NB_DIR / "solutions"
LESSONS = [p for p in sorted(NB_DIR.glob("*.py")) if "\n# ## Exercises" in p.read_text()]
SOLUTIONS = sorted(SOL_DIR.glob("*_solutions.ipynb"))


def test_pytest_collects_the_solutions():
    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "notebooks" in opts["testpaths"], "pyproject: testpaths must include notebooks (nbval runs them)"
    assert not {"solutions", "notebooks/solutions"} & set(opts["norecursedirs"]), \
        "pyproject: norecursedirs leaves out notebooks/solutions, so no solution is ever run"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_with_exercises_has_its_solutions(lesson):
    exercises = lesson.read_text().split("\n# ## Exercises", 1)[1]
    name = f"notebooks/solutions/{lesson.stem}_solutions.ipynb"
    assert name in exercises, f"{lesson.name}: its Exercises cell should name {name}"
    assert (ROOT / name).is_file(), f"{name} is missing: write the solutions as {lesson.stem}_solutions.py, then jupytext --sync it"


@pytest.mark.parametrize("nb", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_are_clean_pairs_that_assert(nb):
    py = nb.with_suffix(".py")
    assert py.is_file(), f"{nb.name}: no .py pair; run jupytext --set-formats ipynb,py:percent {nb}"
    cells = [(c.cell_type, c.source) for c in jupytext.read(nb).cells]
    assert cells == [(c.cell_type, c.source) for c in jupytext.read(py).cells], \
        f"{nb.name}: the pair differs; run jupytext --sync {py}"
    code = [c for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), f"{nb.name}: clear its outputs"
    assert code and code[0].source.strip() == colab_cell(nb.stem), \
        f"{nb.name}: the first code cell should be colab.colab_cell({nb.stem!r})"
    assert any(re.search(r"^\s*assert\b", c.source, re.M) for c in code[1:]), f"{nb.name}: no assert: a solution checks its answer"
