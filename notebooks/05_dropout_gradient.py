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
# # 05 · Why Delta-LoRA removes dropout
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/05_dropout_gradient.ipynb)
#
# **Paper.** Zi et al., *Delta-LoRA: Fine-Tuning High-Rank Parameters with the Delta of Low-Rank Matrices*,
# 2023 — §4.1 (Eq. 4), §4.2 (Eq. 7) and the ablation in Table 5 ("discarding the dropout ... obtains the best
# performance").
#
# Delta-LoRA moves the frozen weight $W$ by the change of the product $BA$ (notebook 06). That is justified by
# one identity: **without dropout, $W$ and $BA$ receive the same gradient**, up to the LoRA scale. With dropout
# in the LoRA branch (LoRA's default) the identity breaks, and the gap grows with the dropout rate.

# %% [markdown]
# **Goals**
# - Derive why, without dropout, $W$ and $BA$ get the same gradient up to the scale $s$ (Eq. 4), and check it on a
#   real `LoRALinear`.
# - Measure how far dropout pushes the two gradients apart as the rate $p$ grows (Eq. 7).
# - Understand why Delta-LoRA refuses `lora_dropout > 0`.
#
# **Prerequisites.** Notebook 01 (LoRA); the chain rule, inverted dropout.
#
# **Time.** About 1–2 minutes on a laptop CPU or on Colab; no GPU needed.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("05_dropout_gradient")

# %%
import torch
from dcft_edu.experiments.runinfo import is_quick, notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import pandas as pd
import torch.nn.functional as F
from torch import nn

from dcft_edu import DeltaLoRAConfig, LoRAConfig, LoRALinear, dropout_gradient_gap
from dcft_edu.figures.concepts import draw_dropout_gradient_gap
from dcft_edu.figures.plotting import REPO_ROOT, savefig, set_theme

set_theme()

# %% [markdown]
# ## 1. The two gradients (Eq. 4 and Eq. 7)
#
# One layer with a LoRA branch, $s = \alpha/r$, $P = BA$, and $\delta = \partial L/\partial h$:
#
# $$ h = W x + s\,P\,\operatorname{drop}(x), \qquad
#    \frac{\partial L}{\partial W} = \delta\, x^\top, \qquad
#    \frac{\partial L}{\partial P} = s\,\delta\, \operatorname{drop}(x)^\top . $$
#
# - **No dropout** ($\operatorname{drop}(x) = x$): $\;\dfrac{\partial L}{\partial W} = \dfrac{1}{s}\dfrac{\partial L}{\partial (BA)}$
#   exactly (Eq. 4). So the step that $A$ and $B$ take is a fair stand-in for the step $W$ would take.
# - **Dropout** ($\operatorname{drop}(x) = m\odot x/(1-p)$, $m$ a random 0/1 mask): the two differ (Eq. 7),
#   because $W$ sees $x$ and $BA$ sees a randomly masked, rescaled $x$.
#
# The library's `LoRALinear` does not expose $\partial L/\partial P$, but it gives $\partial L/\partial A$ and
# $\partial L/\partial B$, and the chain rule through $P = BA$ says
#
# $$ \frac{\partial L}{\partial A} = B^\top \frac{\partial L}{\partial P}, \qquad
#    \frac{\partial L}{\partial B} = \frac{\partial L}{\partial P} A^\top, $$
#
# so Eq. 4 predicts $\partial L/\partial A = s\,B^\top\,\partial L/\partial W$ and
# $\partial L/\partial B = s\,(\partial L/\partial W)\,A^\top$ without dropout. We check that on a real LoRA layer,
# letting $W$ record its gradient just to read it:

# %%
def lora_gradients(p, seed=0):
    """(∂L/∂W, ∂L/∂A, ∂L/∂B, s) for one LoRALinear(64 → 48, r = 8) with LoRA dropout p, in training mode."""
    torch.manual_seed(seed)
    layer = LoRALinear(nn.Linear(64, 48), LoRAConfig(r=8, lora_alpha=16, lora_dropout=p))
    with torch.no_grad():
        layer.lora_B.normal_(std=0.1)  # as after some training: B ≠ 0
    layer.base_layer.weight.requires_grad_(True)  # frozen in LoRA; here only to read ∂L/∂W
    layer.train()
    x, y = torch.randn(32, 64), torch.randn(32, 48)
    F.mse_loss(layer(x), y).backward()
    return layer.base_layer.weight.grad, layer.lora_A.grad, layer.lora_B.grad, layer


for p in (0.0, 0.5):
    g_W, g_A, g_B, layer = lora_gradients(p)
    pred_A = layer.scaling * layer.lora_B.detach().T @ g_W  # s · Bᵀ ∂L/∂W
    pred_B = layer.scaling * g_W @ layer.lora_A.detach().T  # s · ∂L/∂W Aᵀ
    err_A = ((g_A - pred_A).norm() / g_A.norm()).item()
    err_B = ((g_B - pred_B).norm() / g_B.norm()).item()
    print(f"dropout p = {p}: relative error of Eq. 4's prediction   ∂L/∂A: {err_A:.1e}   ∂L/∂B: {err_B:.1e}")
    if p == 0.0:
        assert err_A < 1e-5 and err_B < 1e-5
    else:
        assert err_A > 0.1 and err_B > 0.1

