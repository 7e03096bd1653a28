# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · GLUE main results: head-only, full FT, LoRA, Delta-LoRA and DCFT on MiniLM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/07_glue_main_results.ipynb)
#
# **Papers.** Zhang et al., *Parameter-Efficient Fine-Tuning of Large Language Models via Deconvolution in
# Subspace* (DCFT), COLING 2025 — **Table 1** (GLUE dev, DeBERTa-v3-base): DCFT with k = 8 (0.024M parameters)
# beats LoRA r = 1 (0.17M) on most tasks, "an 8× reduction in parameters". Zi et al., *Delta-LoRA: Fine-Tuning
# High-Rank Parameters with the Delta of Low-Rank Matrices*, 2023 — **Table 4** (GLUE dev, RoBERTa-base):
# Delta-LoRA 87.38 average vs LoRA 87.12.
#
# This notebook is our analogue of both tables on a much smaller backbone, MiniLM-L6 (the packaged
# all-MiniLM-L6-v2: BERT, 6 layers × 384 hidden, 22.7M weights), on five GLUE tasks, with **3 seeds** per cell
# (the papers report one). Every method adapts all six linear matrices of every block (query, key, value,
# attention output, FFN in, FFN out: 36 matrices) and trains the classifier head and pooler:
#
# | method | update of each adapted $W$ ($h_\text{out}\times h_\text{in}$) | adapter parameters per matrix |
# |---|---|---|
# | head only | none (only the classifier head and pooler train) | 0 |
# | full FT | every weight | — |
# | LoRA $r$ | $\Delta W = \frac{\alpha}{r} B A$ | $r\,(h_\text{in} + h_\text{out})$ |
# | Delta-LoRA | LoRA, and $W \leftarrow W + \lambda\frac{\alpha}{r}(B_{t+1}A_{t+1} - B_tA_t)$ after step $K$ | $r\,(h_\text{in} + h_\text{out})$ |
# | DCFT $k$ | $\Delta W = \frac{\alpha}{r}\,(b\,a^\top)\otimes C$ ($h_\text{out}\times h_\text{in}$), $a\in\mathbb{R}^{h_\text{in}/k}$, $b\in\mathbb{R}^{h_\text{out}/k}$, $C\in\mathbb{R}^{k\times k}$ | $h_\text{in}/k + h_\text{out}/k + k^2$ |
#
# (DCFT with stride $s = k$; the Kronecker form is notebook 02's.) DCFT also adds the orthogonal penalty
# $\gamma R(A, B)$ to the loss (notebook 04).

# %%
import subprocess
import sys

if "google.colab" in sys.modules:  # on Colab: install dcft_edu from GitHub (locally it is installed already)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "dcft_edu @ git+https://github.com/dcft-edu/dcft_edu"], check=True)

import torch
from dcft_edu.experiments.runinfo import notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import tempfile
from pathlib import Path

import datasets
import matplotlib.pyplot as plt
import pandas as pd

from dcft_edu import adapter_layers
from dcft_edu.experiments.analysis import TASK_LABELS, summarize
from dcft_edu.figures.main_results import (convergence_table, draw_glue_main_results, epoch_frame, main_means, main_runs,
                                   main_table, method_difference, paper_table, similarity_frame)
from dcft_edu.experiments.models import load_model
from dcft_edu.figures.plotting import savefig, set_theme
from dcft_edu.experiments.presets import make_run
from dcft_edu.experiments.sweep import load_results, run_sweep
from dcft_edu.experiments.trainer import prepare_model
from transformers import set_seed

set_theme()
datasets.disable_progress_bars()
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)

# %% [markdown]
# ## 1. How a sweep runs (quick mode: a tiny one, right here)
#
# A sweep is a grid of `RunConfig`s (`dcft_edu.experiments.sweep.GRIDS["main"]`: 5 tasks × 7 methods × 3 seeds);
# `run_sweep` trains every run whose result file is missing and writes one JSON per run;
# `analysis.summarize` turns the files into mean ± std over seeds. In quick mode (CI) we do exactly that at a
# toy size — three methods on the first 32 RTE examples, one epoch, into a temporary folder — to check the
# pipeline end to end. Its accuracies are noise.

