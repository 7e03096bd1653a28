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
# # 12 · Which weights to adapt: matrices and blocks, LoRA vs DCFT
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/12_layer_ablation.ipynb)
#
# **Paper.** Zhang et al., *Parameter-Efficient Fine-Tuning of Large Language Models via Deconvolution in
# Subspace*, COLING 2025 — §4.7 and **Table 6** (DCFT on Q,K / Q,V / Q,K,V / Q,K,V,O / all weight matrices,
# DeBERTa-v3-base). LoRA (Hu et al., 2021) §7.1 asks the same question for LoRA.

# %% [markdown]
# **Goals**
# - say which matrices (`target_modules`) and which blocks (`layers`) an adapter config adapts, and count its
#   parameters in closed form for LoRA and DCFT;
# - check that a block outside `layers` really stays untouched;
# - train the layer sweep yourself (lab mode) and put your runs on the committed figure;
# - decide, from the data, whether a budget is better spent on more matrices or on more blocks.
#
# **Prerequisites** notebook 01 (LoRA, $r(d_\text{in}+d_\text{out})$ parameters), 02 (DCFT's count), 07 and 10
# (the committed results, reading a sweep with seeds).
#
# **Time** reading and running without training: about 10 minutes. With training on (`TRAIN`): the reduced CPU
# form (STS-B, LoRA and DCFT on q,v and all six, LoRA on either half of the blocks: 6 runs, seed 0, 400 rows × 3
# epochs) about 4.5 minutes of one idle core, at most 15 minutes on a 2-core laptop; the GPU form (14 runs on
# STS-B and MRPC) about 6 minutes on a Colab T4 (an estimate; basis in `dcft_edu/experiments/lab.py`).
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
bootstrap("12_layer_ablation")

# %%
import matplotlib.pyplot as plt
import pandas as pd

from dcft_edu.experiments import lab
from dcft_edu.experiments.analysis import TASK_LABELS
from dcft_edu.experiments.runinfo import notebook_setup
from dcft_edu.experiments.recipes import GRIDS
from dcft_edu.experiments.sweep import grid_runs
from dcft_edu.figures.ablations import (PAPER_TABLE6, ablation_results, adapted_shapes, annotate, config_label,
                                        draw_layer_ablation, method_short, weight_change)
from dcft_edu.figures.lab import overlay_user_runs
from dcft_edu.figures.plotting import set_theme

DEVICE, QUICK = notebook_setup()  # the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)
TRAIN = lab.train_switch()  # DCFT_EDU_TRAIN=1 trains, 0 does not; unset: train when a CUDA GPU is present
set_theme()
pd.set_option("display.width", 200)

# %% [markdown]
# ## 1. The configurations and their parameter counts
#
# An adapter config says **which matrices** (`target_modules`, matched by name suffix: `"query"`, `"value"`,
# `"attention.output.dense"`, or `"all-linear"` = the six matrices of a BERT block) and **which blocks**
# (`layers`, block indices; `None` = all). The adapter count is a sum over the adapted matrices
# $W \in \mathbb{R}^{d_\text{out}\times d_\text{in}}$:
#
# $$ \text{LoRA: } r\,(d_\text{in} + d_\text{out}), \qquad
#    \text{DCFT } (s = k)\text{: } r\,(d_\text{in}/k + d_\text{out}/k) + k^2 . $$
#
# The sweep `layers` compares LoRA r = 8 and DCFT k = 8 (rank-1 subspace) with five configurations: q,v; q,k,v,o;
# all six; all six in blocks 0–2 only; all six in blocks 3–5 only. Which matrices each adapts in MiniLM-L6
# (`adapted_shapes`: found on a weightless model) and the closed forms summed over them:

# %%
def closed_form(run) -> int:
    """The adapter count of a LoRA or DCFT run, summed over the matrices it adapts."""
    k = run.kernel_size
    # LoRA: r·(d_in + d_out); DCFT (s = k): r·(d_in/k + d_out/k) + k²
    per = {"lora": lambda i, o: run.r * (i + o), "dcft": lambda i, o: run.r * (i // k + o // k) + k * k}[run.method]
    return sum(per(d_in, d_out) for _, d_in, d_out in adapted_shapes(run))


rows = []
for run in grid_runs(GRIDS["layers"], scale="gpu"):
    if run.seed == 0 and run.task == "mrpc":  # one row per (method, config)
        shapes = adapted_shapes(run)
        rows.append({"method": method_short(run.method), "config": config_label(run.to_dict()),
                     "matrices": len(shapes), "shapes (in→out)": ", ".join(sorted({f"{i}→{o}" for _, i, o in shapes})),
                     "adapter params": closed_form(run)})
configs = pd.DataFrame(rows).set_index(["method", "config"])
assert configs.loc[("LoRA r=8", "q,v"), "adapter params"] == 12 * 8 * (384 + 384)  # 2 matrices × 6 blocks
configs

# %% [markdown]
# The two FFN matrices ($384\to1536$, $1536\to384$) are as large as four attention matrices, so "all six" is
# 4.5× "q,v" for LoRA; for DCFT the fixed $k^2 = 64$ per matrix makes the ratio smaller. Note DCFT's ~3.8k budget:
# all six matrices of three blocks (3,744) cost about what q,k,v,o in all six blocks cost (3,840).
#
# ## 2. The experiment: train it yourself
#
# The committed sweep `layers` runs those ten (method, config) pairs on MRPC and STS-B × seeds 0, 1, 2 at scale
# `gpu` (the official recipes' learning rate for both methods, about 20k training examples per run), trained on
# GPUs; "all six, all blocks" are the runs of sweep `main`. Its lab version (`lab.LAB_GRIDS["layers"]`) is a
# smaller grid of the same sweep, trained by the same `run_sweep` into your results folder (never `figures/`).

# %%
scale, lab_grid = lab.lab_runs("layers")
n_lab = sum(map(len, lab_grid.values()))
print(f"lab grid: {n_lab} runs at scale {scale!r}: "
      + ", ".join(f"{r.task} {method_short(r.method)} {config_label(r.to_dict())}" for rs in lab_grid.values() for r in rs))
if TRAIN:
    yours = annotate(lab.run_lab("layers"))
    assert len(yours) == n_lab
    expected = {(r.method, config_label(r.to_dict())): closed_form(r) for rs in lab_grid.values() for r in rs}
    assert (yours["adapter_params"] == [expected[m, c] for m, c in zip(yours["method"], yours["config"])]).all()
    assert yours["best_metric"].between(-1, 1).all()
    print(yours[["task", "method", "config", "adapter_params", "best_metric", "train_time_s", "device"]])
else:
    yours = None
    print("Not training: the sections below show the committed runs only. To train the lab grid, set "
          "DCFT_EDU_TRAIN=1 (or use a GPU) and run the notebook again.")

# %% [markdown]
# **Did `layers` really leave the other blocks alone?** Every run records, per block, the relative change of its
# query and value weights, $\lVert W_\text{eff}^\text{after} - W_\text{eff}^\text{before}\rVert_F /
# \lVert W_\text{eff}^\text{before}\rVert_F$ (`weight_change`). Outside `layers` it must be exactly 0 — for the
# committed runs and for yours:

# %%
df = ablation_results("layers")  # one row per committed run, with a readable "config" column
checked = df if yours is None else pd.concat([df, yours], ignore_index=True)
for _, r in checked[checked["layers"].notna()].iterrows():  # the runs restricted to some blocks
    change = weight_change(r["weight_similarity"])  # one row per block: query/value × cosine/rel_change
    outside = sorted(set(range(6)) - set(r["layers"]))
    assert (change.loc[outside, "rel_change"] == 0).all().all(), r["file"]
    assert (change.loc[r["layers"], "rel_change"] > 0).all().all(), r["file"]
r = df[df["config"] == "all six, blocks 0–2"].iloc[0]
print(f"{TASK_LABELS[r['task']]} {method_short(r['method'])} seed {r['seed']}, all six in blocks 0–2:")
weight_change(r["weight_similarity"])["rel_change"].round(4)

# %% [markdown]
# ## 3. The committed results, in a few lines of pandas
#
# Mean ± std over seeds per (method, config) and task; metric best dev epoch ×100 (MRPC accuracy, STS-B Pearson).

# %%
assert len(df) <= len(grid_runs(GRIDS["layers"], scale="gpu"))
assert (df["adapter_params"] == [configs.loc[(method_short(m), c), "adapter params"]
                                 for m, c in zip(df["method"], df["config"])]).all()  # the closed form, every run
cells = df.assign(method=df["method"].map(method_short)).pivot_table(
    index=["method", "config"], columns="task", values="best_metric", aggfunc=["mean", "std", "size"])
mean, std, seeds = 100 * cells["mean"], 100 * cells["std"], cells["size"]
table = (mean.round(1).astype(str) + " ± " + std.round(1).astype(str) + " (n=" + seeds.astype(str) + ")")
table.insert(0, "adapter params", configs["adapter params"])
table.loc[configs.index].rename(columns=TASK_LABELS)

# %% [markdown]
# The figure: metric against adapter parameters (log scale), one marker shape per configuration, LoRA and DCFT
# in two colours, seeds as grey dots; the right-hand panels are STS-B runs trained on a 2-core CPU (a replication,
# `REPORT.md` §12). Your lab runs are the black stars on the GPU panels.

# %%
fig = draw_layer_ablation()
if yours is not None:
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}  # "STS-B, GPU" → its axes
    for task, runs in yours.groupby("task"):
        overlay_user_runs(panels[f"{TASK_LABELS[task]}, GPU"], runs, x="adapter_params", clip=True,
                          values=True)
plt.show()

# %% [markdown]
# **Yours vs committed**, per cell you trained (a lab run sees far fewer examples: compare the ordering of the
# configurations, not the levels):

# %%
if yours is not None:
    vs = lab.yours_vs_committed(yours, df, by=["task", "method", "config"])
    assert len(vs) == yours.groupby(["task", "method", "config"]).ngroups
    display(vs.round(1))

# %% [markdown]
# ## 4. What the data say
#
# Each configuration minus "all six" (all blocks) of the **same seed** — runs of one seed share the data order and
# the classifier's initialisation — and how many seeds agree in sign (a few seed-0 runs came from another GPU
# type; `REPORT.md` pairs within one device and gets the same signs):

# %%
runs = 100 * df.pivot_table(index=["task", "method", "seed"], columns="config", values="best_metric")
minus_all = runs.sub(runs["all six"], axis=0).drop(columns="all six")  # same task, method, seed
below = (minus_all < 0).groupby(["task", "method"]).sum().astype(str) + "/" + minus_all.groupby(["task", "method"]).count().astype(str)
pd.concat({"mean − all six": minus_all.groupby(["task", "method"]).mean().round(1), "seeds below all six": below}, axis=1)

# %% [markdown]
# - **All six matrices in all blocks is the best configuration** for both methods on both tasks, or level with the
#   best (LoRA's q,k,v,o on STS-B).
# - **Either half of the blocks alone costs**, on every seed, and the **upper half (blocks 3–5) costs most**:
#   2–5 points; the lower half about a point.
# - **DCFT at ~3.8k parameters**: on STS-B all six matrices of blocks 0–2 beat q,k,v,o in every block, which beats
#   blocks 3–5; on MRPC q,k,v,o beats both halves. *Which* blocks matters, and the upper half alone is never the
#   better way to spend a budget.
# - At every configuration DCFT k = 8 trails LoRA r = 8; even LoRA on q,v beats DCFT on all six, with ~10× its
#   parameters.
#
# Paired tests with Holm's correction, which GPU trained which seed, and the CPU replication of the STS-B cells
# are in `REPORT.md`, section 12.
#
# ## 5. Next to the paper's Table 6
#
# The paper's numbers are **theirs**: DCFT (k = 8) on DeBERTa-v3-base, all 12 blocks, one seed; no LoRA rows and
# no per-block rows. Ours: DCFT k = 8 on MiniLM-L6, mean over seeds.

# %%
ours = mean.loc["DCFT k=8"].round(1).rename(columns=lambda t: f"{TASK_LABELS[t]} (ours)")
PAPER_TABLE6.rename(columns=lambda t: f"{TASK_LABELS[t]} (paper)" if t in TASK_LABELS else t).join(ours, how="outer").fillna("—")

# %% [markdown]
# ## What you should take away
#
# - `target_modules` picks matrices by name, `layers` picks blocks; the adapter count is the closed form summed
#   over exactly those matrices, and blocks outside `layers` stay untouched.
# - Adapting all six matrices in all blocks is best or level with the best, for LoRA and DCFT, as in the paper's
#   Table 6.
# - With half the blocks, the upper half alone costs most; at one budget, "more matrices" vs "more blocks" depends
#   on the task, but *which* blocks matters.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/12_layer_ablation_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **Predict the adapter counts before running**: LoRA r = 8 on q,k,v,o in every block, and DCFT k = 8 on all six
#    matrices of blocks 0–2. Then check them with `closed_form` and with a real injected model
#    (`dcft_edu.inject.count_for_config`).
# 2. **Which blocks move?** Train DCFT on all six matrices with `layers=[3, 4, 5]` at quick scale and predict, per
#    block, whether `weight_change(...)["rel_change"]` is zero; then flip to `layers=[0]`.
# 3. **A budget question.** LoRA r = 2 on all six matrices of every block or LoRA r = 8 on q,v only: predict which
#    has more adapter parameters, then compute both. Which would you train first, given section 4?

# %%
# Exercise 1 · Predict the adapter counts: a starter. Fill in the TODOs, run, then compare with the solution.
predicted = None  # TODO: (LoRA r = 8 on q, k, v, o of every block; DCFT k = 8 on all six matrices of blocks 0–2)
# TODO: check with closed_form and with dcft_edu.inject.count_for_config

# %%
# Exercise 2 · Which blocks move?: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_moving_blocks = None  # TODO: the blocks whose weight_change(...)["rel_change"] is not zero, layers=[3, 4, 5]
# TODO: train DCFT at quick scale with layers=[3, 4, 5], then with layers=[0]

# %%
# Exercise 3 · A budget question: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_larger = None  # TODO: "r=2 everywhere" or "r=8 on q,v": which has more adapter parameters?
# TODO: compute both (closed_form or count_for_config), then decide which you would train first
