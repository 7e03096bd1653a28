"""Experiment figures of 10_kernel_ablation, 11_stride_ablation and 12_layer_ablation, drawn from the committed results.

Each figure is a zero-argument function registered in ``dcft_edu.figures.FIGURES``;
``python -m dcft_edu.figures`` redraws them from ``figures/data/`` without training:

- ``kernel_ablation``: DCFT's metric vs kernel size k (s = k), adapter parameters on a
  second axis, LoRA r = 8 as a reference line (DCFT Table 4).
- ``stride_ablation``: the same vs stride s at k = 8 (DCFT Table 5).
- ``stride_learned_delta``: the learned ΔW of one trained layer per stride: coverage
  map, heatmap and power spectrum (the trained counterpart of ``checkerboard``).
- ``layer_ablation``: metric vs adapter parameters for several choices of adapted
  matrices and blocks, LoRA r = 8 and DCFT k = 8 (DCFT Table 6).

The helpers above the figures (coverage of a sweep's grid, "mean ± std (n=…)" cells,
closed-form adapter counts, learned ΔW and its RMS per coverage class) are what the
three notebooks print their tables with.

Taught in: ``10_kernel_ablation``, ``11_stride_ablation``, ``12_layer_ablation``.
"""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from ..experiments.analysis import (CPU_RESULTS, TASK_LABELS, committed_results_dir, load_sweep, short_device,
                                    short_devices, summarize)
from ..dcft import coverage_map, dcft_num_params
from .concepts import _coverage_verdict, log_power_spectrum, spectrum_panel
from .plotting import FEW_SEEDS_COLOR, backbone
from .registry import register
from ..experiments.recipes import ABLATION_TASKS, GRIDS
from ..experiments.store import delta_path, done_path
from ..experiments.sweep import grid_runs

#: metric names as the figures' axes show them (×100, as in the papers' tables)
METRIC_AXIS = {"matthews_correlation": "Matthews corr. ×100", "accuracy": "accuracy ×100 (%)",
               "pearson": "Pearson r ×100"}
TASK_METRIC = {"cola": "matthews_correlation", "sst2": "accuracy", "mrpc": "accuracy", "stsb": "pearson",
               "rte": "accuracy"}
#: short names of the BERT matrices (target_modules suffixes)
MATRIX_SHORT = {"query": "q", "key": "k", "value": "v", "attention.output.dense": "o",
                "intermediate.dense": "ffn-in", "output.dense": "ffn-out"}

# ------------------------------------------------------------------ the paper's numbers (NOT ours)
#: DCFT paper, Table 4 (kernel size k, s = k), DeBERTa-v3-base, GLUE dev, one seed: the paper's
#: printed numbers, copied from its text, columns as in our tables. "params" is the paper's column.
PAPER_TABLE4 = pd.DataFrame(
    [(2, "0.079M", 70.43, 91.42, 91.76, 88.45), (4, "0.041M", 69.24, 90.20, 91.80, 88.45),
     (6, "0.029M", 70.69, 89.95, 91.73, 86.28), (8, "0.024M", 71.07, 90.93, 91.56, 88.45),
     (12, "0.023M", 67.87, 89.46, 91.73, 84.12)],
    columns=["k", "params (paper)", "cola", "mrpc", "stsb", "rte"]).set_index("k")
#: DCFT paper, Table 5 (stride s at k = 8), DeBERTa-v3-base, one seed. The text lost the stride
#: column; the printed parameter counts identify s = 1, 2, 4, 8 (docs/method_notes.md §2 reproduces them).
#: No s = 6 row.
PAPER_TABLE5 = pd.DataFrame(
    [(1, "165.5K", 70.96, 90.69, 91.48, 88.45), (2, "85K", 70.04, 90.44, 91.37, 88.09),
     (4, "44.9k", 65.97, 88.97, 90.73, 87.36), (8, "24.6k", 71.07, 90.93, 91.50, 88.45)],
    columns=["s", "params (paper)", "cola", "mrpc", "stsb", "rte"]).set_index("s")
#: DCFT paper, Table 6 (which matrices DCFT adapts, all 12 blocks), DeBERTa-v3-base, one seed.
PAPER_TABLE6 = pd.DataFrame(
    [("q,k", "6k", 64.99, 87.25, 90.55, 83.03), ("q,v", "6k", 64.50, 89.95, 91.43, 83.03),
     ("q,k,v", "9k", 65.31, 88.97, 91.24, 84.12), ("q,k,v,o", "18.4k", 68.37, 89.95, 91.50, 85.92),
     ("all six", "24k", 71.06, 90.93, 91.56, 88.45)],
    columns=["targets", "params (paper)", "cola", "mrpc", "stsb", "rte"]).set_index("targets")


def paper_table(table: pd.DataFrame) -> pd.DataFrame:
    """A ``PAPER_TABLE*`` with task labels as column names, for printing beside ours.

    Used by: ``dcft_edu.figures.main_results``.
    """
    return table.rename(columns={t: f"{TASK_LABELS[t]} (paper)" for t in TASK_LABELS})