# %%
if QUICK:
    tiny_dir = Path(tempfile.mkdtemp(prefix="dcft_edu_07_"))
    grid = {"task": ["rte"], "method": ["head", "lora", "dcft"], "seed": [0]}
    run_sweep("tiny", grid, tiny_dir, scale="quick", limit_train=32, limit_dev=32, log=lambda m: None)
    tiny = load_results(tiny_dir / "tiny")
    tiny_summary = summarize(tiny)
    print(tiny_summary[["task", "label", "mean", "std", "n", "adapter_params", "trainable_params"]])
    assert sorted(tiny_summary["label"]) == ["DCFT k=8", "LoRA r=8", "head only"]
    assert (tiny_summary["n"] == 1).all() and tiny_summary["std"].isna().all()  # one seed: no std
    assert tiny_summary["mean"].between(0, 100).all()  # accuracy ×100
    t = main_table(tiny)
    assert list(t.columns) == ["adapter params", "trainable params", "RTE", "Avg."]
    assert t.loc["head only", "adapter params"] == 0 and t.loc["DCFT k=8", "adapter params"] > 0
    assert t.loc["DCFT k=8", "adapter params"] < t.loc["LoRA r=8", "adapter params"]
    print(t)

# %% [markdown]
# ## 2. The committed results
#
# Not retrained here. They come from `bash scripts/gpu_experiments.sh` on one GPU machine (equivalently
# `python -m dcft_edu.experiments.sweep main --scale gpu --workers 14`): scale **gpu** = the official DCFT scripts'
# learning rates, warmup fractions, γ and weight decay (NOTES §1) with batch 32, full dev sets, and about **20k
# training examples seen per run** (MRPC 5 epochs, RTE 8, STS-B 3, CoLA and SST-2 3 epochs of their first
# 6,666 examples; `dcft_edu/presets.py`). Full FT uses lr 1e-4, head-only 1e-3, every adapter method the task's
# DCFT rate. Delta-LoRA: r = 8, α = 16, λ = 0.5, and K = the paper's per-task K as a *fraction* of its run.
# Reported: the best dev epoch (the papers' convention). `python -m dcft_edu.figures glue_main_results` redraws
# the figure in seconds.

# %%
df = main_runs()
print(f"{len(df)} runs, devices: {sorted(set(df['device']))}, scale: {sorted(set(df['scale']))}")
coverage = df.groupby(["label", "task"])["seed"].nunique().unstack("task")
print("seeds per cell:")
print(coverage)
assert len(df) == 105 and (coverage == 3).all().all()  # sweep main is complete: 7 methods × 5 tasks × 3 seeds

# %% [markdown]
# ### The table (ours): metric ×100, mean ± std over seeds (n = seeds)
#
# CoLA: Matthews correlation; SST-2, MRPC, RTE: accuracy; STS-B: Pearson. *Adapter params* are counted as the
# papers count them (adapter tensors only); *trainable params* add the classifier head and pooler (and are all
# weights for full FT). *Avg.*: each seed's 5-task mean, then mean ± std over the 3 seeds.

# %%
table = main_table(df)
table

# %%
means = main_means(df)
per_matrix = {"LoRA r=1": 41472 / 36, "DCFT k=8": 7488 / 36}
ap = table["adapter params"]
print(f"LoRA r=1 / DCFT k=8 adapter parameters: {ap['LoRA r=1'] / ap['DCFT k=8']:.2f}× "
      f"(A and B alone, without the 36 kernels of 8×8: {ap['LoRA r=1'] / (ap['DCFT k=8'] - 36 * 64):.2f}×)")
assert ap["LoRA r=1"] == 8 * (ap["DCFT k=8"] - 36 * 64)  # the paper's "8× fewer" is the A, B count
print(means.round(2))

