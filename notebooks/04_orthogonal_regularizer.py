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
# # 04 · The orthogonal regulariser, and what it does at rank 1
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/04_orthogonal_regularizer.ipynb)
#
# **Paper.** Zhang et al., *Parameter-Efficient Fine-Tuning of Large Language Models via Deconvolution in
# Subspace*, COLING 2025 — §3.1, Eq. 4 ("orthogonal constraints are applied to matrix A and B to maximize
# the learning space") and Appendix C. The official code uses AdaLoRA's regulariser (Zhang et al., 2023).
#
# The official training loss is
#
# $$ \mathcal{L} = \mathcal{L}_\text{task} + \gamma\, R(A, B), \qquad
#    R = \operatorname{mean}_{\text{all } A,\,B}\ \big\{\ \|A A^\top - I\|_F,\ \ \|B^\top B - I\|_F\ \big\}, $$
#
# with the Frobenius norm **not squared**, the mean taken over every $A$ and $B$ tensor of the model, the kernel
# $C$ left out, and $\gamma = 0.1$ (0.3 for RTE and STS-B). This notebook computes it with the library
# (`dcft_edu.orthogonal_penalty`), shows that with DCFT's rank-1 subspace it can only pull $\|a\|$ and $\|b\|$
# towards 1, what it does for $r > 1$, and what it changes in a short real training run.

# %% [markdown]
# **Goals**
# - Compute the official orthogonal penalty by hand and match `orthogonal_penalty`.
# - Show that at rank 1 its gradient is parallel to $a$: it can only change lengths, never directions.
# - See it make the rows of $A$ orthonormal when $r > 1$, with the plain and the squared norm.
# - Measure what it does to $\|a\|$ and $\|b\|$ in a short real training run.
#
# **Prerequisites.** Notebook 02 (DCFT's factors $A$, $B$, $C$); gradients and the Frobenius norm.
#
# **Time.** About 3–5 minutes on a laptop CPU (three short training runs), 1–2 on a Colab GPU; no GPU needed.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("04_orthogonal_regularizer")

# %%
import torch
from dcft_edu.experiments.runinfo import notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import datasets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch.nn.functional as F
from torch import nn

from dcft_edu import DCFTConfig, adapter_layers, inject_adapters, orthogonal_penalty
from dcft_edu.figures.plotting import set_theme
from dcft_edu.experiments.presets import make_run
from dcft_edu.regularizers import gram_deviation
from dcft_edu.experiments.trainer import train

set_theme()
datasets.disable_progress_bars()

# %% [markdown]
# ## 1. The formula, on a toy model
#
# For $A$ of shape $(r, h_\text{in})$ the Gram matrix is $AA^\top$ ($r\times r$), for $B$ of shape
# $(h_\text{out}, r)$ it is $B^\top B$. Two DCFT layers by hand, the penalty by the library and by the formula:

# %%
torch.manual_seed(0)
toy = nn.Sequential()
toy.add_module("query", nn.Linear(64, 64))
toy.add_module("value", nn.Linear(64, 128))
inject_adapters(toy, DCFTConfig(r=2, kernel_size=8, target_modules=("query", "value"), modules_to_save=()))
terms = []
for name, layer in adapter_layers(toy):
    A, B = layer.lora_A, layer.lora_B
    terms += [torch.linalg.norm(A @ A.T - torch.eye(2)), torch.linalg.norm(B.T @ B - torch.eye(2))]
by_hand = torch.stack(terms).mean()
print(f"library: {orthogonal_penalty(toy).item():.6f}   by hand: {by_hand.item():.6f}")
torch.testing.assert_close(orthogonal_penalty(toy), by_hand)

# %% [markdown]
# At DCFT's init ($\mathcal{N}(0, 0.02^2)$ entries) every Gram matrix is nearly zero, so each term is close to
# $\|{-I}\|_F = \sqrt{r}$: the penalty starts near its largest value, and $\gamma R$ adds a constant
# $\approx \gamma\sqrt{r}$ to the loss at step 0.

# %% [markdown]
# ## 2. Rank 1: the penalty only sees the lengths
#
# With the paper's $r = 1$, $A = a^\top$ is one row and $B = b$ one column. The Gram matrices are $1\times 1$:
#
# $$ \|a^\top a - 1\|_F = \big|\,\|a\|^2 - 1\,\big|, \qquad
#    \nabla_a \big|\,\|a\|^2 - 1\,\big| = 2\,\operatorname{sign}(\|a\|^2 - 1)\; a . $$
#
# The gradient is **parallel to $a$**: the penalty can stretch or shrink $a$ but never turn it. There is
# nothing to make "orthogonal" in a single vector.

