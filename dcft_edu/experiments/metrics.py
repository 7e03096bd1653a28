"""GLUE metrics, computed with sklearn and scipy.

Units: plain fractions, not percentages. Accuracy and F1 are in [0, 1];
Matthews correlation, Pearson and Spearman are in [-1, 1]. The papers print
×100 (e.g. "RTE 88.1"); multiply when you make a table.

Keys follow HF ``evaluate``'s glue metric: ``matthews_correlation`` (CoLA),
``accuracy`` (SST-2, RTE, QNLI, MRPC), ``f1`` (MRPC, positive class =
"equivalent"), ``pearson`` and ``spearmanr`` (STS-B).

Undefined correlations (constant predictions or labels, e.g. a model that
says "acceptable" for all of CoLA) are reported as 0.0 with a warning, never
NaN, so a bad run still gives a row in the results table.

Used by: ``dcft_edu.experiments.trainer``.
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .data import get_task


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def _class_predictions(predictions: np.ndarray) -> np.ndarray:
    """(N, C) logits → argmax; (N,) or (N, 1) class ids → as they are."""
    if predictions.ndim == 2 and predictions.shape[1] > 1:
        return predictions.argmax(axis=1)
    return predictions.reshape(-1).astype(np.int64)


def _correlation(fn, predictions: np.ndarray, labels: np.ndarray, name: str) -> float:
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        warnings.warn(f"{name} is undefined for constant predictions or labels; reporting 0.0", RuntimeWarning,
                      stacklevel=3)
        return 0.0
    value = float(fn(predictions, labels)[0])
    return 0.0 if np.isnan(value) else value


def compute_metrics(task: str, predictions, labels) -> dict[str, float]:
    """The task's GLUE metrics as fractions, e.g. ``{"accuracy": 0.87, "f1": 0.91}`` for MRPC.

    ``predictions`` are logits of shape (N, C) (argmaxed here) or class ids of
    shape (N,); for STS-B, scores of shape (N,) or (N, 1). numpy arrays,
    lists and torch tensors all work.

    Used by: ``dcft_edu.experiments.trainer.evaluate``.
    """
    spec = get_task(task)
    predictions, labels = _to_numpy(predictions), _to_numpy(labels).reshape(-1)
    out: dict[str, float] = {}
    if spec.is_regression:
        if predictions.ndim == 2 and predictions.shape[1] != 1:
            raise ValueError(f"{spec.name} is a regression task: expected (N,) or (N, 1) scores, got {predictions.shape}")
        predictions = predictions.reshape(-1).astype(np.float64)
        labels = labels.astype(np.float64)
        if len(predictions) != len(labels):
            raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
        out["pearson"] = _correlation(stats.pearsonr, predictions, labels, "pearson")
        out["spearmanr"] = _correlation(stats.spearmanr, predictions, labels, "spearmanr")
        return out
    predictions = _class_predictions(predictions)
    labels = labels.astype(np.int64)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    for name in spec.metrics:
        if name == "accuracy":
            out[name] = float(accuracy_score(labels, predictions))
        elif name == "f1":
            out[name] = float(f1_score(labels, predictions, zero_division=0.0))
        elif name == "matthews_correlation":
            if len(np.unique(predictions)) < 2 or len(np.unique(labels)) < 2:
                warnings.warn("matthews_correlation is undefined for constant predictions or labels; reporting 0.0",
                              RuntimeWarning, stacklevel=2)
                out[name] = 0.0
            else:
                out[name] = float(matthews_corrcoef(labels, predictions))
    return out


def main_metric(task: str, metrics: Mapping[str, float]) -> float:
    """The one number the papers report for ``task``: CoLA MCC, STS-B Pearson, accuracy elsewhere (MRPC too).

    Used by: ``dcft_edu.experiments.trainer``.
    """
    name = get_task(task).main_metric
    if name not in metrics:
        raise KeyError(f"{name!r} (the main metric of {get_task(task).name}) not in {sorted(metrics)}")
    return float(metrics[name])