# %% [markdown]
# On MiniLM the "8×" of the paper is exactly the ratio of LoRA r = 1 to DCFT's $a$ and $b$; with the 36 kernels
# (64 parameters each) DCFT k = 8 has 5.5× fewer adapter parameters than LoRA r = 1 (NOTES §2: 6.5× on
# DeBERTa-v3-base).

# %% [markdown]
# ### The papers' numbers (other backbones — not comparable in absolute terms)
#
# Transcribed from DCFT Table 1 (DeBERTa-v3-base, 184M) and Delta-LoRA Table 4 (RoBERTa-base, 125M); single
# seeds, full data, 25–80 epochs. "avg (these 5)" is computed here from the papers' per-task numbers; "avg
# (paper, all tasks)" is the paper's own average over its 8 GLUE tasks. The column *our row* says which of our
# rows each corresponds to.

# %%
paper = paper_table()
paper

# %%
fig = draw_glue_main_results()
savefig(fig, "glue_main_results")
plt.show()

# %% [markdown]
# ## 3. Does DCFT match LoRA at 8× fewer parameters here?
#
# The claim to check (DCFT Table 1): DCFT k = 8 ≥ LoRA r = 1 on most tasks. Per task, our difference of
# means and Welch's t-test over the 3 + 3 seeds:

# %%
d8 = method_difference(df, "DCFT k=8", "LoRA r=1")
d2 = method_difference(df, "DCFT k=2", "LoRA r=1")
print("DCFT k=8 − LoRA r=1 (×100):")
print(d8.round(3))
print("\nDCFT k=2 − LoRA r=1 (×100):")
print(d2.round(3))
paper_rows = paper.set_index("our row")
paper_gap = paper_rows.loc["DCFT k=8", "avg (these 5)"] - paper_rows.loc["LoRA r=1", "avg (these 5)"]
print(f"\naverage of the 5 tasks, ours:  DCFT k=8 {means.at['DCFT k=8', 'avg']:.2f}, DCFT k=2 "
      f"{means.at['DCFT k=2', 'avg']:.2f}, LoRA r=1 {means.at['LoRA r=1', 'avg']:.2f}, LoRA r=8 "
      f"{means.at['LoRA r=8', 'avg']:.2f}")
print(f"DCFT k=8 − LoRA r=1: ours {means.at['DCFT k=8', 'avg'] - means.at['LoRA r=1', 'avg']:+.2f}, "
      f"paper (DeBERTa-v3-base, same 5 tasks) {paper_gap:+.2f}")
n_worse = int((d8["difference"] < 0).sum())
print(f"DCFT k=8 below LoRA r=1 on {n_worse} of {len(d8)} tasks, "
      f"{int(((d8['difference'] < 0) & (d8['Welch p'] < 0.05)).sum())} of them with p < 0.05")

# %% [markdown]
# **No — on MiniLM at our budget DCFT clearly trails LoRA.** Both DCFT variants are below LoRA r = 1 on the
# 5-task average by about 5 points (the paper has DCFT k = 8 about 2.6 points *above* LoRA r = 1 on the same
# five tasks), and DCFT k = 8 is below LoRA r = 1 on every task (with p < 0.05 on four of them; RTE is
# noisy); the gap is largest on CoLA. DCFT k = 2 is level
# with LoRA r = 1 only on STS-B (and within seed noise on RTE). So we do **not** reproduce "DCFT matches or beats LoRA with 8× fewer parameters" here.
# Why? The per-epoch records let us check some candidate reasons.

# %% [markdown]
# ### 3a. A slow start and an unfinished run
#
# For every run: the metric after the first and the last epoch, the gain of the last epoch, how often the best
# epoch is the last one, and the training loss (averaged over the 5 tasks and 3 seeds; per task below).

# %%
conv = convergence_table(df)
overall = conv.groupby(level="label").mean().drop(columns="n")
overall["runs"] = conv.groupby(level="label")["n"].sum()
overall = overall.loc[[m for m in means.index if m in overall.index]]
print(overall.round(3))