# ------------------------------------------------------------------ labels (hashable, readable)
def stride_value(row: Union[pd.Series, dict]) -> int:
    """The stride a DCFT run used: ``stride`` if set, else s = k (``None``/NaN mean "s = k").
    """
    s = row.get("stride")
    if s is None or (isinstance(s, float) and np.isnan(s)):
        return int(row["kernel_size"])
    return int(s)


def target_label(target_modules: Union[str, Sequence[str]]) -> str:
    """"q,v", "q,k,v,o", "all six" … for a run's ``target_modules`` (a list in the result rows).
    """
    if isinstance(target_modules, str):
        return "all six" if target_modules == "all-linear" else MATRIX_SHORT.get(target_modules, target_modules)
    names = [MATRIX_SHORT.get(t, t) for t in target_modules]
    return "all six" if sorted(names) == sorted(MATRIX_SHORT.values()) else ",".join(names)


def blocks_label(layers: Optional[Sequence[int]], n_blocks: int = 6) -> str:
    """"blocks 0–5" (all, ``layers`` None), "blocks 0–2", "blocks 3–5" … for a run's ``layers``.
    """
    if layers is None or (isinstance(layers, float) and np.isnan(layers)):
        return f"blocks 0–{n_blocks - 1}"
    ls = sorted(int(i) for i in layers)
    if ls == list(range(ls[0], ls[-1] + 1)) and len(ls) > 1:
        return f"blocks {ls[0]}–{ls[-1]}"
    return "blocks " + ",".join(map(str, ls))


def config_label(row: Union[pd.Series, dict]) -> str:
    """"q,v", "all six, blocks 0–2" …: which matrices of which blocks a run adapts (all blocks: no suffix).

    Taught in: ``12_layer_ablation``.
    """
    t, b = target_label(row["target_modules"]), blocks_label(row.get("layers"))
    return t if b == "blocks 0–5" else f"{t}, {b}"


def method_short(method: str) -> str:
    """"LoRA r=8", "DCFT k=8": the two methods of sweep ``layers``, as tables and legends name them.

    Taught in: ``12_layer_ablation``.
    """
    return {"lora": "LoRA r=8", "dcft": "DCFT k=8"}.get(method, method)


def annotate(df: pd.DataFrame) -> pd.DataFrame:
    """Add hashable columns to result rows: ``s`` (the stride used), ``targets``, ``blocks``, ``config``.

    (``target_modules`` and ``layers`` are lists in the rows, which pandas cannot group by.)

    Taught in: ``12_layer_ablation``.
    """
    df = df.copy()
    if df.empty:
        return df
    df["s"] = [stride_value(r) if r["method"] == "dcft" else np.nan for _, r in df.iterrows()]
    df["targets"] = df["target_modules"].map(target_label)
    df["blocks"] = df["layers"].map(blocks_label)
    df["config"] = [config_label(r) for _, r in df.iterrows()]
    return df


# ------------------------------------------------------------------ coverage and summaries
def grid_coverage(sweep: str, folder: Optional[Path] = None) -> pd.DataFrame:
    """Every run the named grid (``dcft_edu.experiments.recipes.GRIDS``) asks for at scale gpu, and whether its result exists.

    One row per expected run: task, method, kernel_size, s, targets, blocks, config, seed, ``present``.
    A run counts as present when ``<folder>/<sweep>/<task>-<method>-s<seed>-<key>.json`` holds its result
    (``folder`` defaults to ``committed_results_dir()``). Missing runs are never filled in.

    Used by: ``tests/test_committed_10.py`` to ``_12.py``.
    """
    folder = committed_results_dir() if folder is None else Path(folder)
    rows = []
    for run in grid_runs(GRIDS[sweep], scale="gpu"):
        d = run.to_dict()
        rows.append({**{k: d[k] for k in ("task", "method", "kernel_size", "stride", "target_modules", "layers",
                                           "seed")}, "present": done_path(folder, sweep, run) is not None})
    return annotate(pd.DataFrame(rows))


def coverage_table(cov: pd.DataFrame, rows: Sequence[str], cols: str = "task") -> pd.DataFrame:
    """Seeds present per cell of a ``grid_coverage`` result, as "n/expected (seed …)" strings.

    Used by: ``tests/test_figures_ablations.py`` (REPORT.md's coverage notes).
    """
    def fmt(g: pd.DataFrame) -> str:
        have = sorted(int(s) for s in g.loc[g["present"], "seed"])
        return f"{len(have)}/{len(g)}" + (f" (seed {','.join(map(str, have))})" if 0 < len(have) < len(g) else "")

    t = cov.groupby(list(rows) + [cols], sort=False).apply(fmt, include_groups=False).unstack(cols)
    t = t[[c for c in ABLATION_TASKS + ["sst2"] if c in t.columns]]
    t.columns = [TASK_LABELS[c] for c in t.columns]
    return t



