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
# # 11 · Stride ablation: is stride = kernel really best, and do trained weights show the checkerboard?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/11_stride_ablation.ipynb)
#
# **Paper.** Zhang et al., *Parameter-Efficient Fine-Tuning of Large Language Models via Deconvolution in
# Subspace*, COLING 2025 — §3.2.2 ("Equal Kernel Stride"), §4.5, **Table 5** (kernel $k = 8$, strides $s < k$)
# and Appendix D (checkerboard artifacts).

# %% [markdown]
# **Goals**
# - compute how the stride sets the subspace size $h(d) = \lceil (d-k)/s\rceil + 1$ and the parameter count;
# - predict which cells of $\Delta W$ an uneven stride covers with 1, 2 or 4 kernel taps;
# - train the stride sweep yourself (lab mode) and put your runs on the committed figure;
# - test the paper's two claims on data: "$s = k$ is best" and "the checkerboard of $s < k$ costs accuracy".
#
# **Prerequisites** notebook 02 (DCFT's transposed convolution), 03 (checkerboard artifacts, `coverage_map`),
# 10 (reading a sweep with seeds).
#
# **Time** reading and running without training: about 10 minutes. With training on (`TRAIN`): the reduced CPU
# form (STS-B, $k = 8$, $s = 2, 4, 8$, seed 0, 400 rows × 3 epochs) about 3 minutes of one idle core, at most
# 15 minutes on a 2-core laptop; the GPU form (STS-B and MRPC × $s = 2, 4, 6, 8$) about 4 minutes on a Colab T4
# (an estimate; basis in `dcft_edu/experiments/lab.py`).
#
# **GPU?** Not needed: without one the notebook reads the committed results; `DCFT_EDU_TRAIN=1` trains the CPU
# form anyway.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("11_stride_ablation")

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dcft_edu.dcft import coverage_map, subspace_size
from dcft_edu.experiments import lab
from dcft_edu.experiments.analysis import TASK_LABELS
from dcft_edu.experiments.presets import make_run
from dcft_edu.experiments.runinfo import notebook_setup
from dcft_edu.figures.ablations import (PAPER_TABLE5, ablation_results, checkerboard_contrast, draw_stride_ablation,
                                        draw_stride_learned_delta, expected_adapter_params, load_learned_delta,
                                        stride_deltas)
from dcft_edu.figures.lab import overlay_user_runs
from dcft_edu.figures.plotting import set_theme

DEVICE, QUICK = notebook_setup()  # the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)
TRAIN = lab.train_switch()  # DCFT_EDU_TRAIN=1 trains, 0 does not; unset: train when a CUDA GPU is present
set_theme()
pd.set_option("display.width", 200)
K, STRIDES, TASKS = 8, [1, 2, 4, 6, 8], ["cola", "mrpc", "stsb", "rte"]

# %% [markdown]
# ## 1. Subspace size, parameters and coverage per stride
#
# With stride $s$ the transposed convolution pastes the $k\times k$ kernel, scaled by $M[i,j]$, at every $s$-th
# position: $\text{out}[is + p,\ js + q] \mathrel{+}= M[i,j]\,C[p,q]$. To cover $d$ outputs the subspace needs
# $h(d) = \lceil (d-k)/s\rceil + 1$ cells per dimension, so a smaller stride means a larger $A$ and $B$:
#
# $$ \#\text{params per matrix} = r\,\big(h(d_\text{in}) + h(d_\text{out})\big) + k^2 . $$
#
# Where pasted kernels overlap, a cell receives several taps. `coverage_map` counts them; an interior cell of a
# $384\times384$ matrix (MiniLM-L6's attention, 36 adapted matrices in all):

# %%
rows = []
for s in STRIDES:
    cov = coverage_map(K, s, (384, 384))[K:-K, K:-K]  # (384 − 2k, 384 − 2k): taps per interior cell
    rows.append({"s": s, "h(384)": subspace_size(384, K, s), "h(1536)": subspace_size(1536, K, s),
                 "adapter params": expected_adapter_params(make_run("stsb", "dcft", scale="gpu", kernel_size=K, stride=s)),
                 "taps per interior cell": "/".join(map(str, sorted(cov.unique().tolist())))})
params = pd.DataFrame(rows).set_index("s")
params["× the params of s = k"] = (params["adapter params"] / params.loc[K, "adapter params"]).round(2)
assert params.loc[K, "h(384)"] == 384 // K and params["adapter params"].is_monotonic_decreasing
params

# %% [markdown]
# Strides that divide $k$ cover evenly ($(k/s)^2$ taps everywhere); only $s = 6$ (8 is not a multiple of 6)
# covers unevenly, 1, 2 or 4 taps per cell: the checkerboard of notebook 03.
#
# ## 2. The experiment: train it yourself
#
# The committed sweep `stride` is DCFT $k = 8$ on CoLA, MRPC, STS-B, RTE × $s \in \{1,2,4,6,8\}$ × seeds 0, 1, 2
# at scale `gpu` (the official recipes, about 20k training examples per run), trained on GPUs. Its seed-0 runs
# also kept the learned $\Delta W$ of layer 0's query (`save_delta`, section 5). The lab version
# (`lab.LAB_GRIDS["stride"]`) is a smaller grid of the same sweep, trained by the same `run_sweep` into your
# results folder (never `figures/`); it keeps $\Delta W$ too.

