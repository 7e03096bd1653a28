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
# # 13 · Delta-LoRA's update ratio λ, and the collapse
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/13_delta_lora_lambda.ipynb)

# %% [markdown]
# **Goals**
# - See that Delta-LoRA with λ = 0 *is* LoRA, bit for bit.
# - Read λ as a multiplier on the adapter's effective scale after the start step K.
# - Run the paper's λ ablation (Delta-LoRA Table 7) on GLUE, and compare your runs with the committed ones.
# - Recognise a *collapsed* run: one that learned nothing beyond the label prior.
#
# **Prerequisites** notebook 06 (Delta-LoRA's update), notebook 07 (the GLUE setup and the committed results).
#
# **Time** about 20 minutes of reading. Lab training (`lab.run_lab("delta")`, shared with notebook 14): about
# 4.5 minutes on a laptop CPU (the reduced form: STS-B, 5 runs) and an estimated 5–8 minutes on a Colab T4
# (STS-B and MRPC, 14 runs). No GPU needed: without one the notebook reads the committed GPU results.
#
# **The question.** Delta-LoRA (Zi et al., 2023) moves the frozen weight after every optimizer step $t > K$:
# $W \leftarrow W + \lambda\, s\,(P_t - P_{t-1})$ with $P = BA$ and $s = \alpha/r$. The updates telescope
# (notebook 06), so the layer's effective weight after K is
#
# $$ W_\text{eff}(t) \;=\; W_t + s\,P_t \;=\; W_0 + s\,\big((1+\lambda)\,P_t - \lambda\,P_K\big), \qquad t \ge K : $$
#
# past K every change of $BA$ reaches the output $(1+\lambda)$ times. The paper (Table 7, E2E with GPT-2 medium)
# finds λ = 2 best. What does λ do on GLUE with MiniLM, where the learning rates are 4–10× the paper's?

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("13_delta_lora_lambda")

# %%
from dcft_edu.experiments.runinfo import notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dcft_edu.experiments import lab
from dcft_edu.experiments.recipes import GRIDS
from dcft_edu.experiments.store import load_results
from dcft_edu.experiments.sweep import grid_runs, run_sweep
from dcft_edu.figures.delta_lora import (FULL_SPLIT_LABELS, LAMBDAS, PAPER_TABLE7, PLANNED_SEEDS, TASKS,
                                         collapse_check, draw_delta_lora_lambda_k, effective_weight, lambda_table,
                                         lora_reference, sweep_results)
from dcft_edu.figures.lab import overlay_user_runs
from dcft_edu.figures.plotting import savefig, set_theme
from dcft_edu.inject import adapter_layers

set_theme()
pd.set_option("display.width", 200)
TRAIN = lab.train_switch()  # DCFT_EDU_TRAIN=1 trains, 0 reads the committed results only

# %% [markdown]
# ## 1. λ = 0 is LoRA
#
# With λ = 0 the frozen weight never moves. Delta-LoRA's layer subclasses `LoRALinear`, with the same
# initialisation ($A$ Kaiming-uniform, $B = 0$) and no dropout. So Delta-LoRA λ = 0 and a LoRA with the same r,
# α and target modules should train to the same numbers. Two tiny runs (32 RTE examples, 2 epochs of 2 steps,
# on the CPU so they are deterministic anywhere; a few seconds), with the same `run_sweep` as every sweep:

# %%
TINY = dict(scale="quick", limit_train=32, limit_dev=32, max_length=32, epochs=2, device="cpu")
tiny_grid = [{"task": ["rte"], "method": ["delta_lora"], "update_ratio": [0.0], "start_steps": [2], "seed": [0]},
             {"task": ["rte"], "method": ["lora"], "seed": [0]}]
models = {}  # result key -> trained model (run_sweep writes only the JSON)


def train_and_keep(run, **kwargs):
    from dcft_edu.experiments.trainer import train
    result = train(run, **kwargs)
    models[run.key()] = result["_model"]
    return result


