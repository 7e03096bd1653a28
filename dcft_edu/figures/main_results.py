"""Experiment figures of 07_glue_main_results, 08_cosine_similarity and 09_efficiency, drawn from the committed results.

Each figure is a zero-argument function registered in ``dcft_edu.figures.FIGURES``;
``python -m dcft_edu.figures`` redraws them from ``figures/data/`` without training.

- ``glue_main_results``: ``draw_glue_main_results`` (DCFT Table 1, Delta-LoRA Table 4), sweep ``main``.
- ``cosine_similarity``: ``draw_cosine_similarity`` (Delta-LoRA Figure 3), sweep ``main``.
- ``efficiency``: ``draw_efficiency`` (DCFT §3.2 / Figure 2, the papers' memory claims),
  ``figures/data/efficiency/`` plus the ``main`` runs' own timings.

Besides the drawing functions, the tables the notebooks print are built here
(``main_table``, ``paper_table``, ``convergence_table``, ``similarity_frame``,
``bench_train_frame``, ``parse_bench_adapters``), so that notebook, figure and
README show the same numbers.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..experiments.analysis import TASK_LABELS, TASK_ORDER, committed_results_dir, load_sweep, method_label, summarize
from ..experiments.analysis import cell as _cell

cell = functools.partial(_cell, missing="—")  # the main table marks an empty cell with a dash
from .plotting import backbone
from .registry import register

# ------------------------------------------------------------------ conventions
#: the methods of sweep ``main``, in table order (``analysis.method_label`` names)
MAIN_METHODS = ["head only", "full FT", "LoRA r=1", "LoRA r=8", "Delta-LoRA r=8 λ=0.5", "DCFT k=2", "DCFT k=8"]
#: one colour and marker per method, shared by the three figures
METHOD_STYLE = {
    "head only": ("0.45", "v"), "full FT": ("#000000", "s"), "LoRA r=1": ("#56B4E9", "o"),
    "LoRA r=8": ("#0072B2", "o"), "Delta-LoRA r=8 λ=0.5": ("#009E73", "D"),
    "DCFT k=2": ("#E69F00", "^"), "DCFT k=8": ("#D55E00", "^"),
}
#: the metric each task reports (×100 in every table), as the papers name it
METRIC_NAMES = {"cola": "Matthews corr.", "sst2": "accuracy", "mrpc": "accuracy", "stsb": "Pearson r",
                "rte": "accuracy"}



def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "label" not in df:
        df["label"] = df.apply(method_label, axis=1)
    return df


def _order(labels: Sequence[str]) -> list[str]:
    return [m for m in MAIN_METHODS if m in set(labels)] + sorted(set(labels) - set(MAIN_METHODS))


def _subtitle(df: pd.DataFrame) -> str:
    devices = ", ".join(sorted(set(df["device"])))
    n = df.groupby(["task", "label"])["seed"].nunique()
    seeds = f"{n.min()} seeds" if n.min() == n.max() else f"{n.min()}–{n.max()} seeds"
    return (f"{backbone('6 layers × 384')}, GLUE dev sets (best epoch), ~20k training examples per run "
            f"(scale \"gpu\"), "
            f"trained on {devices}; mean ± std over {seeds}")


# --------------------------------------------------------------- 07: the table
def main_runs(df: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The committed runs of sweep ``main`` (or ``df``) with a ``label`` column.

    Taught in: ``07_glue_main_results``.
    """
    return _labelled(load_sweep("main") if df is None else df)


def main_table(df: pd.DataFrame, metric: str = "best_metric") -> pd.DataFrame:
    """The papers' layout: one row per method; parameter counts, each task's ``cell``, the average.

    ``adapter params`` counts the adapter tensors only, as the papers do (0 for head-only and
    full fine-tuning); ``trainable params`` adds what else trains (classifier head, pooler;
    every weight for full FT). ``Avg.`` is the mean over seeds of each seed's 5-task average, shown only
    for methods that have every task. Seeds are paired across tasks by their index (seed 0 of every task, …),
    so the std over these per-seed averages is the spread of the "Avg." column.

    Taught in: ``07_glue_main_results``.
    """
    df = _labelled(df)
    s = summarize(df, metric=metric)
    tasks = [t for t in TASK_ORDER if t in set(s["task"])]
    rows = []
    for label in _order(s["label"]):
        d = s[s["label"] == label].set_index("task")
        row = {"method": label,
               "adapter params": int(round(d["adapter_params"].mean())),
               "trainable params": int(round(d["trainable_params"].max()))}
        for t in tasks:
            row[TASK_LABELS[t]] = cell(d.at[t, "mean"], d.at[t, "std"], int(d.at[t, "n"])) if t in d.index else "—"
        avg = summarize(df[df["label"] == label], ["label", "seed"], metric)  # each seed's mean over its n tasks
        full = avg[avg["n"] == len(tasks)]["mean"]
        row["Avg."] = cell(full.mean(), full.std(ddof=1), len(full)) if len(full) else "—"
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def main_means(df: pd.DataFrame, metric: str = "best_metric") -> pd.DataFrame:
    """Numbers behind ``main_table``: mean ×100 per method (rows) and task (columns), plus ``avg``.

    Taught in: ``07_glue_main_results``.
    """
    df = _labelled(df)
    t = (100 * df.groupby(["label", "task"])[metric].mean()).unstack("task")
    t = t[[c for c in TASK_ORDER if c in t.columns]]
    t["avg"] = t.mean(axis=1, skipna=False)
    return t.loc[_order(t.index)]