def wide(summary: pd.DataFrame, index: Union[str, Sequence[str]], values: str = "cell",
         tasks: Sequence[str] = ABLATION_TASKS) -> pd.DataFrame:
    """Pivot ``summarize`` output to one row per ``index``, one column per task (CoLA, MRPC, …).

    Used by: ``tests/test_figures_ablations.py``.
    """
    t = summary.pivot_table(index=index, columns="task", values=values, aggfunc="first")
    t = t[[c for c in tasks if c in t.columns]]
    t.columns = [TASK_LABELS[c] for c in t.columns]
    return t


def time_table(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean ``train_time_s`` per (``by``, task), one column block per device: "98 s (n=3)" cells.

    Runs shared a GPU 14–15 at a time, so these are rough and only comparable within one device.

    Used by: ``tests/test_figures_ablations.py`` (REPORT.md's training times).
    """
    d = df.assign(dev=df["device"].map(short_device))
    g = d.groupby(["dev", by, "task"])["train_time_s"].agg(["mean", "count"]).reset_index()
    g["cell"] = [f"{m:.0f} s (n={n})" for m, n in zip(g["mean"], g["count"])]
    t = g.pivot_table(index=by, columns=["dev", "task"], values="cell", aggfunc="first")
    order = [(dv, tk) for dv in sorted(d["dev"].unique()) for tk in ABLATION_TASKS if (dv, tk) in t.columns]
    t = t[order]
    t.columns = [f"{dv} {TASK_LABELS[tk]}" for dv, tk in order]
    return t.fillna("—")



def ablation_results(name: str) -> pd.DataFrame:
    """The committed results of sweep ``name`` (``kernel``, ``stride``, ``layers``, ``main``) with the
    ``annotate`` columns; read once per process.

    Taught in: ``10_kernel_ablation``, ``11_stride_ablation``, ``12_layer_ablation``.
    """
    return annotate(load_sweep(name))


def lora_r8_summary(tasks: Sequence[str] = ABLATION_TASKS) -> pd.DataFrame:
    """LoRA r = 8 on all six matrices (sweep ``main``): mean, std, n ×100 and adapter parameters per task.

    Used by: ``kernel_ablation`` and ``stride_ablation`` (the LoRA band).
    """
    m = ablation_results("main")
    m = m[(m["method"] == "lora") & (m["r"] == 8) & m["task"].isin(list(tasks))]
    return summarize(m, ["task"]).set_index("task")


# ------------------------------------------------------------------ closed-form parameter counts
@functools.lru_cache(maxsize=None)
def _minilm_meta():
    from transformers import AutoConfig

    from ..experiments.models import default_model_path, meta_model

    return meta_model(AutoConfig.from_pretrained(default_model_path()))


def adapted_shapes(run) -> list[tuple[str, int, int]]:
    """(name, in_features, out_features) of every matrix ``run`` (a RunConfig) adapts in MiniLM.

    Which matrices: ``dcft_edu.inject.find_target_modules`` on a weightless (meta) MiniLM.

    Taught in: ``10_kernel_ablation``, ``12_layer_ablation``.
    """
    from ..inject import find_target_modules

    model = _minilm_meta()
    out = []
    for name in find_target_modules(model, run.adapter_config()):
        lin = model.get_submodule(name)
        out.append((name, lin.in_features, lin.out_features))
    return out


def expected_adapter_params(run) -> int:
    """Adapter parameters of ``run`` on MiniLM from the closed forms, summed over the adapted matrices:

    LoRA / Delta-LoRA: r·(in + out) per matrix (A: r × in, B: out × r);
    DCFT: r·(h(in) + h(out)) + k² per matrix (``dcft_num_params``).

    Taught in: ``11_stride_ablation``.
    """
    total = 0
    for _, d_in, d_out in adapted_shapes(run):
        if run.method == "dcft":
            s = run.stride if run.stride is not None else run.kernel_size
            # r·(h(in) + h(out)) + k²
            total += dcft_num_params(d_in, d_out, run.kernel_size, s, run.r)
        elif run.method in ("lora", "delta_lora"):
            # A (r, in) + B (out, r)
            total += run.r * (d_in + d_out)
        else:
            raise ValueError(f"{run.method!r} has no adapter")
    return total


def weight_change(weight_similarity: dict) -> pd.DataFrame:
    """A run's ``weight_similarity`` ({module: {"cosine", "rel_change"}}) as a table: one row per block,
    columns (query/value × cosine/rel_change), where
    rel_change = ‖W_eff(after) − W_eff(before)‖_F / ‖W_eff(before)‖_F.

    Taught in: ``12_layer_ablation`` (a block outside ``layers`` must keep rel_change 0).
    """
    from ..inject import block_index

    rows = [{"block": block_index(name), "matrix": name.rsplit(".", 1)[-1], **v}
            for name, v in weight_similarity.items()]
    return pd.DataFrame(rows).pivot(index="block", columns="matrix", values=["rel_change", "cosine"])


# ------------------------------------------------------------------ learned ΔW
def load_learned_delta(json_path: Union[str, Path]) -> np.ndarray:
    """The ΔW a run kept (``RunConfig.save_delta``): W_eff after − before training, (out, in), float32.

    Stored as float16 in ``<result stem>.delta.safetensors`` (``dcft_edu.experiments.sweep.delta_path``).

    Taught in: ``11_stride_ablation``.
    """
    from safetensors.torch import load_file

    tensors = load_file(str(delta_path(Path(json_path))))
    if len(tensors) != 1:
        raise ValueError(f"expected one tensor in {delta_path(Path(json_path))}, found {list(tensors)}")
    return next(iter(tensors.values())).float().numpy()


def rms_by_coverage(delta: np.ndarray, kernel_size: int, stride: int) -> pd.Series:
    """RMS of ΔW over the cells that receive 1, 2, 4 … kernel taps (``coverage_map``), interior only.

    The borders (``kernel_size`` cells on each side) are dropped: they get fewer taps at every
    stride. If the uneven coverage of s < k (k not a multiple of s) leaves a checkerboard in the
    learned ΔW, the RMS differs between coverage classes; with even coverage there is one class.

    Used by: ``checkerboard_contrast``.
    """
    k = kernel_size
    cov = coverage_map(k, stride, delta.shape).numpy()[k:-k, k:-k]
    x = delta[k:-k, k:-k]
    return pd.Series({int(c): float(np.sqrt(np.mean(x[cov == c] ** 2))) for c in np.unique(cov)},
                     name="rms").rename_axis("taps")


def stride_deltas() -> pd.DataFrame:
    """One row per seed-0 run of sweep ``stride`` that kept a ΔW: task, s, the ΔW (384 × 384), path.

    Taught in: ``11_stride_ablation``.
    """
    df = ablation_results("stride")
    rows = []
    for _, r in df[df["seed"] == 0].iterrows():
        if delta_path(Path(r["file"])).exists():
            rows.append({"task": r["task"], "s": int(r["s"]), "delta": load_learned_delta(r["file"]),
                         "device": short_device(r["device"]), "file": r["file"]})
    return pd.DataFrame(rows).sort_values(["s", "task"]).reset_index(drop=True)


# ------------------------------------------------------------------ figures
def _subtitle(df: pd.DataFrame, width: int = 125) -> str:
    """Backbone, scale, seeds per point and GPUs of the runs in ``df``, for a figure's title."""
    devices = short_devices(df["device"])
    n = df.groupby([c for c in ("task", "config", "method", "kernel_size", "s") if c in df])["seed"].count()
    n_range = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    return textwrap.fill(
            f"{backbone('6 blocks × 384 hidden')}, GLUE dev, scale gpu (≈20k training examples per run, batch 32); "
            f"mean ± std over seeds, n = {n_range} per point (n printed; bars only where n ≥ 2; "
            f"n < 3 in red); GPU: {devices}", width=width)


def _metric_vs_setting(df: pd.DataFrame, x: str, xlabel: str, title: str, shade: Optional[float] = None,
                       shade_label: str = "") -> Figure:
    """Shared body of ``kernel_ablation`` and ``stride_ablation``: one panel per task (2 × 2), metric vs ``x``,
    seeds as dots, mean ± std, n per point, adapter parameters on a second axis, LoRA r = 8 line."""
    lora = lora_r8_summary()
    summ = summarize(df, ["task", x])
    tasks = [t for t in ABLATION_TASKS if t in set(summ["task"])]
    ncols = 2 if len(tasks) > 1 else 1
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.9 * nrows + 1.6), layout="constrained",
                             squeeze=False)
    xs = sorted(summ[x].unique())
    for ax, task in zip(axes.flat, tasks):
        st = summ[summ["task"] == task].sort_values(x)
        runs = df[df["task"] == task]
        if shade is not None:
            ax.axvspan(shade - 0.5, shade + 0.5, color="0.9", zorder=0)
        ref = lora.loc[task]
        ax.axhline(ref["mean"], color="C2", ls="--", lw=1.5, zorder=1)
        ax.axhspan(ref["mean"] - ref["std"], ref["mean"] + ref["std"], color="C2", alpha=0.12, lw=0, zorder=0)
        ax.scatter(runs[x], 100 * runs["best_metric"], s=14, color="0.55", zorder=2)
        err = np.where(st["n"] >= 2, st["std"], np.nan)
        ax.errorbar(st[x], st["mean"], yerr=err, fmt="o-", color="C0", lw=2, ms=7, capsize=4, zorder=3)
        lo = min(100 * runs["best_metric"].min(), ref["mean"] - ref["std"])
        hi = max(100 * runs["best_metric"].max(), ref["mean"] + ref["std"])
        pad = 0.12 * (hi - lo)
        ax.set_ylim(lo - 1.6 * pad, hi + pad)
        for xv, n in zip(st[x], st["n"]):
            ax.annotate(f"n={n}", (xv, lo - 1.6 * pad), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=9, color=FEW_SEEDS_COLOR if n < 3 else "0.3",
                        fontweight="bold" if n < 3 else "normal")
        ax.set_xticks(xs)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{TASK_LABELS[task]} {METRIC_AXIS[TASK_METRIC[task]]}")
        ax.set_title(TASK_LABELS[task])
        ax2 = ax.twinx()
        ax2.plot(st[x], st["adapter_params"] / 1e3, "s:", color="0.35", ms=5, lw=1.2)
        ax2.set_ylim(0, 1.1 * summ["adapter_params"].max() / 1e3)
        ax2.grid(False)
        ax2.set_ylabel("adapter parameters (thousands)", color="0.35", fontsize=9)
        ax2.tick_params(axis="y", colors="0.35", labelsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color="C0", marker="o", lw=2, label="DCFT: mean ± std over seeds (best dev epoch)"),
        Line2D([], [], color="0.55", marker="o", ls="", ms=4, label="DCFT: one seed"),
        Line2D([], [], color="C2", ls="--", lw=1.5,
               label=f"LoRA r=8 on all six matrices ± std (sweep main, n=3; "
                     f"{int(lora['adapter_params'].iloc[0]):,} adapter params)"),
        Line2D([], [], color="0.35", marker="s", ls=":", label="DCFT adapter parameters (right axis)"),
    ]
    if shade is not None:
        handles.append(plt.Rectangle((0, 0), 1, 1, color="0.9", label=shade_label))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(title + "\n" + _subtitle(df), fontsize=11)
    return fig