tiny_dir = Path(tempfile.mkdtemp(prefix="dcft_edu_13_"))
run_sweep("tiny", tiny_grid, tiny_dir, train_fn=train_and_keep, log=lambda m: None, **TINY)
tiny = load_results(tiny_dir / "tiny").set_index("method")
print(tiny[["update_ratio", "r", "lora_alpha", "lora_dropout", "optimizer_steps", "best_metric"]].to_string())
a, b = tiny.loc["delta_lora"], tiny.loc["lora"]
losses = pd.DataFrame({"Delta-LoRA λ=0": [e["loss"] for e in a["epochs"]], "LoRA": [e["loss"] for e in b["epochs"]]})
print(losses.rename_axis("epoch").to_string())
assert (a["r"], a["lora_alpha"], a["target_modules"]) == (b["r"], b["lora_alpha"], b["target_modules"])
np.testing.assert_allclose(losses["Delta-LoRA λ=0"], losses["LoRA"], rtol=1e-6)

lora_layers = dict(adapter_layers(models[b["key"]]))
weight_diff = max((effective_weight(layer) - effective_weight(lora_layers[name])).abs().max().item()
                  for name, layer in adapter_layers(models[a["key"]]))
print(f"largest |difference| of the effective weights over {len(lora_layers)} layers: {weight_diff:.1e}")
assert weight_diff <= 1e-6

# %% [markdown]
# The same losses in every epoch and the same final weights. So λ = 0 is our yardstick: any difference between
# λ > 0 and λ = 0 *of the same seed* is what λ does, not noise in the comparison.
#
# ## 2. The experiment: λ ∈ {0, 0.5, 1, 2, 3, 5}
#
# The committed sweep `delta_lambda` trained Delta-LoRA r = 8, α = 16 (s = 2) on all six matrices of every
# block of MiniLM-L6, at each task's default K (the paper's K as a fraction of its run, about 1–13 % of the
# steps), 3 seeds per cell, at scale `gpu` (the official recipes' learning rates, ~20k examples per run). The
# reference is LoRA r = 8 with the same r, α and matrices. Metric: the best dev epoch ×100.
#
# In lab mode you train a smaller version: λ ∈ {0, 0.5, 2} on STS-B (CPU; 400 training rows) or
# λ ∈ {0, 0.5, 2, 5} on STS-B and MRPC (GPU; 2,000 rows). `run_lab("delta")` also trains notebook 14's K runs;
# finished runs are files, so rerunning (here or there) trains nothing twice.

# %%
if TRAIN:
    yours = lab.run_lab("delta")
    yours_lam = yours[yours["sweep"] == "delta_lambda"]
    assert len(yours) == sum(len(r) for r in lab.lab_runs("delta")[1].values())  # every lab run finished
    assert yours_lam["best_metric"].between(-1, 1).all()
else:
    yours_lam = None
    print("Not training: set DCFT_EDU_TRAIN=1 (CPU: ~4.5 minutes) or use a GPU runtime to train the lab runs.")

# %% [markdown]
# ## 3. The committed runs
#
# The table is Table 7's layout: mean ± std over the seeds of the best-epoch dev metric (CoLA Matthews
# correlation, MRPC and RTE accuracy, STS-B Pearson r).

# %%
dl, ref = sweep_results("delta_lambda"), lora_reference()
planned = grid_runs(GRIDS["delta_lambda"], scale="gpu")
assert 0 < len(dl) <= len(planned) and set(dl["seed"]) <= set(PLANNED_SEEDS)
assert set(dl["update_ratio"]) <= set(LAMBDAS) and dl["best_metric"].between(-1, 1).all()
assert dl["device"].str.len().gt(0).all() and dl["git_commit"].str.len().gt(0).all()  # provenance present
lambda_table()

# %% [markdown]
# Seeds vary by a few points, so compare **seed by seed**: each λ against λ = 0 of the same task, seed and
# device (same data order and initialisation). This is the key computation, in four lines of pandas:

# %%
base = dl[dl["update_ratio"] == 0.0].set_index(["task", "seed", "device"])["best_metric"]
pairs = dl[dl["update_ratio"] > 0].join(base.rename("λ=0"), on=["task", "seed", "device"], how="inner")
pairs["diff"] = 100 * (pairs["best_metric"] - pairs["λ=0"])  # points above λ = 0 of the same seed
vs0 = pairs.groupby(["task", "update_ratio"])["diff"].agg(["mean", lambda d: f"{(d > 0).sum()}/{len(d)}"])
print(vs0.set_axis(["mean", "pairs > 0"], axis=1).unstack("update_ratio").round(1).to_string())
assert pairs["diff"].notna().all() and len(pairs) <= len(dl)

# %% [markdown]
# (λ = 0.5 at the default K is sweep `main`'s Delta-LoRA, which for seed 0 ran on another GPU model than λ = 0,
# so it has one pair fewer.) Small λ stays within a point or two of λ = 0: at λ = 0.5 Delta-LoRA is LoRA within
# seed noise. Large λ hurts, and on STS-B it costs **85 points**: the runs end with a Pearson r near 0.
# `REPORT.md`, section 13, holds the tests (paired t-tests, Holm-corrected across the four tasks). The paper's
# Table 7 (E2E, GPT-2 medium, lr 2e-4, one run per row; their numbers, not ours) rises to λ = 2 and stays flat:

# %%
print(PAPER_TABLE7[["BLEU", "ROUGE-L"]].T.to_string())
#
# The figure: top row λ, bottom row K (notebook 14). Grey band: LoRA r = 8 ± std; ▼: a mean off the axis. In lab
# mode your runs are the black stars (fewer rows, so expect them lower than the committed points).

# %%
fig = draw_delta_lora_lambda_k()
savefig(fig, "delta_lora_lambda_k")  # the committed figure; your runs are drawn after saving
if TRAIN:
    for j, t in enumerate(TASKS):
        if (yours_lam["task"] == t).any():
            overlay_user_runs(fig.axes[j], yours_lam[yours_lam["task"] == t], x="update_ratio", clip=True,
                              values=True)
plt.show()
if TRAIN:
    display(lab.yours_vs_committed(yours_lam, dl, by=["task", "update_ratio"]))  # noqa: F821 (IPython)

# %% [markdown]
# ## 4. The collapse
#
# A model that ignores its input can still predict the label prior. Its loss is that of the best **constant**
# predictor: for classification the entropy of the label frequencies $-\sum_c q_c \ln q_c$ (RTE, almost balanced:
# ≈ ln 2), for STS-B's squared error the variance of the scores. A collapsed model predicts the *training*
# prior, which on dev costs a little more: for STS-B the training mean's dev MSE is
# $\mathrm{Var}_\text{dev} + (\bar y_\text{train} - \bar y_\text{dev})^2$. From GLUE's full splits:

# %%
rte_dev = np.array(FULL_SPLIT_LABELS[("rte", "dev")]) / sum(FULL_SPLIT_LABELS[("rte", "dev")])
rte_const = -(rte_dev * np.log(rte_dev)).sum()  # −Σ q ln q, nats
sts_tr, sts_dev = FULL_SPLIT_LABELS[("stsb", "train")], FULL_SPLIT_LABELS[("stsb", "dev")]
sts_const = sts_dev["var"] + (sts_tr["mean"] - sts_dev["mean"]) ** 2  # MSE of predicting the training mean
print(f"RTE: constant predictor's dev loss {rte_const:.4f} (ln 2 = {np.log(2):.4f}), majority class "
      f"{rte_dev.max():.1%}")
print(f"STS-B: training mean {sts_tr['mean']:.2f}, dev mean {sts_dev['mean']:.2f}: predicting the training mean "
      f"costs {sts_const:.3f} = {sts_const / sts_dev['var']:.3f} × Var_dev")