# %%
scale, lab_grid = lab.lab_runs("stride")
n_lab = sum(map(len, lab_grid.values()))
print(f"lab grid: {n_lab} runs at scale {scale!r}: "
      + ", ".join(f"{r.task} s={r.stride or r.kernel_size}" for runs in lab_grid.values() for r in runs))
if TRAIN:
    yours = lab.run_lab("stride").assign(s=lambda d: d["stride"].fillna(d["kernel_size"]).astype(int))
    assert len(yours) == n_lab
    assert (yours["adapter_params"] == yours["s"].map(params["adapter params"])).all()
    assert yours["best_metric"].between(-1, 1).all()
    for f in yours["file"]:  # each run kept its ΔW: 384 × 384, finite, not all zero
        delta = load_learned_delta(f)
        assert delta.shape == (384, 384) and np.isfinite(delta).all() and np.abs(delta).max() > 0
    print(yours[["task", "s", "adapter_params", "best_metric", "train_time_s", "device"]])
else:
    yours = None
    print("Not training: the sections below show the committed runs only. To train the lab grid, set "
          "DCFT_EDU_TRAIN=1 (or use a GPU) and run the notebook again.")

# %% [markdown]
# ## 3. The committed results, in a few lines of pandas
#
# One row per committed run; the column `s` is the stride (`None` in a result means $s = k$). Metric: best dev
# epoch, ×100.

# %%
df = ablation_results("stride")
assert set(df["s"]) <= set(STRIDES) and set(df["task"]) <= set(TASKS)
assert len(df) <= len(STRIDES) * len(TASKS) * 3  # at most the grid: 3 seeds per cell
assert (df["adapter_params"] == df["s"].map(params["adapter params"])).all()  # every run records the closed form
cells = df.pivot_table(index="s", columns="task", values="best_metric", aggfunc=["mean", "std", "size"])
mean, std, seeds = 100 * cells["mean"][TASKS], 100 * cells["std"][TASKS], cells["size"][TASKS]
(mean.round(1).astype(str) + " ± " + std.round(1).astype(str) + " (n=" + seeds.astype(str) + ")").rename(columns=TASK_LABELS)

# %% [markdown]
# The figure: one panel per task, seeds as grey dots, mean ± std in blue, adapter parameters on the right axis,
# LoRA r = 8 as the dashed green band, the uneven $s = 6$ shaded. Your lab runs are the black stars.

# %%
fig = draw_stride_ablation()
if yours is not None:
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    for task, runs in yours.groupby("task"):
        overlay_user_runs(panels[TASK_LABELS[task]], runs, x="s", clip=True, values=True)
plt.show()

# %% [markdown]
# **Yours vs committed**, per cell you trained (a lab run sees far fewer examples, so it usually sits below the
# committed range: compare the ordering of the strides, not the levels):

# %%
if yours is not None:
    vs = lab.yours_vs_committed(yours, df, by=["task", "s"])
    assert len(vs) == yours.groupby(["task", "s"]).ngroups
    display(vs.round(1))

# %% [markdown]
# ## 4. Does $s = k$ win?
#
# Seeds share the order of the data and the classifier's initialisation across strides, so each stride is
# compared with $s = 8$ **of the same seed**: the difference per seed, and how many seeds agree in sign.

# %%
runs = 100 * df.pivot_table(index=["task", "seed"], columns="s", values="best_metric")  # one row per (task, seed)
minus8 = runs.sub(runs[K], axis=0).drop(columns=K)  # each stride − s = 8, same task and seed
reading = pd.DataFrame({"best s": mean.idxmax(), "rank of s = 8 (of 5)": mean.rank(ascending=False).loc[K]})
ahead = (minus8 > 0).groupby("task").sum().astype(str) + "/" + minus8.groupby("task").count().astype(str)
display(reading.rename(index=TASK_LABELS))
print("seeds where the stride beats s = 8, and the mean difference (points):")
pd.concat({"ahead of s = 8": ahead, "mean − s = 8": minus8.groupby("task").mean().round(1)}, axis=1).rename(index=TASK_LABELS)

