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
# # 03 · Checkerboard artifacts: why DCFT uses stride = kernel
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/03_checkerboard_artifacts.ipynb)
#
# **Paper.** Zhang et al., *Parameter-Efficient Fine-Tuning of Large Language Models via Deconvolution in
# Subspace*, COLING 2025 — §3.2.2 ("Equal Kernel Stride"), Table 5 (stride ablation with $k = 8$) and
# **Appendix D** (checkerboard artifacts). Background: Odena, Dumoulin & Olah, *Deconvolution and
# Checkerboard Artifacts*, Distill 2016.
#
# A transposed convolution with stride $s$ and kernel $k$ pastes one $k\times k$ copy of the kernel every $s$
# cells. When $s < k$ the copies overlap; when $k$ is not a multiple of $s$ they overlap **unevenly**, and a
# perfectly smooth input comes out with a grid pattern: the checkerboard. This notebook makes Appendix D
# visible for $k = 8$ and the strides $s = 1, 2, 4, 6, 8$.

# %% [markdown]
# **Goals**
# - Derive how many kernel copies cover each cell of $\Delta W$ and compute it with `coverage_map`.
# - See when the coverage is even ($s$ divides $k$) and when it makes a checkerboard (Appendix D).
# - Check with random factors that the artifact lives in the variance: $\mathbb{E}[\Delta W^2] = \text{cover}$.
# - Read the spectrum of $\Delta W$ and relate it to the paper's stride ablation (Table 5).
#
# **Prerequisites.** Notebook 02 (the scatter rule of a transposed convolution, the Kronecker case $s = k$).
#
# **Time.** About 2 minutes on a laptop CPU, 1 on Colab; no GPU needed.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("03_checkerboard_artifacts")

# %%
import torch
from dcft_edu.experiments.runinfo import is_quick, notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import matplotlib.pyplot as plt
import pandas as pd

from dcft_edu.dcft import coverage_map, deconv_reference, subspace_size
from dcft_edu.figures.concepts import CHECKERBOARD_KERNEL, CHECKERBOARD_STRIDES, draw_checkerboard
from dcft_edu.figures.plotting import REPO_ROOT, savefig, set_theme

set_theme()
K = CHECKERBOARD_KERNEL  # 8
STRIDES = CHECKERBOARD_STRIDES  # (1, 2, 4, 6, 8)

# %% [markdown]
# ## 1. Coverage: how many kernel taps land on each cell
#
# From the scatter rule $\text{out}[is + p,\ js + q] \mathrel{+}= M[i,j]\,C[p,q]$ (notebook 02), output row $x$
# receives one tap for every pair $(i, p)$ with $x = is + p$, $0 \le p < k$. Its **coverage** is
#
# $$ c_s(x) = \#\{\, i : 0 \le x - i s < k \,\}, \qquad \text{cover}(x, y) = c_s(x)\, c_s(y), $$
#
# which is exactly what `coverage_map(k, s, shape)` returns (the deconvolution of an all-ones $M$ with an
# all-ones kernel). Away from the borders:
#
# - $s = k$: every cell gets exactly one tap (no overlap, the Kronecker product of notebook 02);
# - $k$ a multiple of $s$: every cell gets $(k/s)^2$ taps — even;
# - otherwise (here $s = 6$): $c_s(x)$ alternates between $\lfloor k/s\rfloor$ and $\lceil k/s\rceil$ — uneven.