def method_difference(df: pd.DataFrame, a: str, b: str, metric: str = "best_metric") -> pd.DataFrame:
    """Per task: mean of ``a`` minus mean of ``b`` (×100) and Welch's t-test p-value over their seeds.

    With 3 seeds per side the test is weak: read p < 0.05 as "clearly different", larger p as
    "not distinguishable with these seeds", never as "equal".
    """
    from scipy import stats

    df = _labelled(df)
    rows = []
    for t in [t for t in TASK_ORDER if t in set(df["task"])]:
        xa = 100 * df[(df["task"] == t) & (df["label"] == a)][metric].to_numpy()
        xb = 100 * df[(df["task"] == t) & (df["label"] == b)][metric].to_numpy()
        p = stats.ttest_ind(xa, xb, equal_var=False).pvalue if len(xa) >= 2 and len(xb) >= 2 else np.nan
        ma, mb = (x.mean() if len(x) else np.nan for x in (xa, xb))
        rows.append({"task": TASK_LABELS[t], f"{a}": ma, f"{b}": mb, "difference": ma - mb,
                     "n": f"{len(xa)} vs {len(xb)}", "Welch p": p})
    return pd.DataFrame(rows).set_index("task")


# ---------------------------------------------------------- the papers' numbers
#: The papers' GLUE dev results, transcribed from their tables (single seed, other backbones).
#: Every task column of the table is kept so that the reported average can be re-derived
#: (tests/test_figures_main.py does: it matches to within 0.01 — the papers round or truncate — except where
#: ``avg_note`` says otherwise); MNLI in DCFT Table 1 is the mean of its m/mm numbers.
PAPER_GLUE: list[dict] = [
    dict(source="DCFT Table 1", backbone="DeBERTa-v3-base", method="full FT", params="184M", ours="full FT",
         cola=69.21, sst2=95.64, mrpc=89.22, qqp=91.10, stsb=91.59, mnli=(89.98 + 89.95) / 2, qnli=93.78,
         rte=82.49, reported_avg=87.82,
         avg_note="the table's own numbers average to 87.87, not the printed 87.82"),
    dict(source="DCFT Table 1", backbone="DeBERTa-v3-base", method="LoRA (r=1)", params="0.17M", ours="LoRA r=1",
         cola=68.60, sst2=94.95, mrpc=88.24, qqp=89.79, stsb=91.41, mnli=(90.09 + 90.28) / 2, qnli=93.35,
         rte=81.29, reported_avg=87.23),
    dict(source="DCFT Table 1", backbone="DeBERTa-v3-base", method="DCFT k=8 (DCFTΔ)", params="0.024M",
         ours="DCFT k=8", cola=71.07, sst2=95.53, mrpc=90.93, qqp=89.20, stsb=91.56, mnli=(89.40 + 89.63) / 2,
         qnli=93.59, rte=88.45, reported_avg=88.73),
    dict(source="DCFT Table 1", backbone="DeBERTa-v3-base", method="DCFT k=2 (DCFT†)", params="0.079M",
         ours="DCFT k=2", cola=70.43, sst2=96.10, mrpc=91.42, qqp=89.60, stsb=91.76, mnli=(89.97 + 90.12) / 2,
         qnli=94.14, rte=88.45, reported_avg=88.99),
    dict(source="Delta-LoRA Table 4", backbone="RoBERTa-base", method="full FT", params="118.87M", ours="full FT",
         mnli=87.51, sst2=94.26, mrpc=88.23, cola=64.57, qnli=92.73, qqp=91.96, rte=84.11, stsb=90.56,
         reported_avg=86.74),
    dict(source="Delta-LoRA Table 4", backbone="RoBERTa-base", method="LoRA (r=8)", params="0.28M", ours="LoRA r=8",
         mnli=87.40, sst2=94.62, mrpc=89.97, cola=63.17, qnli=93.02, qqp=90.67, rte=86.64, stsb=91.54,
         reported_avg=87.12),
    dict(source="Delta-LoRA Table 4", backbone="RoBERTa-base", method="Delta-LoRA (r=8, λ=0.5)", params="0.28M",
         ours="Delta-LoRA r=8 λ=0.5", mnli=87.50, sst2=95.06, mrpc=90.19, cola=63.82, qnli=93.09, qqp=90.87,
         rte=87.00, stsb=91.57, reported_avg=87.38),
]
PAPER_TASKS = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]


