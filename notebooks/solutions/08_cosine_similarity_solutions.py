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
# # Solutions · 08 cosine similarity
#
# The exercises of `08_cosine_similarity`; each cell asserts the prediction. Exercise 3 trains two tiny runs
# (seconds to a minute on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("08_cosine_similarity_solutions")

# %%
import math

import torch

from dcft_edu.experiments.models import load_model
from dcft_edu.experiments.presets import make_run
from dcft_edu.experiments.trainer import train


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    # cos(W₀, W) = ⟨W₀, W⟩_F / (‖W₀‖_F ‖W‖_F)
    return ((a * b).sum() / (a.norm() * b.norm())).item()


# %% [markdown]
# **1. Cosine from the relative change.** With $\langle W_0, \Delta W\rangle = 0$, $\|W\|^2 = \|W_0\|^2(1 + \rho^2)$
# and $\langle W_0, W\rangle = \|W_0\|^2$, so $\cos = 1/\sqrt{1 + \rho^2}$ and $1 - \cos \approx \rho^2/2$:
# $1.25\cdot10^{-3}$ for $\rho = 0.05$. A 5 % change in norm is a cosine of 0.9988.

# %%
torch.manual_seed(0)
w0 = torch.randn(384, 384, dtype=torch.float64)
r = torch.randn_like(w0)
r -= (r * w0).sum() / (w0 * w0).sum() * w0  # (384, 384): remove r's component along W₀
rho = 0.05
w = w0 + rho * w0.norm() / r.norm() * r
print(f"1 − cos = {1 - cosine(w0, w):.6f}, formula {1 - 1 / math.sqrt(1 + rho ** 2):.6f}, ρ²/2 = {rho ** 2 / 2:.6f}")
assert abs((1 - cosine(w0, w)) - (1 - 1 / math.sqrt(1 + rho ** 2))) < 1e-12
assert abs((1 - cosine(w0, w)) / (rho ** 2 / 2) - 1) < 0.01

# %% [markdown]
# **2. What the cosine does not see.** $\cos(W_0, 2W_0) = 1$ (a direction, not a length), while the relative
# change is $\|2W_0 - W_0\|/\|W_0\| = 1$: only the relative change notices a pure rescaling.

# %%
assert abs(cosine(w0, 2 * w0) - 1) < 1e-12 and abs(((2 * w0 - w0).norm() / w0.norm()).item() - 1) < 1e-12

# %% [markdown]
# **3. The learning rate decides.** AdamW's first steps move every entry by about lr (its update is
# $\approx$ lr · sign of the gradient at the start), so 10× the learning rate gives about 10× the relative change.

# %%
q0 = "bert.encoder.layer.0.attention.self.query"
rel = {}
for lr in (1e-4, 1e-3):
    run = make_run("rte", "full", scale="quick", seed=0, limit_train=32, limit_dev=32, lr=lr)
    result = train(run, progress=False, log=lambda m: None, model_and_tokenizer=load_model("rte"))
    rel[lr] = result["weight_similarity"][q0]["rel_change"]
ratio = rel[1e-3] / rel[1e-4]
print(f"rel. change of block 0 Wq: lr 1e-4 {rel[1e-4]:.2e}, lr 1e-3 {rel[1e-3]:.2e}, ratio {ratio:.1f}")
assert 5 < ratio < 15