@register("kernel_ablation")
def draw_kernel_ablation() -> Figure:
    """DCFT metric vs kernel size k (s = k) per task, adapter parameters on a second axis (DCFT Table 4).

    Taught in: ``10_kernel_ablation``.
    """
    df = ablation_results("kernel")
    return _metric_vs_setting(
        df, "kernel_size", "kernel size k (stride s = k)",
        "DCFT kernel-size ablation (cf. the paper's Table 4): rank-1 subspace, all six matrices of every block")


@register("stride_ablation")
def draw_stride_ablation() -> Figure:
    """DCFT metric vs stride s at kernel k = 8 per task, adapter parameters on a second axis (DCFT Table 5).

    Taught in: ``11_stride_ablation``.
    """
    df = ablation_results("stride")
    return _metric_vs_setting(
        df, "s", "stride s (kernel k = 8; s = 8 is the paper's default)",
        "DCFT stride ablation (cf. the paper's Table 5): kernel k = 8, rank-1 subspace, all six matrices of every "
        "block",
        shade=6, shade_label="s = 6: uneven coverage (checkerboard, 1, 2 or 4 taps per cell)")


def interior_tiles(delta: np.ndarray, margin: int, size: int) -> list[np.ndarray]:
    """Non-overlapping ``size`` × ``size`` tiles of ``delta`` without its ``margin``-wide border, row-major.

    Averaging the power spectra of the tiles (Bartlett's method) trades frequency resolution (1/size)
    for a less noisy spectrum; with ``size`` a multiple of the stride, multiples of 1/s fall on bins.
    """
    x = delta[margin:delta.shape[0] - margin, margin:delta.shape[1] - margin]
    n0, n1 = x.shape[0] // size, x.shape[1] // size
    return [x[i * size:(i + 1) * size, j * size:(j + 1) * size] for i in range(n0) for j in range(n1)]