def paper_table() -> pd.DataFrame:
    """The papers' numbers on our five tasks, their average over these five, and their reported average.

    Different backbones (DeBERTa-v3-base, RoBERTa-base), full training recipes, one seed:
    a reference for the ordering of methods, not a target for MiniLM's absolute numbers.

    Taught in: ``07_glue_main_results``.
    """
    rows = []
    for p in PAPER_GLUE:
        row = {"paper": p["source"], "backbone": p["backbone"], "method": p["method"], "params": p["params"],
               "our row": p["ours"]}
        row.update({TASK_LABELS[t]: p[t] for t in TASK_ORDER})
        row["avg (these 5)"] = round(float(np.mean([p[t] for t in TASK_ORDER])), 2)
        row["avg (paper, all tasks)"] = p["reported_avg"]
        row["note"] = p.get("avg_note", "")
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------ 07: per-epoch evidence
def epoch_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run and epoch: task, label, seed, epoch, metric (×100, the task's main one), train_loss,
    dev_loss and train_penalty (γ·R; NaN for files older than the split, whose DCFT train_loss includes γ·R).
    """
    df = _labelled(df)
    rows = []
    for _, r in df.iterrows():
        for e in r["epochs"]:
            rows.append({"task": r["task"], "label": r["label"], "seed": r["seed"], "epoch": e["epoch"],
                         "n_epochs": len(r["epochs"]), "metric": 100 * e[r["main_metric"]],
                         "train_loss": e["train_loss"], "dev_loss": e["loss"],
                         "train_penalty": e.get("train_penalty", np.nan)})
    return pd.DataFrame(rows)


def convergence_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and method, averaged over seeds: is the run still learning when it stops?

    Columns: ``epoch 1`` (metric after the first epoch), ``last`` (after the last), ``last gain``
    (last epoch minus the one before: > 0 means still improving, though the learning rate has
    decayed to ~0 by then), ``best = last`` (share of seeds whose best epoch is the last one),
    ``train loss epoch 1`` and ``train loss last`` (mean training loss of those epochs).

    Taught in: ``07_glue_main_results``.
    """
    e = epoch_frame(df)
    last = e[e["epoch"] == e["n_epochs"]].set_index(["task", "label", "seed"])
    prev = e[e["epoch"] == e["n_epochs"] - 1].set_index(["task", "label", "seed"])
    first = e[e["epoch"] == 1].set_index(["task", "label", "seed"])
    best = e.loc[e.groupby(["task", "label", "seed"])["metric"].idxmax()].set_index(["task", "label", "seed"])
    per_run = pd.DataFrame({
        "epoch 1": first["metric"], "last": last["metric"], "last gain": last["metric"] - prev["metric"],
        "best = last": (best["epoch"] == best["n_epochs"]).astype(float),
        "train loss epoch 1": first["train_loss"], "train loss last": last["train_loss"],
    })
    out = per_run.groupby(level=["task", "label"]).mean()
    out["n"] = per_run.groupby(level=["task", "label"]).size()
    return out


# -------------------------------------------------------- 08: weight similarity
_SIM_NAME = re.compile(r"layer\.(\d+)\.attention\.self\.(query|value)$")


def similarity_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run, block and projection (Wq, Wv): cosine(W₀, W) and ‖W − W₀‖/‖W₀‖ from ``weight_similarity``.

    W is the *effective* weight after training (W + ΔW; for Delta-LoRA W itself has moved
    too), W₀ the one before (``trainer.effective_weights``). ``one_minus_cos`` is 1 − cosine,
    clipped below at 1e-12 so a log axis can show it (head-only runs: exactly 0 up to rounding).

    Taught in: ``08_cosine_similarity``.
    """
    df = _labelled(df)
    rows = []
    for _, r in df.iterrows():
        for name, v in r["weight_similarity"].items():
            m = _SIM_NAME.search(name)
            if m is None:
                continue
            rows.append({"task": r["task"], "label": r["label"], "seed": r["seed"], "layer": int(m[1]),
                         "proj": {"query": "Wq", "value": "Wv"}[m[2]], "cosine": v["cosine"],
                         "rel_change": v["rel_change"]})
    out = pd.DataFrame(rows)
    out["one_minus_cos"] = (1 - out["cosine"]).clip(lower=1e-12)
    return out


def similarity_ordering(sim: pd.DataFrame, task: str, methods: Sequence[str]) -> pd.DataFrame:
    """Methods ranked by their cosine to W₀ on ``task`` (mean over blocks, Wq and Wv, and seeds), highest first.

    Also: in how many of the 12 (block, projection) cells each method is the highest / the lowest
    of ``methods`` (on the seed mean).

    Taught in: ``08_cosine_similarity``.
    """
    d = sim[(sim["task"] == task) & sim["label"].isin(methods)]
    per_cell = d.groupby(["layer", "proj", "label"])["cosine"].mean().unstack("label")[list(methods)]
    out = pd.DataFrame({
        "mean cosine": per_cell.mean(),
        "mean 1 − cosine": (1 - per_cell).mean(),
        "mean rel. change": d.groupby("label")["rel_change"].mean().reindex(methods),
        "cells highest": per_cell.idxmax(axis=1).value_counts().reindex(methods, fill_value=0),
        "cells lowest": per_cell.idxmin(axis=1).value_counts().reindex(methods, fill_value=0),
    })
    return out.sort_values("mean cosine", ascending=False)


# ------------------------------------------------------------- 09: efficiency
#: bench_train's method keys -> the sweep ``main`` label of the same configuration
BENCH_TO_MAIN = {"head": "head only", "lora": "LoRA r=8", "dcft_fast": "DCFT k=8", "delta_lora": "Delta-LoRA r=8 λ=0.5",
                 "full": "full FT"}
BENCH_ORDER = ["head", "full", "lora", "peft_lora", "delta_lora", "dcft_fast", "dcft_conv"]


def bench_train_frame(device: str = "cuda", folder: Optional[Union[str, Path]] = None,
                      train_sizes: Optional[dict[str, int]] = None, backbone: str = "minilm",
                      compiled: bool = False) -> pd.DataFrame:
    """The ``bench_train_<device>_*.json`` files (``device``: "cuda" or "cpu") of one ``backbone`` as one table,
    one row per file and method (a file without a backbone setting is MiniLM's); ``compiled``: the files measured
    with ``--compile`` instead of those without.

    Columns: samples/s, ``speed vs LoRA`` (÷ our LoRA r=8's, same file), ``memory MiB`` (CUDA
    max allocated while that method trained; all seven models stay resident in the one
    process, so every number includes their weights: differences are meaningful, ratios are
    diluted; on a CPU: each method's peak RSS growth in a fresh process), ``memory vs LoRA``, device. With ``train_sizes`` ({task: training examples per
    epoch}) also ``s per epoch`` = examples / samples/s. ``length``: the batches' max_length.

    Taught in: ``09_efficiency``.
    """
    from ..experiments.bench_train import LABELS

    folder = Path(folder) if folder is not None else committed_results_dir() / "efficiency"
    rows = []
    for f in sorted(folder.glob(f"bench_train_{device}_*.json")):
        r = json.loads(f.read_text())
        if r["settings"].get("backbone", "minilm") != backbone or bool(r["settings"].get("compile")) != compiled:
            continue
        task = r["settings"]["task"]
        sps, mem = r["samples_per_s"], r["memory_mb"]
        for m in sps:
            row = {"task": task, "method": m, "label": LABELS.get(m, m), "samples/s": sps[m],
                   "speed vs LoRA": sps[m] / sps["lora"], "memory MiB": mem.get(m, np.nan),
                   "memory vs LoRA": mem.get(m, np.nan) / mem.get("lora", np.nan), "device": r["device"],
                   "batch": f"{r['settings']['batch_size']} × {r['settings']['max_length']}",
                   "length": r["settings"]["max_length"]}
            if train_sizes is not None and task in train_sizes:
                row["s per epoch"] = train_sizes[task] / sps[m]
            rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no bench_train_{device}_*.json of {backbone} under {folder}: run "
                                f"`python -m dcft_edu.experiments.bench train --backbone {backbone} --out ...`")
    out = pd.DataFrame(rows)
    out["method"] = pd.Categorical(out["method"], [m for m in BENCH_ORDER if m in set(out["method"])]
                                   + sorted(set(out["method"]) - set(BENCH_ORDER)), ordered=True)
    return out.sort_values(["length", "task", "method"]).reset_index(drop=True)


def train_sizes(df: pd.DataFrame) -> dict[str, int]:
    """Training examples per epoch of each task at the runs' scale (examples seen ÷ epochs, from the results).

    Taught in: ``09_efficiency``.
    """
    n = (df["train_examples_seen"] / df["epochs"].map(len)).groupby(df["task"]).agg(["min", "max"])
    if (n["min"] != n["max"]).any():
        raise ValueError(f"runs of one task saw different numbers of examples per epoch: {n}")
    return {t: int(v) for t, v in n["min"].items()}


def parse_bench_adapters(text: str, table: str = "ms per forward+backward") -> pd.DataFrame:
    """A printed table of ``python -m dcft_edu.experiments.bench adapters`` as a DataFrame: one row per line, one column per shape.

    ``table`` is the start of the table's header line: "ms per forward+backward" (milliseconds per method)
    or "ratio" (the ratios the benchmark printed from its unrounded times). Reads up to the first blank line.

    Taught in: ``09_efficiency``.
    """
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith(table) and "→" in l), None)
    if start is None:
        raise ValueError(f"no table starting with {table!r} in this text")
    shapes = [w for w in lines[start].split() if "→" in w]
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        parts = line.rsplit(None, len(shapes))
        rows[parts[0].strip()] = [float(x) for x in parts[1:]]
    return pd.DataFrame.from_dict(rows, orient="index", columns=shapes)


def sweep_speed(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and method of sweep ``main``: samples/s, training seconds and peak CUDA memory (means over seeds).

    These runs trained 14 at a time on one GPU, so their speeds are rough (each process
    competed for the GPU and 16 CPU cores); their memory is per process and clean.

    Taught in: ``09_efficiency``.
    """
    df = _labelled(df)
    g = df.groupby(["task", "label"])
    out = pd.DataFrame({"samples/s": g["samples_per_s"].mean(), "train s": g["train_time_s"].mean(),
                        "peak MiB": g["peak_memory_mb"].mean(), "n": g.size()})
    return out


def measure_train_speed(methods: Sequence[str] = ("lora", "dcft_fast"), task: str = "rte", steps: int = 1,
                        batch_size: int = 8, max_length: int = 32, device: str = "cpu") -> pd.DataFrame:
    """A miniature ``bench train``: samples/s of each method for ``steps`` optimizer steps, and the ratio to the first.

    Same code path as the committed benchmark (``bench_train.build``, ``bench_train.batches``),
    one warm-up step, then one timed round; seconds on a CPU at the default tiny size.

    Taught in: ``09_efficiency``.
    """
    import torch

    from ..experiments.bench_train import batches, build, train_steps

    dev = torch.device(device)
    data = batches(task, steps, batch_size, max_length, dev)
    out = []
    for m in methods:
        model, opt = build(m, task, 0, dev)  # Delta-LoRA's W update hook is registered on opt
        train_steps(model, opt, data[:1])  # warm-up
        t = train_steps(model, opt, data)
        out.append({"method": m, "samples/s": steps * batch_size / t})
    res = pd.DataFrame(out)
    res["ratio to " + methods[0]] = res["samples/s"] / res["samples/s"].iloc[0]
    return res


# ------------------------------------------------------------------ figures
def _err(ax, x, mean, std, n, label, legend_label=None, **kw):
    color, marker = METHOD_STYLE.get(label, ("C7", "o"))
    yerr = std if n >= 2 and not np.isnan(std) else None
    ax.errorbar([x], [mean], yerr=None if yerr is None else [yerr], fmt=marker, color=color, ms=7, capsize=3,
                elinewidth=1.3, label=legend_label or label, **kw)


@register("glue_main_results")
def draw_glue_main_results() -> Figure:
    """Per task: dev metric vs adapter parameters (log x), every method of sweep ``main`` (DCFT Table 1, Delta-LoRA Table 4)."""
    df = main_runs()
    s = summarize(df)
    avg = summarize(df, ["label", "seed"])  # each seed's mean over its n tasks
    tasks = [t for t in TASK_ORDER if t in set(s["task"])]
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.4), layout="constrained")
    panels = tasks + ["avg"]
    dodge = {"Delta-LoRA r=8 λ=0.5": 1.35}  # same parameter count as LoRA r=8: drawn a little to the right
    for ax, t in zip(axes.flat, panels):
        if t == "avg":
            a = avg[avg["n"] == len(tasks)].groupby("label")["mean"].agg(["mean", "std", "count"])
            d = pd.DataFrame({"mean": a["mean"], "std": a["std"], "n": a["count"]})
            d = d.join(s.groupby("label")[["adapter_params", "trainable_params"]].mean())
            title, ylab = f"Average of the {len(tasks)} tasks", "mean of the 5 task metrics (×100)"
        else:
            d = s[s["task"] == t].set_index("label")
            title, ylab = f"{TASK_LABELS[t]}", f"dev {METRIC_NAMES[t]} (×100)"
        lo, hi = np.inf, -np.inf
        for label in _order(d.index):
            r = d.loc[label]
            if label == "head only":
                continue
            sd = 0.0 if np.isnan(r["std"]) else r["std"]
            lo, hi = min(lo, r["mean"] - sd), max(hi, r["mean"] + sd)
            x = r["trainable_params"] if label == "full FT" else r["adapter_params"] * dodge.get(label, 1.0)
            _err(ax, x, r["mean"], r["std"], int(r["n"]), label,
                 "full FT (placed at all 22.7M weights)" if label == "full FT" else None)
        pad = 0.12 * (hi - lo)
        ymin, ymax = lo - pad, hi + pad
        if "head only" in d.index:
            r = d.loc["head only"]
            color = METHOD_STYLE["head only"][0]
            if r["mean"] >= ymin - 3 * pad:  # close enough: show the line (and its ± std band)
                ymin = min(ymin, r["mean"] - pad)
                ax.axhline(r["mean"], color=color, ls="--", lw=1.2, label="head only (0 adapter params)")
                if r["n"] >= 2:
                    ax.axhspan(r["mean"] - r["std"], r["mean"] + r["std"], color=color, alpha=0.12, lw=0)
            else:  # far below the others: say where it is instead of squashing the axis
                ax.annotate(f"head only: {r['mean']:.1f} (below the axis)", xy=(0.02, 0.02), xycoords="axes fraction",
                            fontsize=9, color="0.3", va="bottom")
        ax.set_ylim(ymin, ymax)
        ax.set_xscale("log")
        ax.set_xlim(3e3, 8e7)
        ax.set_title(title)
        ax.set_ylabel(ylab)
        ax.set_xlabel("adapter parameters (log scale)")
    legend = {}
    for ax in axes.flat:  # every method once (head only may be off the axis in some panels)
        for h, l in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(l, h)
    order = sorted(legend, key=lambda l: not l.startswith("head"))
    fig.legend([legend[l] for l in order], order, loc="outside lower center", ncol=4, fontsize=10, frameon=False)
    fig.suptitle("GLUE dev results vs. parameter count (analogue of DCFT Table 1 and Delta-LoRA Table 4)\n"
                 + _subtitle(df) + "\n"
                 "x: adapter parameters as the papers count them (adapter tensors only; the classifier head and "
                 "pooler, ~148k, also train in every method).\nFull FT is placed at all its 22.7M weights; head only "
                 "trains no adapter: dashed line (± std band). Delta-LoRA has LoRA r=8's count, drawn ×1.35 to its right.",
                 fontsize=10.5)
    return fig