# %%
dc, lo = overall.loc["DCFT k=8"], overall.loc["LoRA r=1"]
first_lower = (conv.xs("DCFT k=8", level="label")["epoch 1"] < conv.xs("LoRA r=1", level="label")["epoch 1"])
print(f"best epoch = last epoch: DCFT k=8 in {dc['best = last'] * dc['runs']:.0f}/{dc['runs']:.0f} runs, "
      f"DCFT k=2 {overall.at['DCFT k=2', 'best = last'] * overall.at['DCFT k=2', 'runs']:.0f}/15, "
      f"LoRA r=1 {lo['best = last'] * lo['runs']:.0f}/15, "
      f"LoRA r=8 {overall.at['LoRA r=8', 'best = last'] * overall.at['LoRA r=8', 'runs']:.0f}/15")
print(f"after epoch 1 DCFT k=8 is below LoRA r=1 on {int(first_lower.sum())}/5 tasks")
print(f"final training loss: DCFT k=8 {dc['train loss last']:.3f}, DCFT k=2 "
      f"{overall.at['DCFT k=2', 'train loss last']:.3f}, LoRA r=1 {lo['train loss last']:.3f}, "
      f"LoRA r=8 {overall.at['LoRA r=8', 'train loss last']:.3f}, full FT {overall.at['full FT', 'train loss last']:.3f}")
tl = conv["train loss last"].unstack("label")
assert (tl["DCFT k=8"] > tl["LoRA r=1"]).all() and (tl["DCFT k=8"] > tl["LoRA r=8"]).all()  # on every task
cola_first = epoch_frame(df.query("task == 'cola' and method == 'dcft'")).query("epoch == 1")["metric"]
print(f"CoLA after epoch 1, DCFT (both k, all seeds): Matthews corr. ×100 = {sorted(cola_first.round(2))}")
print(conv.xs("DCFT k=8", level="label").round(2))
print(conv.xs("LoRA r=1", level="label").round(2))

# %%
ep = epoch_frame(df)
show = ["LoRA r=1", "LoRA r=8", "DCFT k=2", "DCFT k=8", "full FT"]
fig, axes = plt.subplots(2, 5, figsize=(17, 6.5), layout="constrained", sharex="col")
for j, task in enumerate(["cola", "sst2", "mrpc", "stsb", "rte"]):
    for label in show:
        g = ep[(ep["task"] == task) & (ep["label"] == label)].groupby("epoch")
        for i, col in enumerate(["metric", "train_loss"]):
            axes[i, j].errorbar(g[col].mean().index, g[col].mean(), yerr=g[col].std(), capsize=2, marker="o", ms=3,
                                label=label)
    axes[0, j].set_title(TASK_LABELS[task])
    axes[1, j].set_xlabel("epoch")
axes[0, 0].set_ylabel("dev metric (×100)")
axes[1, 0].set_ylabel("mean training loss of the epoch")
axes[0, 0].legend(fontsize=8)
fig.suptitle("Per-epoch dev metric and training loss, mean ± std over 3 seeds (sweep main; the learning rate "
             "decays linearly to 0 at the last epoch)")
plt.show()

