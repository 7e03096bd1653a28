"""Figures of 15_does_dcft_match_lora: parts (b) and (c) of the DCFT question, drawn from committed results.

- ``dcft_lr_cpu``: DCFT k = 8 and LoRA r = 1 on MRPC, RTE (seed 0), STS-B and SST-2 (seeds 0–2) at the ``cpu``
  preset (issue 18's CPU partial study, ``docs/dcft_question_protocol.md`` amendments 1, 2 and 5): per task, the dev score of the epoch chosen on the
  held-out training rows (``selected_metric``) against the learning rate as a multiple of the task recipe's,
  one dot per seed, the seeds' mean as a line, and a ring on the factor the held-out rows choose
  (``analysis.holdout_tuned``: the dev set plays no part in that choice); on the accuracy tasks a dotted line marks
  the majority class's dev accuracy (the floor a model that ignores its input reaches).

- ``dcft_init_cpu``: part (c), init and penalty, at the same preset on STS-B and SST-2 (amendments 3 and 4): per
  task, DCFT k = 8's best dev score in its four cells (paper init or B = 0; recipe γ or γ = 0), one line per
  seed joining its four runs (the pairs the rule compares), with LoRA r = 1's mean where it ran beside them
  (SST-2) and the majority class's dev accuracy.

The sweeps: ``scripts/grids/dcft_lr_cpu.json`` (``GRIDS["dcft_lr"]`` cut to MRPC and RTE),
``scripts/grids/dcft_lr_cpu_stsb.json`` and ``…_sst2.json`` into ``figures/data/cpu/dcft_lr``; ``scripts/grids/dcft_init_cpu_*.json``
into ``figures/data/cpu/dcft_init``.

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
from ..experiments.recipes import LR_FACTORS
from .delta_lora import constant_predictor
from .plotting import backbone
from .registry import register

#: where the CPU partial study's runs are committed (sub-folders of ``figures/data``)
CPU_LR_SWEEP = "cpu/dcft_lr"
#: (b) at the budgeted ``gpu`` preset, trained on the CPU, with PEFT's LoKr as a third arm (amendment 6)
BUDGET_LR_SWEEP = "cpu/dcft_lr_budget"
CPU_INIT_SWEEP = "cpu/dcft_init"
#: part (c)'s four DCFT cells, (dcft_init, γ = 0?) -> label, in the order drawn
INIT_CELLS = {("paper", False): "paper init\nrecipe γ", ("paper", True): "paper init\nγ = 0",
              ("zero", False): "B = 0 init\nrecipe γ", ("zero", True): "B = 0 init\nγ = 0"}
#: the two methods compared, as ``method_label`` names them, and their colours
LR_METHODS = {"LoRA r=1": "#2e7d32", "DCFT k=8": "#1565c0", "LoKr k=8": "#e65100"}
#: the y-axis names of the tasks' main metrics (×100)
METRIC_AXIS = {"accuracy": "dev accuracy (%)", "pearson": "dev Pearson r ×100",
               "matthews_correlation": "dev Matthews corr. ×100"}


def lr_study_runs(df: Optional[pd.DataFrame] = None, sweep: str = CPU_LR_SWEEP) -> pd.DataFrame:
    """The (b) runs with ``label`` (``method_label``) and ``lr_factor`` (lr ÷ the task recipe's lr, rounded to
    3 digits: ⅓ is 0.333); ``df`` default: the committed runs of ``sweep`` (the CPU partial study,
    ``CPU_LR_SWEEP``, or the budgeted one, ``BUDGET_LR_SWEEP``).

    Used by: ``draw_dcft_lr``, ``draw_dcft_lr_budget`` and ``15_does_dcft_match_lora``.
    """
    d = (load_sweep(sweep) if df is None else df).copy()
    d = d[d["select_on"] == "train_holdout"]
    d["label"] = d.apply(method_label, axis=1)
    d["lr_factor"] = (d["lr"] / d["task"].map(lambda t: TASK_RECIPES[t].lr)).round(3)
    return d.reset_index(drop=True)


@register("dcft_lr_cpu")
def draw_dcft_lr(df: Optional[pd.DataFrame] = None) -> Figure:
    """Dev score (epoch chosen on held-out train rows) vs the lr factor, per task; a ring on the held-out choice."""
    return _draw_lr(lr_study_runs(df), "`cpu` preset (1,000 rows, 3 epochs)")


#: the budgeted study's grid per task: every arm at every lr factor, each with seeds 0–2 (drawn once complete)
BUDGET_CELLS, BUDGET_SEEDS = len(LR_METHODS) * len(LR_FACTORS), 3


@register("dcft_lr_budget")
def draw_dcft_lr_budget(df: Optional[pd.DataFrame] = None) -> Figure:
    """The same at the budgeted ``gpu`` preset, with PEFT's LoKr (DCFT's parameter count) as a third arm.

    A task is drawn once its grid is complete (every arm at every lr factor with 3 seeds): a half-trained task would
    show means over different seeds per point. A task with runs still missing is named under the figure."""
    d = lr_study_runs(df, sweep=BUDGET_LR_SWEEP)
    cells = d.groupby(["task", "label", "lr_factor"])["seed"].nunique()
    complete = [t for t, c in cells.groupby(level="task") if len(c) >= BUDGET_CELLS and c.min() >= BUDGET_SEEDS]
    partial = {t: int((d["task"] == t).sum()) for t in TASK_LABELS if t in set(d["task"]) and t not in complete}
    if not complete:
        raise ValueError("dcft_lr_budget: no task has its whole grid yet (3 arms × 4 lr factors × seeds 0-2): "
                         + ", ".join(f"{t} {n} runs" for t, n in partial.items())
                         + "; train the rest with the sweep (scripts/grids/dcft_lr_budget_<task>.json)")
    fig = _draw_lr(d[d["task"].isin(complete)], "`gpu` preset (the budgeted recipe: ~20k examples per run)",
                   lokr_note=True)
    if partial:
        fig.text(0.01, 0.01, "not drawn until complete: " + ", ".join(
            f"{TASK_LABELS[t]} ({n} of {BUDGET_CELLS * BUDGET_SEEDS} runs)" for t, n in partial.items()),
            ha="left", va="bottom", fontsize=7.5, color="0.35")
    return fig


def _draw_lr(d: pd.DataFrame, preset: str, lokr_note: bool = False) -> Figure:
    """One panel per task: each method's runs (dots) and seeds' mean (line) against the lr factor, a ring on
    the factor the held-out rows choose."""
    tuned = lr_study_runs(holdout_tuned(d))  # the held-out choice, with the same rounded lr_factor
    tasks = [t for t in TASK_LABELS if t in set(d["task"])]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks) + (2.6 if lokr_note else 0), 3.8),
                             squeeze=False)
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
        ax.set_xscale("log")
        factors = sorted(d["lr_factor"].unique())
        ax.set_xticks(factors, [("⅓" if np.isclose(f, 1 / 3, atol=1e-3) else f"{f:g}") + "×" for f in factors])
        ax.minorticks_off()
        ax.set_xlabel("learning rate ÷ the task recipe's")
        _finish_panel(ax, task, dt, legend_outside=lokr_note)
    if lokr_note:  # under the legend, beside the last panel
        fig.text(0.98, 0.16, "LoKr: PEFT's Kronecker adapter,\nr = 1, W₁ 8 × 8: DCFT k = 8's\nparameter count, "
                 "ΔW = 0 at init,\nno penalty", ha="right", va="bottom", fontsize=7.5, color=LR_METHODS["LoKr k=8"])
    return _finish_figure(fig, "Learning rate, tuned on held-out train rows (ring: the choice)", d, preset,
                          right=1.0)


def _finish_panel(ax, task: str, dt: pd.DataFrame, epoch: str = "", legend_outside: bool = False) -> None:
    """What every panel here has: the majority class's dev score on the panel's metric (its accuracy; MCC 0 on
    CoLA; none for STS-B), the axis, title, legend (inside, or beside the panel with ``legend_outside``)."""
    metric = dt["main_metric"].iloc[0]
    if metric == "matthews_correlation":  # a constant prediction has MCC 0 (sklearn's convention)
        ax.axhline(0.0, color="grey", ls=":", lw=1.2, label="majority class (MCC 0)")
    else:
        floor = constant_predictor(task)["accuracy"]
        if np.isfinite(floor):
            ax.axhline(100 * floor, color="grey", ls=":", lw=1.2, label="majority class")
    ax.set_ylabel(METRIC_AXIS.get(metric, "dev metric ×100") + epoch)
    ax.set_title(TASK_LABELS[task])
    if legend_outside:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8, loc="lower right")


def _finish_figure(fig: Figure, what: str, d: pd.DataFrame,
                   preset: str = "`cpu` preset (1,000 rows, 3 epochs)", right: float = 1.0) -> Figure:
    fig.suptitle(f"{what}\n{backbone()}, {preset}, {short_devices(d['device'].unique())}", fontsize=10)
    fig.tight_layout(rect=(0, 0, right, 1))  # right < 1 leaves room for a note beside the panels
    return fig


def init_study_runs(df: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The (c) runs with ``label`` (``method_label``) and, for DCFT, ``cell`` (a key of ``INIT_CELLS``' labels);
    ``df`` default: the committed CPU runs (``CPU_INIT_SWEEP``).

    Used by: ``draw_dcft_init`` and ``15_does_dcft_match_lora``.
    """
    d = (load_sweep(CPU_INIT_SWEEP) if df is None else df).copy()
    d["label"] = d.apply(method_label, axis=1)
    d["cell"] = [INIT_CELLS.get((i, g == 0)) if m == "dcft" else None
                 for m, i, g in zip(d["method"], d["dcft_init"], d["orth_gamma"])]
    return d.reset_index(drop=True)