@register("cosine_similarity")
def draw_cosine_similarity(task: str = "mrpc") -> Figure:
    """Cosine(W₀, W) of Wq and Wv per block after fine-tuning, four methods (Delta-LoRA Figure 3), and 1 − cosine."""
    df = main_runs()
    sim = similarity_frame(df)
    methods = ["full FT", "LoRA r=8", "Delta-LoRA r=8 λ=0.5", "DCFT k=8"]
    sim = sim[sim["label"].isin(methods)]
    fig = plt.figure(figsize=(15, 8.6), layout="constrained")
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1, 1.15])
    d = sim[sim["task"] == task]
    offsets = dict(zip(methods, np.linspace(-0.15, 0.15, len(methods))))
    for j, proj in enumerate(["Wq", "Wv"]):
        for i, (col, ylab, log) in enumerate([("cosine", "cosine(W₀, W)  (1 = unchanged)", False),
                                               ("one_minus_cos", "1 − cosine(W₀, W)  (log; lower = closer to W₀)", True)]):
            ax = fig.add_subplot(gs[i, j])
            for m in methods:
                g = d[(d["label"] == m) & (d["proj"] == proj)].groupby("layer")[col].agg(["mean", "std", "count"])
                color, marker = METHOD_STYLE[m]
                yerr = g["std"].where(g["count"] >= 2)
                ax.errorbar(g.index + offsets[m], g["mean"], yerr=yerr, fmt=marker + "-", color=color, ms=5,
                            capsize=2.5, lw=1.3, label=m)
            ax.set_xticks(range(6))
            ax.set_xlabel("transformer block")
            ax.set_ylabel(ylab)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{TASK_LABELS[task]}, {proj} ({'query' if proj == 'Wq' else 'value'}): "
                         + ("cosine (as in the paper)" if not log else "1 − cosine"), fontsize=10.5)
    ax = fig.add_subplot(gs[:, 2])
    per = sim.groupby(["task", "label", "seed"])["one_minus_cos"].mean().reset_index()
    tasks = [t for t in TASK_ORDER if t in set(per["task"])]
    for m in methods:
        g = per[per["label"] == m].groupby("task")["one_minus_cos"].agg(["mean", "std", "count"]).reindex(tasks)
        color, marker = METHOD_STYLE[m]
        ax.errorbar(np.arange(len(tasks)) + offsets[m], g["mean"], yerr=g["std"].where(g["count"] >= 2),
                    fmt=marker, color=color, ms=7, capsize=2.5, label=m)
    ax.set_xticks(range(len(tasks)), [TASK_LABELS[t] for t in tasks])
    ax.set_yscale("log")
    ax.set_xlabel("task")
    ax.set_ylabel("1 − cosine (log scale)")
    ax.set_title("Every task: 1 − cosine, mean over the 12 matrices\n(Wq and Wv of blocks 0–5)", fontsize=10.5)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
    n = sim.groupby(["task", "label"])["seed"].nunique()
    seeds = f"{n.min()} seeds" if n.min() == n.max() else f"{n.min()}–{n.max()} seeds"
    fig.suptitle("How far fine-tuning moves the attention weights: cosine similarity between the pretrained W₀ and "
                 "the effective fine-tuned W (Delta-LoRA Figure 3)\n"
                 "W = W₀ + ΔW after training (for Delta-LoRA the base weight itself has moved too); W₀ = the same before "
                 "training (for DCFT it includes its tiny random init ΔW).\n"
                 f"{backbone('6 layers × 384')}, sweep main, mean ± std over {seeds}. Learning rates: full FT 1e-4; "
                 "every adapter the task's DCFT-recipe rate (8e-4 to 2.2e-3).", fontsize=10.5)
    return fig


