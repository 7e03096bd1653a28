"""Figure of 15_does_dcft_match_lora: the learning-rate study (b) of the DCFT question, drawn from committed results.

- ``dcft_lr_cpu``: DCFT k = 8 and LoRA r = 1 on MRPC and RTE at the ``cpu`` preset (issue 18's CPU partial
  study, ``docs/dcft_question_protocol.md`` amendment 1): per task, the dev score of the epoch chosen on the
  held-out training rows (``selected_metric``) against the learning rate as a multiple of the task recipe's,
  one dot per seed, the seeds' mean as a line, and a ring on the factor the held-out rows choose
  (``analysis.holdout_tuned``: the dev set plays no part in that choice); on MRPC and RTE a dotted line marks
  the majority class's dev accuracy (the floor a model that ignores its input reaches).

The sweep: ``scripts/grids/dcft_lr_cpu.json`` (``GRIDS["dcft_lr"]`` cut to MRPC and RTE) into
``figures/data/cpu/dcft_lr``.

Taught in: ``15_does_dcft_match_lora``.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..experiments.analysis import TASK_LABELS, holdout_tuned, load_sweep, method_label, short_devices
from ..experiments.presets import TASK_RECIPES
from .delta_lora import constant_predictor
from .plotting import backbone
from .registry import register

#: where the CPU partial study's runs are committed (a sub-folder of ``figures/data``)
CPU_LR_SWEEP = "cpu/dcft_lr"
#: the two methods compared, as ``method_label`` names them, and their colours
LR_METHODS = {"LoRA r=1": "#2e7d32", "DCFT k=8": "#1565c0"}
#: the y-axis names of the tasks' main metrics (×100)
METRIC_AXIS = {"accuracy": "dev accuracy (%)", "pearson": "dev Pearson r ×100",
               "matthews_correlation": "dev Matthews corr. ×100"}


def lr_study_runs(df: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The (b) runs with ``label`` (``method_label``) and ``lr_factor`` (lr ÷ the task recipe's lr, rounded to
    3 digits: ⅓ is 0.333); ``df`` default: the committed CPU partial study (``CPU_LR_SWEEP``).

    Used by: ``draw_dcft_lr`` and ``15_does_dcft_match_lora``.
    """
    d = (load_sweep(CPU_LR_SWEEP) if df is None else df).copy()
    d = d[d["select_on"] == "train_holdout"]
    d["label"] = d.apply(method_label, axis=1)
    d["lr_factor"] = (d["lr"] / d["task"].map(lambda t: TASK_RECIPES[t].lr)).round(3)
    return d.reset_index(drop=True)


@register("dcft_lr_cpu")
def draw_dcft_lr(df: Optional[pd.DataFrame] = None) -> Figure:
    """Dev score (epoch chosen on held-out train rows) vs the lr factor, per task; a ring on the held-out choice."""
    d = lr_study_runs(df)
    tuned = lr_study_runs(holdout_tuned(d))  # the held-out choice, with the same rounded lr_factor
    tasks = [t for t in TASK_LABELS if t in set(d["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        dt = d[d["task"] == task]
        for label, color in LR_METHODS.items():
            runs = dt[dt["label"] == label]
            if runs.empty:
                continue
            ax.scatter(runs["lr_factor"], 100 * runs["selected_metric"], s=18, color=color, alpha=0.45, lw=0)
            mean = runs.groupby("lr_factor")["selected_metric"].mean() * 100
            n = runs.groupby("lr_factor").size()
            ax.plot(mean.index, mean.values, "-o", color=color, ms=4,
                    label=f"{label} (n = {n.min()}–{n.max()} seeds)" if n.min() != n.max() else f"{label} (n = {n.min()})")
            chosen = tuned[(tuned["task"] == task) & (tuned["label"] == label)]["lr_factor"].unique()
            for f in chosen:  # the held-out rows' choice: a ring around that factor's mean
                ax.scatter([f], [mean.loc[f]], s=160, facecolor="none", edgecolor=color, lw=1.6)
        floor = constant_predictor(task)["accuracy"]  # the majority class's dev accuracy (NaN for STS-B)
        if np.isfinite(floor):
            ax.axhline(100 * floor, color="grey", ls=":", lw=1.2, label="majority class")
        ax.set_xscale("log")
        factors = sorted(d["lr_factor"].unique())
        ax.set_xticks(factors, [("⅓" if np.isclose(f, 1 / 3, atol=1e-3) else f"{f:g}") + "×" for f in factors])
        ax.minorticks_off()
        ax.set_xlabel("learning rate ÷ the task recipe's")
        ax.set_ylabel(METRIC_AXIS.get(dt["main_metric"].iloc[0], "dev metric ×100"))
        ax.set_title(TASK_LABELS[task])
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Learning rate, tuned on held-out train rows (ring: the choice) — {backbone()}, `cpu` preset "
                 f"(1,000 rows, 3 epochs), {short_devices(d['device'].unique())}", fontsize=10)
    fig.tight_layout()
    return fig
