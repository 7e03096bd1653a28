"""The figure registry: every committed figure is a zero-argument function under a name.

Every entry of ``FIGURES`` is a zero-argument function returning a matplotlib
``Figure``; ``python -m dcft_edu.figures [names...]`` draws the named ones (all
by default) and saves each as ``figures/<name>.png`` and ``.pdf`` through
``plotting.savefig`` (so with ``DCFT_EDU_QUICK=1`` they go to a temporary
folder, never over the committed files). To add a figure, write a function in
one of the figure modules and register it::

    @register("my_figure")
    def draw_my_figure() -> Figure: ...

``figures/README.md`` lists every figure and where it comes from.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves
import torch
from matplotlib.figure import Figure

from .plotting import savefig, set_theme

#: name -> zero-argument function returning a matplotlib Figure
FIGURES: dict[str, Callable[[], Figure]] = {}


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread inside the block (restored afterwards).

    The figures compute with tiny tensors (64×64, 160×160), where threading only
    adds overhead; on a machine whose cores are busy with other work a second
    spinning thread can make them tens of times slower.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _in_single_thread(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_thread():
            return fn(*args, **kwargs)

    return wrapper


def register(name: str) -> Callable[[Callable[[], Figure]], Callable[[], Figure]]:
    """Decorator: add a zero-argument figure function to ``FIGURES`` under ``name``."""

    def deco(fn: Callable[[], Figure]) -> Callable[[], Figure]:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} is already registered")
        FIGURES[name] = fn
        return fn

    return deco


def render(names: Optional[Sequence[str]] = None) -> list[Path]:
    """Draw and save the named figures (all registered ones by default); return the written paths."""
    names = list(names) if names else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}: registered figures are {', '.join(FIGURES)}")
    set_theme()
    paths: list[Path] = []
    for name in names:
        fig = FIGURES[name]()
        try:
            paths.extend(savefig(fig, name))
        finally:
            plt.close(fig)
    return paths