# %%
N = 96
rows = []
for s in STRIDES:
    cov = coverage_map(K, s, (N, N))
    inner = cov[K:-K, K:-K]  # away from the borders, where fewer taps land
    values = sorted(int(v) for v in inner.unique())
    rows.append({"stride s": s, "taps per cell (inside)": values, "even?": len(values) == 1,
                 "mean taps": round(inner.double().mean().item(), 3), "(k/s)²": round((K / s) ** 2, 3)})
    assert torch.linalg.matrix_rank(cov.double()) == 1  # separable: cover(x, y) = c(x)·c(y)
    if K % s == 0:
        assert values == [(K // s) ** 2], s  # even coverage when s divides k
    else:
        assert len(values) > 1, s  # uneven otherwise
pd.DataFrame(rows)

# %% [markdown]
# The 1-D coverage $c_s(y)$ along one dimension, divided by its average $k/s$ (a $k$-row `coverage_map`
# has a single row of subspace cells, so its first row is $c_s$ itself): the even strides give a flat line
# after the border ramp, $s = 6$ keeps alternating between 1 and 2 taps with period 6.

# %%
fig, ax = plt.subplots(figsize=(8, 3.6))
for s in STRIDES:
    c = coverage_map(K, s, (K, N))[0]  # c_s(y), y = 0 .. N-1
    ax.plot(c[:48] / (K / s), drawstyle="steps-mid", lw=1.8, label=f"s = {s}")
ax.set_xlabel("column y of ΔW (input dim)")
ax.set_ylabel("taps  c_s(y) / (k/s)")
ax.set_title(f"Coverage along one dimension of ΔW, kernel k = {K}")
ax.set_ylim(0, 1.7)
ax.legend(ncol=5, fontsize=9, loc="lower right")
plt.show()

# %% [markdown]
# ## 2. What random factors see: variance follows coverage
#
# With zero-mean random factors (as at DCFT's init, $\mathcal{N}(0, \sigma^2)$) there is no visible pattern in a
# single $\Delta W$, but the overlap is still there, in the **variance**. Two taps landing on the same cell
# always use two different kernel entries, so their cross terms vanish in expectation and, for
# $a, b, C$ with i.i.d. $\mathcal{N}(0, 1)$ entries,
#
# $$ \mathbb{E}\big[\Delta W[x, y]^2\big] = \text{cover}(x, y). $$
#
# A Monte-Carlo check with the paper's rank-1 subspace $M = b a^\top$:

# %%
torch.manual_seed(0)
n_draws = 500 if is_quick() else 2000
N = 64
rows = []
for s in (4, 6, 8):
    h = subspace_size(N, K, s)
    second_moment = torch.zeros(N, N, dtype=torch.float64)
    for _ in range(n_draws):
        a, b = torch.randn(h, dtype=torch.float64), torch.randn(h, dtype=torch.float64)
        C = torch.randn(K, K, dtype=torch.float64)
        second_moment += deconv_reference(torch.outer(b, a), C, s, (N, N)) ** 2
    second_moment /= n_draws
    cov = coverage_map(K, s, (N, N))
    for v in cov.unique().tolist():
        measured = second_moment[cov == v].mean().item()
        rows.append({"stride s": s, "cover(x, y)": v, "cells": int((cov == v).sum()), "mean of ΔW²": measured})
        assert abs(measured / v - 1) < 0.1, (s, v, measured)
pd.DataFrame(rows).round(3)

# %% [markdown]
# ## 3. The figure: coverage, ΔW and its spectrum for every stride
#
# `dcft_edu.figures.draw_checkerboard` draws three views per stride (columns):
#
# 1. the **coverage map** (top-left corner of $\Delta W$, so the thinner borders show too);
# 2. **$\Delta W$ from random factors** $a, b, C \sim \mathcal{N}(1, 0.1^2)$ — a smooth "signal" plus noise, so any
#    pattern in $\Delta W$ comes from the upsampling, not from the factors;
# 3. the **2-D spectrum** of $\Delta W$, $\log_{10}|\text{FFT}|^2$ of its interior averaged over random draws.
#    A pattern that repeats every $s$ cells puts energy at frequencies that are multiples of $1/s$.
#
# It is saved as `figures/checkerboard.png` (in quick mode, `DCFT_EDU_QUICK=1`, into a temporary folder).

# %%
fig = draw_checkerboard()
paths = savefig(fig, "checkerboard")
print("saved:", ", ".join(p.name for p in paths))
assert all(p.exists() for p in paths)
if is_quick():  # quick runs never overwrite the committed figures
    assert all(p.parent != REPO_ROOT / "figures" for p in paths), paths

# %% [markdown]
# ## 4. Reading it against the paper
#
# - **$s = 6$** is the checkerboard of Appendix D: cells receive 1, 2 or 4 taps, so even a smooth subspace
#   comes out as a grid (row 2), and the spectrum has a grid of bright **spots** at multiples of $1/6$ (row 3).
#   It does not depend on the factors, so training has to fight it.
# - **$s = 2$ and $s = 4$** cover the interior evenly (16 and 4 taps): no checkerboard in the Appendix D
#   sense, only thinner borders. Their spectra show **lines** at multiples of $1/s$: the kernel's own
#   pattern repeated every $s$ cells. The paper attributes the weaker results at $s = 4$ (Table 5) to
#   checkerboard artifacts; on coverage alone $s = 4$ is even, so that explanation fits $s = 6$ better.
# - **$s = k = 8$** has no overlap at all, but it is the most strongly periodic of all: $\Delta W = M\otimes C$ is
#   made of $8\times 8$ blocks, each a scaled copy of $C$ (lines at multiples of $1/8$). What $s = k$ buys is
#   that every cell is touched once — no uneven sums — and the fewest parameters and the cheapest forward
#   (notebook 02).
# - **$s = 1$** overlaps so much (64 taps per cell) that it smooths everything; it costs 6.7× the parameters
#   of $s = 8$ (169,488 vs 25,344 on DeBERTa-v3-base, Table 5).

# %%
from dcft_edu.dcft import dcft_num_params

params = {s: dcft_num_params(768, 768, K, s) for s in STRIDES}
print("parameters of one 768×768 DCFT matrix, k = 8:", {f"s={s}": n for s, n in params.items()})
assert params[8] == min(params.values()) and params[1] == max(params.values())

# %% [markdown]
# ## What you should take away
#
# - A transposed convolution pastes a $k\times k$ kernel every $s$ cells; the number of copies covering a cell,
#   $\text{cover}(x,y) = c_s(x)\,c_s(y)$, is 1 everywhere for $s = k$, constant inside for $s \mid k$, and
#   uneven (a periodic grid) otherwise — that grid is the checkerboard artifact of Appendix D.
# - With random zero-mean factors the artifact hides in the variance: $\mathbb{E}[\Delta W^2] = \text{cover}$.
# - In the spectrum, structure repeating every $s$ cells sits at multiples of $1/s$: spots for uneven coverage,
#   lines for the repeated kernel pattern (every $s > 1$, including $s = k$).
# - $s = k$ is the choice without overlap, with the fewest parameters and the fastest (matrix-free) forward,
#   which is why DCFT uses it.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/03_checkerboard_artifacts_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **Stride 6.** With $k = 8$, $s = 6$, predict $c_6(y)$ along one dimension (its period and its values), then the
#    share of interior cells with 1, 2 and 4 taps and their mean; check with `coverage_map(8, 6, ...)`.
# 2. **Which kernels are even?** With $s = 4$, predict for $k = 4, 6, 8, 10, 12$ whether the interior coverage is even,
#    and how many taps each cell gets when it is.
# 3. **The price of overlap.** Predict the parameters of one 768×768 DCFT matrix with $k = 8$ at $s = 6$ and at
#    $s = 8$ (`subspace_size`'s formula from notebook 02).

# %%
# Exercise 1 · Stride 6: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_period = None  # TODO: the period of c_6(y) along one dimension, for k = 8, s = 6
predicted_taps = None  # TODO: the share of interior cells with 1, 2 and 4 taps, e.g. {1: ..., 2: ..., 4: ...}
# TODO: check with coverage_map(8, 6, (96, 96)), away from the edges

# %%
# Exercise 2 · Which kernels are even?: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_even = None  # TODO: {k: is the interior coverage even?} for k = 4, 6, 8, 10, 12 at s = 4
# TODO: check with coverage_map(k, 4, (96, 96))

# %%
# Exercise 3 · The price of overlap: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_params = None  # TODO: {6: ..., 8: ...} parameters of one 768 × 768 DCFT matrix, k = 8, at s = 6 and s = 8
# TODO: check with dcft_num_params(768, 768, 8, s)