# %% [markdown]
# What the curves and the table show:
#
# - **DCFT starts slowly.** After the first epoch it is below LoRA r = 1 on most tasks; on CoLA its Matthews
#   correlation after epoch 1 is 0 in every seed (it still predicts one class for every sentence).
# - **DCFT is still improving when the run ends**: its best epoch is the last one in most runs, clearly more
#   often than for LoRA — although the learning rate has decayed to 0 by then. (The *size* of the last
#   epoch's gain is not special to DCFT: Delta-LoRA's is as large.)
# - **DCFT underfits**: its final training loss is higher than both LoRAs' on every task (averaged over the
#   tasks about 1.5× LoRA r = 1's and 2× LoRA r = 8's). Its dev metric is limited by how well it fits the
#   training set, not by overfitting.
#
# Plausible reasons, each checkable:
#
# 1. **Budget.** The paper trains 25–50 epochs on the full training sets; we see about 20k examples (3–8
#    epochs). A method that is still improving at the end is the one a short budget hurts. Check: rerun one
#    task with the recipe's epochs, e.g. a grid file `{"task": ["mrpc"], "method": ["lora", "dcft"], "seed":
#    [0, 1, 2]}` with `python -m dcft_edu.experiments.sweep grid.json --scale gpu --set epochs=30`.
# 2. **Initialisation.** All three DCFT factors start from $\mathcal{N}(0, 0.02^2)$, so $\Delta W$ starts at
#    $\approx \frac{\alpha}{r}\,0.02^3 \approx 1.3\cdot10^{-4}$ per entry and must grow through a *product of
#    three* small factors, while LoRA's $\Delta W = sBA$ grows linearly in $B$ from a full-size $A$. The
#    gradient of each factor is also scaled by the other two (AdamW largely normalises that away, so the
#    product structure matters more than the gradient size). Measured below.
# 3. **Not a too-small ΔW at the end.** By the end DCFT k = 8 has moved $W_q$, $W_v$ *more* than LoRA r = 8
#    on every task (relative change $\|W - W_0\|/\|W_0\|$, next cell; notebook 08 has the per-layer
#    picture), while DCFT k = 2 moved them less than DCFT k = 8 — and the two DCFTs score the same. So the size of $\Delta W$ is not what
#    separates DCFT from LoRA here. A large but very constrained update — every $k\times k$ block of
#    $\Delta W$ is the same kernel $C$ scaled by $b_i a_j$ — is consistent with the high training loss.
# 4. **Backbone width.** The paper argues DCFT's advantage comes from rank-1 LoRA being *redundant* for wide
#    models and grows with width (RoBERTa-large, DeBERTa-v2-xxl). MiniLM's matrices are 384 wide (the paper's
#    768–1536), so $a$ and $b$ have only 48 entries per 384-dim side: there is less redundancy to remove.

# %%
sim = similarity_frame(df)
rel = sim.groupby(["task", "label"])["rel_change"].mean().unstack("label")[["LoRA r=1", "LoRA r=8", "DCFT k=2", "DCFT k=8"]]
print("relative change ‖W − W₀‖/‖W₀‖ of Wq and Wv after training, mean over blocks and seeds:")
print(rel.round(3))
assert (rel["DCFT k=8"] > rel["LoRA r=8"]).all() and (rel["DCFT k=2"] < rel["DCFT k=8"]).all()

set_seed(0)
model, _ = load_model("mrpc")
model = prepare_model(model, make_run("mrpc", "dcft", scale="gpu"))
init = pd.DataFrame([{"layer": n, "‖ΔW‖/‖W‖": (l.get_delta_weight().norm() / l.base_weight().norm()).item(),
                      "std of ΔW entries": l.get_delta_weight().std().item()} for n, l in adapter_layers(model)])
print(f"\nDCFT k=8 at init (MiniLM, {len(init)} matrices): ΔW entries have std "
      f"{init['std of ΔW entries'].mean():.2e} (α/r·0.02³ = {16 * 0.02 ** 3:.2e}); ‖ΔW‖/‖W‖ = "
      f"{init['‖ΔW‖/‖W‖'].mean():.1e} on average")
del model

# %% [markdown]
# ## 4. Delta-LoRA vs LoRA, and full fine-tuning
#
# Delta-LoRA Table 4 (RoBERTa-base): Delta-LoRA 87.38 vs LoRA 87.12 on the 8-task average (+0.26); on our five
# tasks their numbers give the difference printed below. Ours, same r = 8, α = 16, on MiniLM:

# %%
dl = method_difference(df, "Delta-LoRA r=8 λ=0.5", "LoRA r=8")
print(dl.round(3))
ours_gap = means.at["Delta-LoRA r=8 λ=0.5", "avg"] - means.at["LoRA r=8", "avg"]
paper_dl = paper_rows.loc["Delta-LoRA r=8 λ=0.5", "avg (these 5)"] - paper_rows.loc["LoRA r=8", "avg (these 5)"]
print(f"\n5-task average: Delta-LoRA − LoRA r=8 = {ours_gap:+.2f} (ours, MiniLM) vs {paper_dl:+.2f} "
      f"(Delta-LoRA Table 4, RoBERTa-base, these 5 tasks) and +0.26 (paper, 8 tasks)")
print(f"tasks with p < 0.05: {int((dl['Welch p'] < 0.05).sum())} of {len(dl)}")
ff = means.loc["full FT"]
from dcft_edu.figures.delta_lora import FULL_SPLIT_LABELS  # label counts of GLUE's full splits

for task in ("rte", "mrpc", "sst2"):
    counts = FULL_SPLIT_LABELS[(task, "dev")]
    print(f"{TASK_LABELS[task]} dev: majority class = {100 * max(counts) / sum(counts):.1f} % "
          f"of {sum(counts)}; best method {means[task].max():.1f}, head only {means.at['head only', task]:.1f}")
print(f"\nfull FT: average {ff['avg']:.2f}; best of all methods on "
      f"{[TASK_LABELS[t] for t in means.columns[:-1] if means[t].idxmax() == 'full FT']}; "
      f"MRPC {ff['mrpc']:.1f} vs LoRA r=8 {means.at['LoRA r=8', 'mrpc']:.1f}")

# %% [markdown]
# - **Delta-LoRA vs LoRA.** Delta-LoRA's average is a tenth of a point above LoRA r = 8's — the same sign as
#   the paper's +0.26, and smaller — but the per-task differences go both ways and none is distinguishable
#   from seed noise with 3 seeds (all Welch p well above 0.05; the seed std of a task is ~1 point). Our data
#   neither confirm nor contradict the paper's small gain. (Notebook 13 varies λ and K.)
# - **Full fine-tuning** has the best average here and the best CoLA, SST-2 and RTE, as in DCFT Table 1 where
#   full FT beats LoRA r = 1 on average; on MRPC it is ~3 points below LoRA, with a final training loss of
#   0.07 (consistent with overfitting the 3.7k examples). In Delta-LoRA Table 4 full FT is below LoRA on average.
# - **Head only** (the frozen sentence encoder plus a classifier) is far below everything else, so every
#   adapter method does learn something. On RTE (2.5k examples) every method stays within ~5 points of always
#   answering the majority class (printed above), unlike the papers' 81–88 on much larger models: this small
#   sentence-embedding model learns little textual entailment from 20k examples, so RTE separates the
#   methods least (its seed std is up to 3 points).

# %% [markdown]
# ## What you should take away
#
# - On MiniLM-L6 with ~20k training examples per run (3 seeds, H100), the ranking is full FT ≈ LoRA r = 8 ≈
#   Delta-LoRA > LoRA r = 1 ≫ DCFT k = 2 ≈ DCFT k = 8 ≫ head only. **DCFT does not match LoRA r = 1 here**: it
#   trails it by about 5 points on the average and on every task with k = 8, while the paper (DeBERTa-v3-base,
#   single seed, 25–50 epochs) has it ahead.
# - The run records point to under-fitting, not to a too-small update: DCFT starts slowly, is usually still
#   improving at its last epoch and ends with a higher training loss than LoRA on every task, while (k = 8)
#   having moved $W_q, W_v$ more than LoRA r = 8. These runs cannot tell a too-short budget from a too-
#   constrained update; a longer budget and a wider backbone are the first things to test (commands above).
# - Delta-LoRA vs LoRA: +0.1 on the average (paper: +0.26 on RoBERTa-base), inside seed noise on every task.
#   Report seeds: with one seed, as in the papers, differences this size cannot be told apart.
# - The papers' numbers are on other backbones and recipes and are shown only as references for the
#   *ordering* of methods.