def checkerboard_contrast(deltas: pd.DataFrame, kernel_size: int = 8, stride: int = 6) -> pd.DataFrame:
    """RMS of each learned ΔW on the cells that stride ``stride`` covers with 1, 2, 4 … taps, relative to the
    1-tap cells: one row per (s, task) of ``deltas`` (``stride_deltas``), one column per tap count.

    Applied to the s = 6 runs it measures their checkerboard; applied to the runs of the other strides
    (which have no such classes) it is the control: there the same cells should show ratios ≈ 1.

    Taught in: ``11_stride_ablation``.
    """
    rows = []
    for _, r in deltas.iterrows():
        rms = rms_by_coverage(r["delta"], kernel_size, stride)
        rows.append({"s": r["s"], "task": r["task"], **(rms / rms.iloc[0]).to_dict()})
    return pd.DataFrame(rows).set_index(["s", "task"]).sort_index()


@register("stride_learned_delta")
def draw_stride_learned_delta(show: int = 48, origin: int = 96, heatmap_task: str = "rte", tile: int = 120) -> Figure:
    """Learned ΔW of layer 0's query per stride (k = 8): coverage map, ΔW window, spectra of ΔW and ΔW².

    Row 1: kernel taps per cell (``coverage_map``) in a ``show`` × ``show`` window of the interior
    starting at row and column ``origin`` (96: a multiple of every stride, so each window starts a
    period). Row 2: the learned ΔW (after − before training, seed 0, task ``heatmap_task``), same
    window, divided by its interior RMS; its title gives ``checkerboard_contrast`` (RMS on the cells
    that s = 6 covers with 1, 2, 4 taps), mean over the four tasks. Rows 3–4: log10 power spectrum
    (``log_power_spectrum``) of ΔW and of ΔW² (where the change's energy sits), averaged over
    ``tile`` × ``tile`` interior tiles (``interior_tiles``; 120 holds a whole number of periods of
    every stride) of the four tasks' ΔWs.

    Taught in: ``11_stride_ablation``.
    """
    deltas = stride_deltas()
    k = 8
    strides = sorted(deltas["s"].unique())
    contrast = checkerboard_contrast(deltas, k, 6).groupby(level="s").mean()
    n = len(strides)
    fig, axes = plt.subplots(4, n, figsize=(3.4 * n, 14.6), squeeze=False, layout="constrained")
    for j, s in enumerate(strides):
        ds = deltas[deltas["s"] == s]
        shape = ds["delta"].iloc[0].shape
        cov = coverage_map(k, s, shape).numpy()
        axes[0, j].set_title(f"stride s = {s}\n{_coverage_verdict(cov[k:-k, k:-k], s, k)}", fontsize=10.5)

        ax = axes[0, j]
        win = (slice(origin, origin + show), slice(origin, origin + show))
        box = (origin - 0.5, origin + show - 0.5, origin + show - 0.5, origin - 0.5)
        c = cov[win]
        im = ax.imshow(c, cmap="viridis", vmin=0, vmax=max(1, int(cov.max())), interpolation="nearest", extent=box)
        cb = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02)
        cb.set_label("kernel taps per cell", fontsize=9)
        cb.ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))

        ax = axes[1, j]
        row = ds[ds["task"] == heatmap_task]
        d = (row if len(row) else ds)["delta"].iloc[0]
        d = d / np.sqrt(np.mean(d[k:-k, k:-k] ** 2))
        im = ax.imshow(d[win], cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest", extent=box)
        fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02).set_label("ΔW / RMS of ΔW", fontsize=9)
        ratio = " : ".join(f"{v:.2f}" for v in contrast.loc[s].values)
        ax.set_title(f"RMS on s=6's {'/'.join(map(str, contrast.columns))}-tap cells\n{ratio}"
                     + ("\n← the checkerboard" if s == 6 else "\n(control)"), fontsize=9.5,
                     color=FEW_SEEDS_COLOR if s == 6 else "0.2", fontweight="bold" if s == 6 else "normal")

        for i, (field, what) in enumerate(((ds["delta"], "ΔW"), ([x ** 2 for x in ds["delta"]], "ΔW²")), start=2):
            ax = axes[i, j]
            # Bartlett's method: average the spectra of 3 × 3 interior tiles of every task's ΔW (less noise)
            spec, freqs = log_power_spectrum([t for x in field for t in interior_tiles(x, k, tile)], 0)
            spectrum_panel(fig, ax, spec, freqs, s, vmin=-3.0, label=f"log₁₀ power of {what} (max = 0)")
        for i in range(4):
            axes[i, j].grid(False)
        for i in (0, 1):
            axes[i, j].set_xlabel("column (input dim)", fontsize=9)
            axes[i, j].tick_params(labelsize=8)
    tasks = ", ".join(TASK_LABELS[t] for t in ABLATION_TASKS if t in set(deltas["task"]))
    axes[0, 0].set_ylabel(f"coverage map (theory)\n{show}×{show} window of the interior\nrow (output dim)",
                          fontsize=10)
    axes[1, 0].set_ylabel(f"learned ΔW, {TASK_LABELS[heatmap_task]}\n(same window)\nrow (output dim)",
                          fontsize=10)
    n_t, n_tiles = len(set(deltas["task"])), len(interior_tiles(deltas["delta"].iloc[0], k, tile))
    axes[2, 0].set_ylabel(f"spectrum of learned ΔW\n(mean over {n_t} tasks × {n_tiles} tiles of {tile}²)\n"
                          "frequency along rows", fontsize=10)
    axes[3, 0].set_ylabel(f"spectrum of ΔW² (its energy)\n(mean over {n_t} tasks × {n_tiles} tiles of {tile}²)\n"
                          "frequency along rows", fontsize=10)
    fig.suptitle(
        "Checkerboard on TRAINED weights? The learned ΔW = W_eff(after) − W_eff(before) of "
        "bert.encoder.layer.0.attention.self.query (384 × 384), DCFT k = 8\n"
        f"{backbone('6 blocks × 384 hidden')}; one run per stride and task ({tasks}; seed 0, scale gpu, "
        f"{', '.join(sorted(set(deltas['device'])))}), ΔW saved as float16. Compare figures/checkerboard.png "
        "(random positive factors).", fontsize=11.5)
    fig.supxlabel(
        "How to read it: row 1 is the theory; only s = 6 (k = 8 not a multiple of s) covers ΔW unevenly. "
        "Row 2: red/blue = sign of the learned change; the titles measure the checkerboard: RMS of ΔW on the "
        "cells that s = 6 covers\nwith 1, 2 or 4 taps (1-tap cells = 1). For s = 6 the more-covered cells "
        "changed more; the same cells of the other strides' ΔW (control) did not. Row 3: the learned factors "
        "are zero-mean and irregular,\nso the spectrum of ΔW is broadband (unlike the theory figure's positive "
        "factors). Row 4: the spectrum of ΔW² shows where the change's energy repeats: multiples of 1/s "
        "(the kernel's pattern; at s = 6 also the uneven coverage).", fontsize=10.5)
    return fig