@register("dcft_init_cpu")
def draw_dcft_init(df: Optional[pd.DataFrame] = None) -> Figure:
    """DCFT's best dev score in the four init × penalty cells, per task; one line per seed."""
    d = init_study_runs(df)
    tasks = [t for t in TASK_LABELS if t in set(d["task"])]
    cells = list(INIT_CELLS.values())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        dt = d[d["task"] == task]
        dcft = dt[dt["method"] == "dcft"].pivot_table(index="seed", columns="cell", values="best_metric") * 100
        dcft = dcft.reindex(columns=cells)
        x = np.arange(len(cells))
        for seed, row in dcft.iterrows():  # one seed's four runs: the pairs the decision rule compares
            ax.plot(x, row.values, "-o", color=LR_METHODS["DCFT k=8"], alpha=0.35, ms=4, lw=1)
        ax.plot(x, dcft.mean().values, "-o", color=LR_METHODS["DCFT k=8"], ms=6, lw=2.2,
                label=f"DCFT k=8, seeds' mean (n = {len(dcft)})")
        lora = dt[dt["label"] == "LoRA r=1"]["best_metric"] * 100
        if not lora.empty:
            ax.axhline(lora.mean(), color=LR_METHODS["LoRA r=1"], ls="--", lw=1.4,
                       label=f"LoRA r=1, recipe (n = {len(lora)})")
        ax.set_xticks(x, cells, fontsize=8)
        _finish_panel(ax, task, dt, epoch=", best epoch")
    return _finish_figure(fig, "Init and penalty (part c), the recipe lr", d)
