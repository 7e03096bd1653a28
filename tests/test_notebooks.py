"""The notebooks as files: paired, clean and testable. Fast: no kernel is started here.

nbval runs the notebooks themselves (``pytest notebooks/``, with ``--nbval-lax`` from
pyproject's addopts: only ``assert`` failures and errors count, outputs are not compared
unless a cell is marked ``# NBVAL_CHECK_OUTPUT``). These tests keep them fit for that:

- every ``notebooks/NAME.ipynb`` has its jupytext pair ``NAME.py`` (py:percent, the file
  people edit) and vice versa, and both hold the same cells;
- the committed ``.ipynb`` files carry no outputs and no execution counts (nbval would
  reject "unrun reference cells with outputs", and diffs stay clean);
- every notebook has an Open-in-Colab badge, a Colab-only install cell without ``!``/``%``
  magics, at least one ``assert``, and a closing take-away cell.

After editing a ``.py``: ``jupytext --sync notebooks/NAME.py``.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from dcft_edu.experiments.colab import badge_url, colab_cell

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
FORMATS = "ipynb,py:percent"

# Path.glob does not enter hidden folders such as .ipynb_checkpoints
IPYNBS = sorted(NB_DIR.glob("*.ipynb"))
PYS = sorted(NB_DIR.glob("*.py"))
NAMES = [p.stem for p in IPYNBS]


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_there_are_notebooks():
    assert len(IPYNBS) >= 6, f"expected the concept notebooks 01–06 in {NB_DIR}"


def test_every_notebook_has_a_py_pair_and_vice_versa():
    ipynb, py = {p.stem for p in IPYNBS}, {p.stem for p in PYS}
    assert not ipynb - py, f"no .py pair for {sorted(ipynb - py)}: run jupytext --set-formats {FORMATS} on them"
    assert not py - ipynb, f"no .ipynb for {sorted(py - ipynb)}: run jupytext --sync notebooks/NAME.py"


@pytest.mark.parametrize("name", NAMES)
def test_pair_holds_the_same_cells(name):
    nb_ipynb = jupytext.read(NB_DIR / f"{name}.ipynb")
    nb_py = jupytext.read(NB_DIR / f"{name}.py")
    a, b = _cells(nb_ipynb), _cells(nb_py)
    assert len(a) == len(b), f"{name}: {len(a)} cells in .ipynb, {len(b)} in .py: run jupytext --sync notebooks/{name}.py"
    for i, (ca, cb) in enumerate(zip(a, b)):
        assert ca == cb, f"{name}: cell {i} differs between .ipynb and .py: run jupytext --sync notebooks/{name}.py"


@pytest.mark.parametrize("name", NAMES)
def test_pair_metadata(name):
    for ext in ("ipynb", "py"):
        meta = jupytext.read(NB_DIR / f"{name}.{ext}").metadata
        assert meta.get("jupytext", {}).get("formats") == FORMATS, f"{name}.{ext}: not paired as {FORMATS}"
        assert meta.get("kernelspec", {}).get("name") == "python3", f"{name}.{ext}: kernelspec should be python3"


@pytest.mark.parametrize("name", NAMES)
def test_committed_ipynb_has_no_outputs(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: cell {i} has outputs; clear them (jupytext --sync from the .py does)"
            assert cell.execution_count is None, f"{name}: cell {i} has an execution count"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_structure(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    first, last = nb.cells[0], nb.cells[-1]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    # title cell: a heading and the Colab badge pointing at this very notebook
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{name}: first cell must be the title"
    assert badge_url(name) in first.source, f"{name}: Open-in-Colab link missing or wrong"
    assert "colab-badge.svg" in first.source, f"{name}: Colab badge image missing"
    # first code cell: the Colab cell (colab.colab_cell, tests/test_colab.py), then the device is printed
    assert code[0].strip() == colab_cell(name), f"{name}: its first code cell should be colab.colab_cell({name!r})"
    assert "notebook_setup()" in code[1], f"{name}: the cell after the Colab cell should print the device"
    for src in code:
        assert not re.search(r"^\s*[!%]", src, re.M), f"{name}: IPython magics (! or %) in a code cell:\n{src}"
    # real checks, so that nbval can fail
    assert any(re.search(r"^\s*assert\b", src, re.M) for src in code), f"{name}: no assert in any code cell"
    # closing cells: the take-away, then (lessons with exercises) "## Exercises" and its starter cells
    # (tests/test_teaching.py checks those)
    ex = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    if ex:
        last = nb.cells[ex[-1] - 1]
        assert all(c.cell_type == "code" and c.source.startswith("# Exercise ") for c in nb.cells[ex[-1] + 1:]), \
            f"{name}: after '## Exercises' only its starter cells ('# Exercise N · …') may follow"
    assert last.cell_type == "markdown" and "What you should take away" in last.source, f"{name}: take-away cell missing"


@pytest.mark.parametrize("name", NAMES)
def test_no_wall_clock_output_is_compared(name):
    """Cells whose output nbval compares (# NBVAL_CHECK_OUTPUT) must not print timings."""
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            assert not re.search(r"perf_counter|time\.time|timeit", cell.source), f"{name}: timed cell is compared"


def test_figures_cli_help():
    out = subprocess.run([sys.executable, "-m", "dcft_edu.figures", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout and "checkerboard" in out.stdout and "dropout_gradient_gap" in out.stdout