LAYER_COLORS = {"lora": "C1", "dcft": "C0"}
LAYER_MARKERS = {"q,v": "o", "q,k,v,o": "s", "all six": "D", "all six, blocks 0–2": "^", "all six, blocks 3–5": "v"}


#: where a point's label may go, in order of preference: offset from the marker (points), ha, va
LABEL_SPOTS = [((7, -4), "left", "top"), ((7, 4), "left", "bottom"), ((-8, 0), "right", "center"),
               ((-8, 8), "right", "bottom"), ((-8, -8), "right", "top"), ((7, -16), "left", "top"),
               ((7, 16), "left", "bottom"), ((-8, 20), "right", "bottom"), ((-8, -20), "right", "top")]


def _declutter(ax, labels: Sequence, bars: Sequence[float], avoid: Sequence = ()) -> None:
    """Move each label (an annotation of a marker with an error bar of half-length ``bars[i]`` in data units,
    placed in order) to the first of ``LABEL_SPOTS`` that stays inside ``ax`` and overlaps no other marker's
    surroundings (so that no label sits beside a marker not its own), no error bar, no label placed before it
    and no artist of ``avoid``. Where no spot is free (markers that nearly coincide), the label takes the spot
    that overlaps least: inside the axes first, then no earlier label or ``avoid`` artist, then the fewest
    error bars, then the fewest other markers. Call it after a draw, so the layout (and so the points'
    positions) is final."""
    renderer = ax.figure.canvas.get_renderer()
    pt = ax.figure.dpi / 72  # pixels per point
    placed = [a.get_window_extent(renderer) for a in avoid]  # boxes no label may touch: avoid, earlier labels
    near, bar_boxes = [], []  # per marker (ms = 9 points): the room its own label takes; its bar and caps
    for a, bar in zip(labels, bars):
        (x, y), (_, top), (_, bottom) = ax.transData.transform([a.xy, (a.xy[0], a.xy[1] + bar),
                                                                 (a.xy[0], a.xy[1] - bar)])
        near.append(Bbox.from_extents(x - 14 * pt, y - 6 * pt, x + 14 * pt, y + 6 * pt))
        bar_boxes.append(Bbox.from_extents(x - 4 * pt, bottom, x + 4 * pt, top))

    def text_box(a) -> Bbox:  # the label's text alone, without its leader line
        return Text.get_window_extent(a, renderer)

    def cost(box: Bbox, i: int) -> tuple[int, int, int, int]:
        inside = ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1
        return (not inside, sum(box.overlaps(t) for t in placed), sum(box.overlaps(t) for t in bar_boxes),
                sum(box.overlaps(t) for j, t in enumerate(near) if j != i))

    def put(a, spot) -> None:
        a.xyann, ha, va = spot
        a.set_horizontalalignment(ha)
        a.set_verticalalignment(va)

    for i, a in enumerate(labels):
        costs = []
        for spot in LABEL_SPOTS:
            put(a, spot)
            costs.append(cost(text_box(a).padded(-2), i))  # the text's box less its blank rim
            if costs[-1] == (0, 0, 0, 0):
                break
        put(a, LABEL_SPOTS[costs.index(min(costs))])  # the first free spot, else the least crowded
        placed.append(text_box(a))