# %% [markdown]
# ## 2. How big is the gap?
#
# `dropout_gradient_gap` measures, with autograd in float64, the relative gap
#
# $$ \text{gap}(p) = \frac{\big\|\,\partial L/\partial W - \tfrac{1}{s}\,\partial L/\partial (BA)\,\big\|_F}
#                         {\|\partial L/\partial W\|_F}, $$
#
# averaged over random draws of $W, A, B$, a batch $x$ and a regression target, with one dropout mask per
# input entry. The masks come from one set of uniform numbers $u$ ($m = [u \ge p]$), so across $p$ they are
# nested and the curve is smooth. It also returns a reference scale,
#
# $$ \sqrt{\frac{p}{1-p}} = \frac{\operatorname{std}\big(m/(1-p)\big)}{\mathbb{E}\big[m/(1-p)\big]}, $$
#
# the relative size of inverted-dropout noise on one input entry.

# %%
rows = []
for p in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
    res = dropout_gradient_gap(p=p, n_trials=4)
    rows.append({"p": p, "gap": res["gap"], "reference √(p/(1−p))": res["reference"],
                 "cosine(∂L/∂W, ∂L/∂BA)": res["cosine"], "gap, same draws, no dropout": res["gap_no_dropout"]})
table = pd.DataFrame(rows)
table.round(4)

# %%
assert (table["gap, same draws, no dropout"] < 1e-12).all()  # Eq. 4: exact without dropout
assert table["gap"].iloc[0] < 1e-12 and (table["gap"].diff().iloc[1:] > 0).all()  # grows with p
assert table.loc[table["p"] == 0.1, "gap"].item() > 0.2  # already ~30 % at LoRA's usual p = 0.1
for _, row in table.iterrows():
    if 0 < row["p"] <= 0.5:  # the reference is the right order of magnitude
        assert 0.5 < row["gap"] / row["reference √(p/(1−p))"] < 2
print("the gap follows the reference within a factor 2 for 0 < p ≤ 0.5; at p = 0.1 it is "
      f"{table.loc[table['p'] == 0.1, 'gap'].item():.0%}")

# %% [markdown]
# ## 3. The figure
#
# `dcft_edu.figures.draw_dropout_gradient_gap` plots the gap against $p$ with the spread over random draws
# and the reference curve (left), and the cosine between the two gradients (right). Saved as
# `figures/dropout_gradient_gap.png` (in quick mode into a temporary folder, with fewer points and draws).

# %%
fig = draw_dropout_gradient_gap()
paths = savefig(fig, "dropout_gradient_gap")
print("saved:", ", ".join(p.name for p in paths))
assert all(p.exists() for p in paths)
if is_quick():  # quick runs never overwrite the committed figures
    assert all(p.parent != REPO_ROOT / "figures" for p in paths), paths

# %% [markdown]
# At LoRA's usual rates (0.05–0.1) the gradient of $BA$ is already 20–30 % off the gradient $W$ would get, and
# its direction drifts too (cosine < 1). Hence Delta-LoRA's design: **no dropout in the LoRA branch** (use
# dropout between the pretrained layers if you need regularisation). The library enforces it, with the reason:

# %%
try:
    DeltaLoRAConfig(lora_dropout=0.1)
except ValueError as err:
    print("ValueError:", err)
else:
    raise AssertionError("DeltaLoRAConfig must refuse lora_dropout > 0")

# %% [markdown]
# ## What you should take away
#
# - For $h = Wx + s\,BA\,x$: $\;\partial L/\partial W = \delta x^\top$ and $\partial L/\partial (BA) = s\,\delta x^\top$ —
#   the same matrix up to $s$ (Eq. 4). Checked on a real `LoRALinear`: $\partial L/\partial A$ and $\partial L/\partial B$
#   are exactly what that identity predicts.
# - Dropout on the LoRA input replaces $x$ by a masked, rescaled copy in the second gradient only (Eq. 7); the
#   relative gap grows with $p$, roughly like $\sqrt{p/(1-p)}$: about 30 % at $p = 0.1$.
# - Delta-LoRA uses the change of $BA$ as the update of $W$; that is only justified without dropout, so
#   `DeltaLoRAConfig` refuses `lora_dropout > 0`.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/05_dropout_gradient_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **The gap at $p = 0$.** Predict `dropout_gradient_gap(p=0.0)`'s gap and cosine, then check.
# 2. **The gap at $p = 0.5$.** Predict the reference $\sqrt{p/(1-p)}$ and the order of the gap.
# 3. **Evaluation mode.** Rerun section 1's check with `lora_dropout=0.5` but the layer in `eval()` mode. Predict
#    the relative error of Eq. 4's prediction.

# %%
# Exercise 1 · The gap at p = 0: a starter. Fill in the TODOs, run, then compare with the solution.
predicted = None  # TODO: (gap, cosine) of dropout_gradient_gap(p=0.0)

# %%
# Exercise 2 · The gap at p = 0.5: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_reference = None  # TODO: sqrt(p / (1 - p)) at p = 0.5
predicted_order = None  # TODO: the order of magnitude of dropout_gradient_gap(p=0.5)["gap"]

# %%
# Exercise 3 · Evaluation mode: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_error = None  # TODO: the relative error of Eq. 4's prediction with lora_dropout=0.5 and layer.eval()
# TODO: rerun section 1's check with the layer in eval() mode