# %%
torch.manual_seed(0)
a = (0.02 * torch.randn(1, 48)).requires_grad_(True)  # lora_A of a 384-wide layer with k = 8, at init
penalty = gram_deviation(a, rows=True)
penalty.backward()
cos = F.cosine_similarity(a.grad.flatten(), a.detach().flatten(), dim=0).item()
print(f"‖a‖ = {a.norm().item():.4f}, penalty = {penalty.item():.4f} = |‖a‖² − 1| = {abs(a.norm().item()**2 - 1):.4f}")
print(f"cosine(gradient, a) = {cos:+.6f}")
torch.testing.assert_close(penalty, (a.norm() ** 2 - 1).abs())
assert abs(abs(cos) - 1) < 1e-6

# %% [markdown]
# Gradient descent on the penalty alone: $\|a\| \to 1$, the direction stays put. The non-squared norm has a
# kink at its minimum, so with a constant step the length chatters around 1; a decaying step (as the real
# schedules have) settles it.

# %%
a0 = a.detach().clone()
a = a0.clone().requires_grad_(True)
opt = torch.optim.SGD([a], lr=0.05)
sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.01, total_iters=300)
norms = []
for _ in range(300):
    opt.zero_grad()
    gram_deviation(a, rows=True).backward()
    opt.step()
    sched.step()
    norms.append(a.norm().item())
cos = F.cosine_similarity(a.detach().flatten(), a0.flatten(), dim=0).item()
print(f"after 300 steps: ‖a‖ = {norms[-1]:.4f}, cosine with the initial a = {cos:.6f}")
assert abs(norms[-1] - 1) < 0.01 and cos > 0.999999

# %% [markdown]
# ## 3. Rank $r > 1$: an orthonormal set
#
# For $r > 1$ the off-diagonal entries of $AA^\top$ are the inner products between the rows of $A$, so
# minimising $\|AA^\top - I\|_F$ makes the rows **orthonormal** (unit length, mutually orthogonal). Gradient
# descent on the penalty alone, $r = 4$ rows of length 32, with the official (plain) and the squared norm:

# %%
torch.manual_seed(0)
A0 = 0.3 * torch.randn(4, 32)
curves = {}
for squared in (False, True):
    A = A0.clone().requires_grad_(True)
    opt = torch.optim.SGD([A], lr=0.05)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.01, total_iters=400)
    hist = []
    for _ in range(400):
        opt.zero_grad()
        gram_deviation(A, rows=True, squared=squared).backward()
        opt.step()
        sched.step()
        hist.append(gram_deviation(A.detach(), rows=True).item())
    curves["‖AAᵀ − I‖_F (official)" if not squared else "‖AAᵀ − I‖²_F (squared)"] = hist
    G = (A @ A.T).detach()
    with np.printoptions(precision=3, suppress=True):
        print(f"squared={squared}: A Aᵀ after 400 steps =\n{G.numpy()}")
    torch.testing.assert_close(G, torch.eye(4), atol=0.02, rtol=0)

# %% [markdown]
# Both reach $AA^\top = I$. The official (plain) norm gets there jumpily: its gradient keeps a size of about 1 right
# up to the minimum (a kink, like $|x|$ at 0), so the iterates bounce around it until the step size has decayed;
# the squared norm is smooth there and converges fast.

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for label, hist in curves.items():
    ax.plot(hist, label=f"descent on {label}")
ax.set_yscale("log")
ax.set_xlabel("gradient step")
ax.set_ylabel("‖A Aᵀ − I‖_F")
ax.set_title("r = 4: the penalty alone drives A Aᵀ → I")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. In a real (short) training run
#
# DCFT on RTE with the packaged MiniLM (36 adapted matrices, $k = 8$, rank 1), trained by the library's
# trainer without the penalty ($\gamma = 0$) and with the official RTE value $\gamma = 0.3$ (plus $0.1$, the
# value of the other tasks, outside quick mode), everything else equal (same seed, data and schedule). In quick
# mode (CI) this is 10 optimizer steps on 160 examples; otherwise 40 steps on 640 examples and the full dev set.
# Either way it is far too short to say anything about accuracy; it shows *what the penalty does to the
# factors*.

# %%
scale_kw = {} if QUICK else dict(limit_train=640, limit_dev=None)
gammas = (0.0, 0.3) if QUICK else (0.0, 0.1, 0.3)
results = {}
for gamma in gammas:
    run = make_run("rte", "dcft", scale="quick", seed=0, orth_gamma=gamma, **scale_kw)
    results[gamma] = train(run, progress=False, log=print)
print(f"{results[0.0]['optimizer_steps']} optimizer steps per run, lr {run.lr}, batch {run.batch_size}")

# %%
rows = []
for gamma, res in results.items():
    model = res["_model"]
    for name, layer in adapter_layers(model):
        rows.append({"γ": gamma, "layer": name, "‖a‖": layer.lora_A.detach().norm().item(),
                     "‖b‖": layer.lora_B.detach().norm().item()})
