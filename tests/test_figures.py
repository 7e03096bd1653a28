"""dcft_edu.figures: the registry, the concept figures, the command, and quick mode (never writes into figures/)."""
from __future__ import annotations

import tempfile

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dcft_edu import figures
from dcft_edu.figures import concepts, registry
from dcft_edu.figures.__main__ import main as figures_main
from dcft_edu.figures.plotting import REPO_ROOT

COMMITTED = REPO_ROOT / "figures"


@pytest.fixture
def quick_tmp(monkeypatch, tmp_path):
    """Quick mode, with the temporary folder redirected into tmp_path."""
    monkeypatch.setenv("DCFT_EDU_QUICK", "1")
    monkeypatch.delenv("DCFT_EDU_FIGURES", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / "dcft_edu_quick_figures"


def _snapshot(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} if folder.exists() else {}


def test_registry_holds_zero_argument_figure_functions():
    assert {"checkerboard", "dropout_gradient_gap"} <= set(figures.FIGURES)
    assert figures.FIGURES["checkerboard"] is concepts.draw_checkerboard
    assert figures.FIGURES["dropout_gradient_gap"] is concepts.draw_dropout_gradient_gap
    with pytest.raises(ValueError, match="already registered"):
        figures.register("checkerboard")(lambda: plt.figure())


def test_quick_mode_writes_to_the_temp_folder_not_figures(quick_tmp):
    before = _snapshot(COMMITTED)
    assert figures_main([]) == 0  # every registered figure
    written = sorted(p.name for p in quick_tmp.iterdir())
    expected = sorted(f"{n}.{ext}" for n in figures.FIGURES for ext in ("png", "pdf"))
    assert written == expected
    assert all((quick_tmp / n).stat().st_size > 1000 for n in written)
    assert _snapshot(COMMITTED) == before, "quick mode touched the committed figures/"


def test_unknown_figure_name_is_a_usage_error(quick_tmp, capsys):
    with pytest.raises(SystemExit) as exc:
        figures_main(["no_such_figure"])
    assert exc.value.code == 2
    assert "registered figures are" in capsys.readouterr().err


def test_list(capsys):
    assert figures_main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in figures.FIGURES)


def test_new_figures_can_be_registered(quick_tmp, monkeypatch):
    monkeypatch.setattr(registry, "FIGURES", dict(registry.FIGURES))

    @registry.register("tiny_test_figure")
    def draw_tiny() -> Figure:
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        return fig

    paths = registry.render(["tiny_test_figure"])
    assert [p.name for p in paths] == ["tiny_test_figure.png", "tiny_test_figure.pdf"]
    assert all(p.parent == quick_tmp for p in paths)


@pytest.mark.parametrize("name", ["checkerboard", "dropout_gradient_gap"])
def test_figures_are_labelled(quick_tmp, name):
    """A figure read without its notebook needs a title and labelled axes (colour bars included)."""
    fig = figures.FIGURES[name]()
    try:
        assert fig.get_suptitle().strip()
        for ax in fig.axes:
            assert ax.get_xlabel().strip() or ax.get_ylabel().strip(), f"{name}: an axes has no label"
        if name == "dropout_gradient_gap":
            assert fig.axes[0].get_legend() is not None
    finally:
        plt.close(fig)


def test_checkerboard_coverage_verdicts():
    import numpy as np

    assert concepts._coverage_verdict(np.ones((4, 4)), 8, 8) == "no overlap: 1 tap"
    assert concepts._coverage_verdict(np.full((4, 4), 4), 4, 8) == "even: 4 taps"
    assert concepts._coverage_verdict(np.array([[1, 2], [2, 4]]), 6, 8) == "uneven: 1, 2 or 4 taps"


def test_command_line_sees_every_figure_and_every_committed_png_has_one():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dcft_edu.figures", "--list"], capture_output=True, text=True,
                         check=True).stdout
    listed = {line.split(":")[0] for line in out.splitlines() if ":" in line}
    assert listed == set(figures.FIGURES)  # `python -m` registers the experiment figures too
    committed = {p.stem for p in COMMITTED.glob("*.png")}
    assert committed == set(figures.FIGURES), "every figure is committed, and every committed PNG is drawn by one"
    readme = (COMMITTED / "README.md").read_text()
    assert all(f"`{name}.png`" in readme for name in figures.FIGURES), "figures/README.md lists every figure"


def test_dcft_lr_budget_draws_a_task_once_its_grid_is_complete():
    """The budgeted study's figure: CoLA's whole grid is a panel; a task with runs missing (MRPC while it trains)
    is named under the figure, not drawn with means over different seeds; no complete task at all is an error."""
    from dcft_edu.experiments.analysis import load_sweep
    from dcft_edu.figures.dcft_question import BUDGET_LR_SWEEP, draw_dcft_lr_budget

    runs = load_sweep(BUDGET_LR_SWEEP)
    cola = runs[runs["task"] == "cola"]
    partial = cola.assign(task="mrpc").iloc[:2]  # two runs of another task
    fig = draw_dcft_lr_budget(pd.concat([cola, partial]))
    assert [ax.get_title() for ax in fig.axes] == ["CoLA"]
    assert any("MRPC (2 of 36 runs)" in t.get_text() for t in fig.texts)
    plt.close(fig)
    with pytest.raises(ValueError, match="no task has its whole grid yet"):
        draw_dcft_lr_budget(cola.iloc[1:])