# %% [markdown]
# - **$s = k$ is not the best stride on any task** here: $s = 1$ has the best mean on all four and beats $s = 8$
#   on every seed; $s = 8$ ranks 4th or 5th of five.
# - **The metric follows the parameter count**: from $s = 1$ to $s = 4$ the mean falls with the stride, as the
#   parameters do (5.8×, 3.0×, 1.7× those of $s = 8$). On MiniLM more subspace beats less overlap.
# - **The uneven $s = 6$ is level with $s = 8$**, though it has 1.2× the parameters.
#
# The statistics (paired t-tests, Holm across tasks), which GPU trained which seed, a CPU replication of CoLA
# and the training times per stride are in `REPORT.md`, section 11.
#
# ## 5. The learned $\Delta W$: is the checkerboard there?
#
# If uneven coverage matters, the cells that $s = 6$ covers with 2 or 4 taps should change more in training
# than its 1-tap cells. The direct test on the learned change of one real layer (layer 0's query, seed 0): the
# RMS of $\Delta W$ on each coverage class of $s = 6$, relative to the 1-tap cells. As a control, the same cells
# are measured in the $\Delta W$ of the other strides, which cover them evenly (ratios should be ≈ 1).

# %%
deltas = stride_deltas()  # one row per seed-0 run that kept its ΔW: task, s, delta (384 × 384)
assert all(d.shape == (384, 384) for d in deltas["delta"])
contrast = checkerboard_contrast(deltas, K, 6)  # (s, task) × taps {1, 2, 4}: RMS / RMS of the 1-tap cells
contrast.groupby(level="s").agg(["mean", "min", "max"]).round(2)

# %%
fig = draw_stride_learned_delta()
plt.show()

# %% [markdown]
# **Yes, in trained weights too**: for $s = 6$ the 2-tap cells changed clearly more than the 1-tap cells on
# every task, while the same cells of the evenly covering strides changed evenly. It is weaker than notebook
# 03's picture: the learned factors are zero-mean, so overlapping taps add up partly at random ($\sqrt2$ and 2
# for independent terms) instead of coherently (2 and 4). The spectrum of $\Delta W^2$ (last row) shows the
# period-$s$ structure. But the checkerboard did not cost measurable accuracy (section 4).
#
# ## 6. Next to the paper's Table 5
#
# The paper's numbers are **theirs**: DeBERTa-v3-base, one seed, full recipes. Its text lost the stride column;
# the printed parameter counts identify $s = 1, 2, 4, 8$ (notebook 02 reproduces them); it has no $s = 6$ row.

# %%
ours = mean.round(1).rename(columns=lambda t: f"{TASK_LABELS[t]} (ours)")
side = pd.concat([PAPER_TABLE5.rename(columns={t: f"{TASK_LABELS[t]} (paper)" for t in TASKS}), ours], axis=1).sort_index()
side.loc["rank of s = 8"] = [""] + [int(side[c].astype(float).rank(ascending=False, method="min")[K])
                                    for c in side.columns[1:]]
side

# %% [markdown]
# ## What you should take away
#
# - A smaller stride enlarges the subspace, $h(d) = \lceil (d-k)/s \rceil + 1$: $s = 1$ has about 5.8× the
#   parameters of $s = k = 8$ on MiniLM (the paper's 165.5K vs 24.6K on DeBERTa).
# - The paper finds $s = k$ best; on MiniLM, with three seeds per stride, it is 4th or 5th of five, and $s = 1$
#   beats it on every seed: more adapter capacity matters more here than overlap.
# - The checkerboard is real in trained weights ($s = 6$'s multiply covered cells change more), but it did not
#   make $s = 6$ measurably worse than $s = 8$.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/11_stride_ablation_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **Make the stride 6, then 3, and predict the coverage map** ($k = 8$): which tap counts does an interior
#    cell get? (Hint: along one axis a position receives $\lfloor k/s\rfloor$ or $\lceil k/s\rceil$ taps; a cell
#    the product of its row's and its column's.) Check with `coverage_map(8, s, (384, 384))`.
# 2. **Predict the parameter count of $s = 1$ on MiniLM** ($k = 8$, 24 matrices $384\times384$, 12 between 384
#    and 1536) with $h(d)$ by hand, then check it against `params`. How many times $s = 8$'s is it, and why not
#    $8\times$?
# 3. **Add $s = 6$ to your lab.** Train STS-B, $k = 8$, $s = 6$, seed 0 with `run_sweep` (keep its $\Delta W$:
#    `save_delta`) at the scale `lab.lab_runs` picked. Predict the `adapter_params` its result records, then
#    measure `checkerboard_contrast` on its $\Delta W$: after a lab run, do the 2-tap cells already stand out?

# %%
# Exercise 1 · Make the stride 6, then 3: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_taps = None  # TODO: {6: {...}, 3: {...}} the tap counts an interior cell gets, k = 8
# TODO: check with coverage_map(8, s, (384, 384))

# %%
# Exercise 2 · Parameters of s = 1: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_s1 = None  # TODO: DCFT k = 8, s = 1 on MiniLM, with h(d) = (d − k)/s + 1 by hand
predicted_times = None  # TODO: how many times s = 8's count, and why not 8×?
# TODO: check against params

# %%
# Exercise 3 · Add s = 6 to your lab: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_params = None  # TODO: the adapter_params of STS-B, k = 8, s = 6
predicted_visible = None  # TODO: after a lab run, do the 2-tap cells already stand out? (checkerboard_contrast)
# TODO: train it with run_sweep (save_delta) at the scale lab.lab_runs picked (needs TRAIN)