def _layer_panel(ax, df: pd.DataFrame, task: str, missing: Sequence[str], title: str) -> tuple[list, list, list]:
    """One panel of ``layer_ablation``: metric vs adapter parameters of ``task``'s runs in ``df``, one marker
    per config (mean, ± std where n ≥ 2), the seeds as grey dots, ``missing`` configs listed in a box.
    Returns the markers' labels, their error bars and the box (``_declutter`` places the labels once the
    figure is laid out)."""
    d = df[df["task"] == task]
    summ = summarize(d, ["task", "method", "config"])
    summ["err"] = summ["std"].where(summ["n"] >= 2, 0.0)  # error bars only where there are 2 or more seeds
    labels, bars, boxes = [], [], []
    for method, sm in summ.groupby("method"):
        sm = sm.sort_values("adapter_params")
        line = sm[sm["config"].isin(["q,v", "q,k,v,o", "all six"])]
        ax.plot(line["adapter_params"], line["mean"], "-", color=LAYER_COLORS[method], lw=1, alpha=0.5, zorder=1)
        for _, r in sm.iterrows():
            ax.errorbar(r["adapter_params"], r["mean"], yerr=r["err"] or None, fmt=LAYER_MARKERS.get(r["config"], "o"),
                        color=LAYER_COLORS[method], ms=9, capsize=4, mec="k", mew=0.6, zorder=3)
            labels.append(ax.annotate(f"{r['config']}\nn={r['n']}", (r["adapter_params"], r["mean"]),
                                      xytext=LABEL_SPOTS[0][0], textcoords="offset points", fontsize=8,
                                      color=FEW_SEEDS_COLOR if r["n"] < 3 else "0.2",
                                      # a leader line, visible only where _declutter puts the label far off
                                      arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5", shrinkA=1, shrinkB=6)))
            bars.append(r["err"])
        seeds = d[d["method"] == method]
        ax.scatter(seeds["adapter_params"], 100 * seeds["best_metric"], s=10, color="0.5", zorder=2)
    if missing:
        boxes.append(ax.text(0.99, 0.02, "not run (no seed):\n" + "\n".join(missing), transform=ax.transAxes,
                             ha="right", va="bottom", fontsize=8.5, color=FEW_SEEDS_COLOR,
                             bbox=dict(fc="white", ec=FEW_SEEDS_COLOR, alpha=0.85)))
    ax.set_xscale("log")
    ax.set_xlim(4e2, 8e5)  # room on the left for the labels of DCFT's crowded ~3.8k-parameter cells
    ax.set_xlabel("trainable adapter parameters (log scale; head and pooler not counted)")
    ax.set_ylabel(f"{TASK_LABELS[task]} {METRIC_AXIS[TASK_METRIC[task]]}")
    ax.set_title(title)
    lo = min(100 * d["best_metric"].min(), (summ["mean"] - summ["err"]).min())
    hi = max(100 * d["best_metric"].max(), (summ["mean"] + summ["err"]).max())
    ax.set_ylim(lo - 0.35 * (hi - lo), hi + 0.1 * (hi - lo))
    return labels, bars, boxes


@register("layer_ablation")
def draw_layer_ablation() -> Figure:
    """Metric vs adapter parameters per adapted-matrix configuration, LoRA r = 8 and DCFT k = 8 (DCFT Table 6).

    One panel per task of the GPU sweep; where ``cpu/layers`` (``CPU_RESULTS``) holds runs, one more panel per
    task there. The CPU panels stand apart: the device alone moves a run (``analysis.device_comparison``).

    Taught in: ``12_layer_ablation``.
    """
    df = ablation_results("layers")
    cov = grid_coverage("layers")
    panels = []  # (runs, task, configs with no run, title)
    for task in [t for t in ABLATION_TASKS if t in set(cov["task"])]:
        have = cov[cov["task"] == task].groupby(["method", "config"])["present"].sum()
        panels.append((df, task, [f"{method_short(m)}: {c}" for (m, c), v in have.items() if v == 0],
                       f"{TASK_LABELS[task]}, GPU"))
    cpu = ablation_results(f"{CPU_RESULTS}/layers") if (committed_results_dir() / CPU_RESULTS / "layers").is_dir() else None
    for task in [] if cpu is None else [t for t in ABLATION_TASKS if t in set(cpu["task"])]:
        seeds = sorted(set(cpu.loc[cpu["task"] == task, "seed"]))
        panels.append((cpu, task, [], f"{TASK_LABELS[task]}, CPU (float32, seed{'s' * (len(seeds) > 1)} "
                                      f"{', '.join(map(str, seeds))}): compare within this panel only"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.6 * len(panels), 5.0), layout="constrained", squeeze=False)
    placed = [_layer_panel(ax, runs, task, missing, title) for ax, (runs, task, missing, title) in zip(axes[0], panels)]
    handles = [Line2D([], [], color=LAYER_COLORS[m], marker="o", ls="-", lw=1, label=method_short(m)
                      + (" (rank 8)" if m == "lora" else " (rank-1 subspace, s = k)")) for m in ("lora", "dcft")]
    handles += [Line2D([], [], color="0.3", marker=mk, ls="", mfc="white", label=c) for c, mk in LAYER_MARKERS.items()]
    handles.append(Line2D([], [], color="0.5", marker="o", ls="", ms=4, label="one seed"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle("Which weights to adapt (cf. the paper's Table 6): metric vs adapter parameters. q,k,v,o = the four "
                 "attention matrices, all six = q,k,v,o + the two FFN matrices\n" + _subtitle(df)
                 + ("" if cpu is None else " (the GPU panels)"), fontsize=11)
    fig.canvas.draw()  # lay the figure out, then keep the labels off the markers and each other ...
    fig.set_layout_engine("none")  # ... in a layout frozen from here on, so a save at another dpi keeps it
    for ax, (labels, bars, boxes) in zip(axes[0], placed):
        _declutter(ax, labels, bars, avoid=boxes)
    return fig