assert rte_const <= np.log(2) and sts_const >= sts_dev["var"]

# %% [markdown]
# `collapse_check` flags a run as **collapsed** when its last epoch's train loss is within 5 % of the constant
# predictor's and its dev loss within 5 % of the best dev constant's or of the training prior's:

# %%
col = collapse_check(dl)
counts = col.groupby(["task", "λ"])["collapsed"].agg(lambda s: f"{s.sum()}/{len(s)}").unstack("λ")
print("collapsed runs / seeds:")
print(counts.to_string())
print("\nthe collapsed runs' last epoch, relative to the constant predictor:")
print(col[col["collapsed"]].groupby("task")[["best ×100", "train / constant", "dev / train prior"]].mean().round(3))
assert col["collapsed"].dtype == bool and len(col) == len(dl)
assert ((col.loc[col["collapsed"], "train / constant"] - 1).abs() < 0.05).all()
if TRAIN:
    print(collapse_check(yours_lam)[["task", "λ", "seed", "best ×100", "train / constant", "collapsed"]])

# %% [markdown]
# **What it means.** No run collapses at λ ≤ 0.5. STS-B collapses in every seed from λ = 2 on, the other tasks
# less predictably (RTE from λ = 1 in some seeds, MRPC at λ = 3, CoLA only at λ = 5), and λ = 5 collapses every
# run. The order follows the learning rate loosely (STS-B has the largest, 2.2e-3; CoLA the smallest, 8e-4): past
# K the adapter's changes reach the output $(1+\lambda)$ times, which acts on top of the learning rate. The paper
# trained with lr 2e-4, where λ = 2 is harmless; here it is the step that tips STS-B over.

# %% [markdown]
# ## What you should take away
#
# - Delta-LoRA with λ = 0 is LoRA, bit for bit. Past K its effective weight is $W_0 + s((1+\lambda)P_t -
#   \lambda P_K)$: λ multiplies the adapter's effective scale.
# - On GLUE with MiniLM, λ = 0.5 is LoRA within seed noise; λ ≥ 2 collapses STS-B in every seed, and λ = 5
#   collapses every task. The paper's "best at λ = 2" (E2E, lr 2e-4) does not carry over as a rule.
# - A collapsed run sits at the constant predictor's loss: check the loss against the label prior before reading
#   a low score as "worse".
# - Compare same-seed pairs on one device; the statistics of each claim are in `REPORT.md`, section 13.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/13_delta_lora_lambda_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **Set λ = 2 on STS-B and explain the collapse.** Train a tiny Delta-LoRA with λ = 2 (as in section 1, on
#    `stsb`). Predict how much farther the effective weight moves after K than the LoRA branch $s\,(P_t - P_K)$
#    alone does, and from that, why STS-B (lr 2.2e-3) collapses at λ = 2 while CoLA (8e-4) does not.
# 2. **The constant a collapsed STS-B model predicts.** Predict the dev loss of the committed STS-B runs at
#    λ = 2 from `FULL_SPLIT_LABELS` alone, before looking at their results; then check it.
# 3. **λ = 0 with a different α.** Change `lora_alpha` of the Delta-LoRA run in section 1 only. Predict whether
#    the two runs still agree, and why not.

# %%
# Exercise 1 · Set λ = 2 on STS-B: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_factor = None  # TODO: how much farther the effective weight moves after K than s·(P_t − P_K) alone
# TODO: train a tiny Delta-LoRA with λ = 2 on "stsb" as in section 1 and measure

# %%
# Exercise 2 · The constant a collapsed model predicts: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_dev_loss = None  # TODO: the dev MSE of the collapsed STS-B runs, from FULL_SPLIT_LABELS alone
# TODO: check against the committed λ = 2 runs

# %%
# Exercise 3 · λ = 0 with a different α: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_agree = None  # TODO: do the two runs of section 1 still agree if only Delta-LoRA's lora_alpha changes?
