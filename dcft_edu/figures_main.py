"""Experiment figures of 07_glue_main_results, 08_cosine_similarity and 09_efficiency, drawn from the committed results.

Each figure is a zero-argument function registered in ``dcft_edu.figures.FIGURES``;
``python -m dcft_edu.figures`` redraws them from ``figures/data/`` without training.
"""
from __future__ import annotations

from .figures import register  # noqa: F401