@register("efficiency")
def draw_efficiency() -> Figure:
    """Training speed and memory per method (GPU benchmark and sweep ``main``), one adapted layer's cost (DCFT Figure 2, §3.2)."""
    df = main_runs()
    sizes = train_sizes(df)
    bench = bench_train_frame(train_sizes=sizes)
    adapters_txt = (committed_results_dir() / "efficiency" / "bench_adapters_cuda.txt").read_text()
    layer = parse_bench_adapters(adapters_txt)
    layer_dev = re.search(r"device cuda \((.+?)\)", adapters_txt)
    tasks = [t for t in TASK_ORDER if t in set(bench["task"])]
    methods = list(bench["method"].cat.categories)
    labels = bench.drop_duplicates("method").set_index("method")["label"]
    style = {m: METHOD_STYLE.get(BENCH_TO_MAIN.get(m, ""), None) for m in methods}
    style["peft_lora"] = ("#CC79A7", "o")
    style["dcft_conv"] = ("#F0E442", "^")

    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5), layout="constrained")
    # (a) samples/s
    def bars(ax, col: str, note, text_pad: float, xmax: float) -> None:
        """One bar per method: median over tasks, a dot per task, ``note(v)`` written after the bar."""
        for i, m in enumerate(methods):
            v = bench[bench["method"] == m]
            ax.barh(i, v[col].median(), color=style[m][0], alpha=0.85, edgecolor="0.2")
            ax.plot(v[col], [i] * len(v), "k.", ms=4)
            ax.text(v[col].max() + text_pad, i, note(v), va="center", fontsize=8.5)
        ax.set_yticks(np.arange(len(methods)), [labels[m] for m in methods])
        ax.invert_yaxis()
        ax.set_xlim(0, bench[col].max() * xmax)

    ax = axes[0, 0]
    bars(ax, "samples/s", lambda v: f"{v['speed vs LoRA'].median():.2f}× LoRA", 120, 1.35)
    ax.set_xlabel("training samples / s (bar: median of 5 tasks; dots: each task)")
    ax.set_title("(a) Speed, GPU benchmark")
    # (b) memory
    ax = axes[0, 1]
    lora_mib = bench[bench["method"] == "lora"]["memory MiB"].median()
    bars(ax, "memory MiB", lambda v: f"{v['memory MiB'].median() - lora_mib:+.0f} MiB vs LoRA", 30, 1.4)
    ax.set_xlabel("CUDA max allocated while training (MiB)\n(all 7 models resident in the one process: compare differences)")
    ax.set_title("(b) Peak memory, GPU benchmark")
    # (c) wall time per epoch
    ax = axes[0, 2]
    show = ["head", "full", "lora", "delta_lora", "dcft_fast", "dcft_conv"]
    w = 0.8 / len(show)
    for k, m in enumerate(show):
        v = bench[bench["method"] == m].set_index("task").reindex(tasks)
        ax.bar(np.arange(len(tasks)) + (k - (len(show) - 1) / 2) * w, v["s per epoch"], w, color=style[m][0],
               edgecolor="0.2", lw=0.5, label=labels[m])
    ax.set_xticks(range(len(tasks)), [f"{TASK_LABELS[t]}\n{sizes[t]:,}" for t in tasks], fontsize=9.5)
    ax.set_xlabel("task and its training examples per epoch at our scale")
    ax.set_ylabel("seconds per epoch (examples ÷ samples/s)", fontsize=10)
    ax.set_ylim(0, bench.loc[bench["method"].isin(show), "s per epoch"].max() * 1.6)
    ax.set_title("(c) Wall time per epoch, GPU benchmark")
    ax.legend(fontsize=8, ncol=2, loc="upper right")
    # (d) one adapted layer
    ax = axes[1, 0]
    rows = [r for r in layer.index if "frozen" not in r]
    w = 0.8 / len(rows)
    colors = {"LoRA r=1": METHOD_STYLE["LoRA r=1"][0], "LoRA r=8": METHOD_STYLE["LoRA r=8"][0],
              "DCFT fast (k=8, s=8)": METHOD_STYLE["DCFT k=8"][0], "DCFT conv (k=8, s=8)": "#F0E442"}
    for k, r in enumerate(rows):
        ax.bar(np.arange(layer.shape[1]) + (k - (len(rows) - 1) / 2) * w, layer.loc[r], w, label=r,
               color=colors.get(r, f"C{k}"), edgecolor="0.2", lw=0.5)
    frozen = [r for r in layer.index if "frozen" in r]
    if frozen:
        for j, v in enumerate(layer.loc[frozen[0]]):
            ax.hlines(v, j - 0.42, j + 0.42, color="k", ls=":", lw=1.2, label="frozen layer, forward only" if j == 0 else None)
    ax.set_xticks(range(layer.shape[1]), list(layer.columns))
    ax.set_xlabel("layer shape, in → out (attention; FFN in; FFN out)")
    ax.set_ylabel("ms per forward + backward (8,192 tokens, fp32)")
    ax.set_title(f"(d) One adapted layer at DeBERTa-base shapes\n({layer_dev[1] if layer_dev else 'GPU'}, median of 5)",
                 fontsize=11)
    ax.legend(fontsize=8)
    # (e) one layer on the CPU, MiniLM and DeBERTa-base shapes, as ratios measured in one run
    cpu_layer = json.loads((committed_results_dir() / "efficiency" / "bench_adapters_cpu.json").read_text())
    ax = axes[1, 1]
    from ..experiments.bench import SHAPE_SETS

    shapes = [f"{i}→{o}" for i, o in SHAPE_SETS["both"] if f"{i}→{o}" in cpu_layer["fast_vs_lora1"]]
    w = 0.8 / 3
    for k, (key, label, color) in enumerate([
            ("fast_vs_lora1", "DCFT fast ÷ LoRA r=1", METHOD_STYLE["LoRA r=1"][0]),
            ("fast_vs_lora8", "DCFT fast ÷ LoRA r=8", METHOD_STYLE["LoRA r=8"][0]),
            ("conv_vs_fast", "DCFT conv ÷ DCFT fast", "#F0E442")]):
        x = np.arange(len(shapes)) + (k - 1) * w
        ax.bar(x, [cpu_layer[key][sh] for sh in shapes], w, color=color, edgecolor="0.2", lw=0.5, label=label)
        for xi, sh in zip(x, shapes):
            ax.text(xi, cpu_layer[key][sh] + 0.05, f"{cpu_layer[key][sh]:.2f}", ha="center", fontsize=7, rotation=90)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xticks(range(len(shapes)), shapes, fontsize=8, rotation=20)
    ax.set_xlabel("layer shape, in → out (MiniLM: 384/1536; DeBERTa-base: 768/3072)")
    ax.set_ylabel("ratio of ms per forward + backward")
    ax.set_ylim(0, max(max(cpu_layer[k].values()) for k in ("fast_vs_lora1", "fast_vs_lora8", "conv_vs_fast")) * 1.3)
    ax.set_title(f"(e) One layer on the 2-core CPU: time ratios, one run\n"
                 f"({cpu_layer['settings']['tokens']:,} tokens, fp32, median of {cpu_layer['settings']['repeats']})",
                 fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    # (f) the paper's backbone, random weights, on the CPU: speed ratios and time per epoch, one bar per official
    # max length measured (each file times one task's batch shape: CoLA at 64 tokens, RTE at 320)
    ax = axes[1, 2]
    paper = bench_train_frame("cpu", backbone="deberta-v3-base")
    p_methods = [m for m in methods + ["lora_r1"] if m in set(paper["method"])]
    p_labels = paper.drop_duplicates("method").set_index("method")["label"]
    lengths = sorted(paper["length"].unique())
    # one file per max length: its settings (task, rounds) and per-epoch estimates, which the frame leaves out
    recs = {L: json.loads((committed_results_dir() / "efficiency" / f"bench_train_cpu_deberta-v3-base_{L}.json")
                          .read_text()) for L in lengths}
    st0 = recs[lengths[0]]["settings"]
    colors = [style.get(m, ("#999999",))[0] if m != "lora_r1" else METHOD_STYLE["LoRA r=1"][0] for m in p_methods]
    height = 0.8 / len(lengths)
    for j, length in enumerate(lengths):
        v = paper[paper["length"] == length].set_index("method").loc[p_methods]
        rec = recs[length]
        task = rec["settings"]["task"]
        y = np.arange(len(p_methods)) + (j - (len(lengths) - 1) / 2) * height
        ax.barh(y, v["speed vs LoRA"], height=height * 0.92, color=colors, alpha=0.85 if j == 0 else 0.5,
                edgecolor="0.2", hatch=None if j == 0 else "//")
        for i, m in enumerate(p_methods):
            ax.text(v.loc[m, "speed vs LoRA"] + 0.03, y[i], f"{v.loc[m, 'speed vs LoRA']:.2f}×  ({length} tok: "
                    f"{rec['epoch_s'][m][task] / 3600:.1f} h per {TASK_LABELS[task]} epoch)", va="center", fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.set_yticks(np.arange(len(p_methods)), [p_labels[m] for m in p_methods])
    ax.invert_yaxis()
    ax.set_xlim(0, paper["speed vs LoRA"].max() * 2.1)
    ax.set_xlabel("training samples/s ÷ LoRA r=8's, same run\n"
                  f"idle machine, few timed steps ({lengths[0]} tok: {st0['rounds']} × {st0['steps']}): within ±10 % is a tie\n"
                  "(Delta-LoRA does strictly more work than LoRA r=8); the GPU run is pending", fontsize=10)
    ax.set_title(f"(f) DeBERTa-v3-base (random weights), 2-core CPU\nbatch {st0['batch_size']} × "
                 + " and ".join(str(L) for L in lengths) + " tokens (hatched: the longer), median", fontsize=11)

    dev = ", ".join(sorted(set(bench["device"])))
    b = bench.iloc[0]["batch"]
    fig.suptitle("Training cost of each method (DCFT's efficiency claims, §3.2 and Figure 2; Delta-LoRA: "
                 "\"comparable memory and computation to LoRA\")\n"
                 f"(a)–(c): dcft_edu.bench train, MiniLM-L6 on {dev}, the GPU to itself: batches of {b} tokens (padded), "
                 "bf16 autocast, 8 steps × 3 interleaved rounds per task, median; DCFT without its orthogonal penalty.\n"
                 "(d): dcft_edu.bench adapters, one layer alone. (a)–(d) were measured before the Delta-LoRA W update "
                 "was grouped by shape (the GPU re-run is pending).\n(e)–(f): the idle 2-core CPU, methods interleaved "
                 "in one run: read the ratios.",
                 fontsize=10.5)
    return fig
