"""One look for every figure, and a ``savefig`` that never clobbers committed figures by accident.

- ``set_theme()``: the seaborn theme all notebooks share.
- ``savefig(fig, name)``: writes ``figures/<name>.png`` and ``.pdf`` with fixed
  metadata (no creation date, no software version), so regenerating an
  unchanged figure gives the same bytes and a clean ``git diff``.
  With ``DCFT_EDU_QUICK=1`` (CI, nbval) figures go to a temporary folder
  instead: quick runs never overwrite the committed ones.

Taught in: notebooks 01, 03–13 (``savefig`` in those that commit a figure: 03, 05).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves
import seaborn as sns

from ..experiments.runinfo import is_quick

REPO_ROOT = Path(__file__).resolve().parents[2]  # dcft_edu/figures/plotting.py -> the repository
FIGURES_ENV = "DCFT_EDU_FIGURES"


def figures_dir() -> Path:
    """Where figures go: $DCFT_EDU_FIGURES, else a temp folder in quick mode, else ``<repo>/figures``."""
    if os.environ.get(FIGURES_ENV):
        d = Path(os.environ[FIGURES_ENV])
    elif is_quick():
        d = Path(tempfile.gettempdir()) / "dcft_edu_quick_figures"
    else:
        d = REPO_ROOT / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d


#: colour of the "n=…" labels of cells with fewer seeds than planned
FEW_SEEDS_COLOR = "#c62828"


def backbone(shape: str = "6 blocks × 384") -> str:
    """The backbone every experiment figure names in its title: "MiniLM-L6 (all-MiniLM-L6-v2: BERT, 6 blocks × 384)".

    ``main_results`` words the ``shape`` "6 layers × 384" and ``ablations`` "6 blocks × 384 hidden": that text is
    drawn into the committed figures, which must stay byte-identical, so each figure module keeps its wording.
    """
    return f"MiniLM-L6 (all-MiniLM-L6-v2: BERT, {shape})"


def set_theme() -> None:
    """The shared seaborn theme (white grid, colour-blind palette, readable fonts)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=1.0)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "svg.hashsalt": "dcft_edu"})


def savefig(fig: "plt.Figure", name: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``<figures_dir>/<name>.<ext>`` with byte-stable metadata; return the paths."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem like 'checkerboard', got {name!r}")
    out = []
    for ext in formats:
        path = figures_dir() / f"{name}.{ext}"
        meta = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
                "svg": {"Date": None, "Creator": None}}.get(ext, {})
        fig.savefig(path, format=ext, metadata=meta)
        out.append(path)
    return out
