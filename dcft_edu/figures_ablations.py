"""Experiment figures of 10_kernel_ablation, 11_stride_ablation and 12_layer_ablation, drawn from the committed results.

Each figure is a zero-argument function registered in ``dcft_edu.figures.FIGURES``;
``python -m dcft_edu.figures`` redraws them from ``figures/data/`` without training.
"""
from __future__ import annotations

from .figures import register  # noqa: F401