norms = pd.DataFrame(rows)
summary = pd.DataFrame({
    "γ": list(results),
    "mean ‖a‖": norms.groupby("γ")["‖a‖"].mean().values,
    "mean ‖b‖": norms.groupby("γ")["‖b‖"].mean().values,
    "penalty R at the end": [orthogonal_penalty(r["_model"]).item() for r in results.values()],
    "dev accuracy": [r["final_metric"] for r in results.values()],
})
summary.round(4)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, col in zip(axes, ("‖a‖", "‖b‖")):
    for i, gamma in enumerate(gammas):
        vals = norms.loc[norms["γ"] == gamma, col]
        ax.scatter(vals, [i] * len(vals), alpha=0.6, s=18)
        ax.plot([vals.mean()], [i], "k|", ms=16, mew=2)
    ax.axvline(1.0, color="0.5", ls=":", lw=1)
    ax.set_xlabel(f"{col} per adapted matrix (36 matrices)")
    ax.set_xlim(0, 1.05)
axes[0].set_yticks(range(len(gammas)), [f"γ = {g}" for g in gammas])
axes[0].set_ylabel("orthogonal penalty weight")
fig.suptitle("After training: the penalty pulls ‖a‖ and ‖b‖ up towards 1 (dotted); | marks the mean")
plt.show()

# %% [markdown]
# Without the penalty the lengths barely move from their init (about $0.02\sqrt{h}$: 48 entries for most
# factors, 192 for the wide side of the FFN matrices — the small group on the right); with it they grow
# towards 1 and $R$ goes down accordingly. Under Adam the step per entry is roughly the learning rate whatever
# the gradient's size, so (outside quick mode) $\gamma = 0.1$ and $0.3$ move the lengths by similar amounts once
# the penalty dominates the (tiny) task gradient of $a$ and $b$. The dev accuracy of such a short run is noise.
#
# Because $\Delta W = \frac{\alpha}{r}\,(b a^\top)\otimes C$ only depends on the *product* of the three factors'
# scales, longer $a$ and $b$ can be compensated by a smaller $C$: at rank 1 the regulariser rebalances scale
# between the factors (which changes how fast each moves under Adam); it does not constrain the update's shape.

# %%
mean_a = summary.set_index("γ")["mean ‖a‖"]
mean_b = summary.set_index("γ")["mean ‖b‖"]
penalty_end = summary.set_index("γ")["penalty R at the end"]
assert mean_a.is_monotonic_increasing and mean_b.is_monotonic_increasing  # longer with larger γ
assert penalty_end.is_monotonic_decreasing  # closer to the penalty's minimum
assert mean_a[0.3] > 1.1 * mean_a[0.0] and mean_b[0.3] > 1.1 * mean_b[0.0]
assert (norms["‖a‖"] < 1).all()  # a short run: still far from the minimum at 1

# %% [markdown]
# ## What you should take away
#
# - The official penalty is $\gamma\cdot\operatorname{mean}\{\|AA^\top - I\|_F, \|B^\top B - I\|_F\}$ over all $A$
#   and $B$ (Frobenius norm not squared, kernel excluded); `orthogonal_penalty` computes exactly that.
# - With DCFT's rank-1 subspace each Gram matrix is a number, $\|a\|^2$ or $\|b\|^2$: the gradient is
#   parallel to the vector, so the penalty only pulls the lengths towards 1 and never changes a direction.
#   "Orthogonality" needs $r > 1$, where the penalty alone does drive $AA^\top \to I$.
# - In training it makes $a$ and $b$ longer (more so with larger $\gamma$), i.e. it moves scale between the
#   subspace factors and the kernel; whether that helps is an empirical question for the experiments,
#   not something the name "orthogonal" promises at rank 1.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/04_orthogonal_regularizer_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **The penalty at init.** Inject DCFT with $r = 4$ into section 1's toy model. Predict `orthogonal_penalty` at
#    init, then check.
# 2. **A long vector.** Give a rank-1 $a$ the length 2. Predict the penalty and its gradient (size and direction).
# 3. **Already orthonormal.** Predict the penalty of an $A$ with orthonormal rows ($r = 4$), and of twice that $A$.

# %%
# Exercise 1 · The penalty at init: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_penalty = None  # TODO: orthogonal_penalty of section 1's toy model with DCFT r = 4, right after injection
# TODO: check: inject DCFTConfig(r=4, ...) into a fresh copy of the toy model, then orthogonal_penalty(model)

# %%
# Exercise 2 · A long vector: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_penalty = None  # TODO: a rank-1 a of length 2 (and a unit b): the penalty
predicted_gradient = None  # TODO: the size and direction of its gradient with respect to a
# TODO: check with gram_deviation and .backward()

# %%
# Exercise 3 · Already orthonormal: a starter. Fill in the TODOs, run, then compare with the solution.
predicted = None  # TODO: (penalty of an A with orthonormal rows, r = 4; penalty of 2 · A)
# TODO: check with gram_deviation(A, rows=True), A from torch.linalg.qr
