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
# # Solutions · 04 The orthogonal regulariser
#
# The exercises of `04_orthogonal_regularizer`; each cell asserts the prediction (seconds on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("04_orthogonal_regularizer_solutions")

# %%
import torch
import torch.nn.functional as F
from torch import nn

from dcft_edu import DCFTConfig, inject_adapters, orthogonal_penalty
from dcft_edu.regularizers import gram_deviation

# %% [markdown]
# **1. The penalty at init, $r = 4$.** Entries of $\mathcal{N}(0, 0.02^2)$ make every Gram matrix nearly 0, so each
# term is $\approx \|{-I_4}\|_F = \sqrt{4} = 2$, and so is their mean.

# %%
torch.manual_seed(0)
toy = nn.Sequential()
toy.add_module("query", nn.Linear(64, 64))
toy.add_module("value", nn.Linear(64, 128))
inject_adapters(toy, DCFTConfig(r=4, kernel_size=8, target_modules=("query", "value"), modules_to_save=()))
R = orthogonal_penalty(toy).item()
print(f"penalty at init, r = 4: {R:.4f}")
assert abs(R - 2) < 0.01

# %% [markdown]
# **2. A long vector.** $\|a\| = 2$: the penalty is $|\,\|a\|^2 - 1\,| = 3$ and its gradient is $2a$, parallel to $a$
# (cosine $+1$): a descent step shrinks $a$ without turning it.

# %%
torch.manual_seed(0)
a = torch.randn(1, 48)
a = (2 * a / a.norm()).requires_grad_(True)
penalty = gram_deviation(a, rows=True)
penalty.backward()
cos = F.cosine_similarity(a.grad.flatten(), a.detach().flatten(), dim=0).item()
print(f"penalty {penalty.item():.4f}, cosine(gradient, a) = {cos:+.6f}")
torch.testing.assert_close(penalty, torch.tensor(3.0))
torch.testing.assert_close(a.grad, 2 * a.detach())

# %% [markdown]
# **3. Already orthonormal, then doubled.** Orthonormal rows give $AA^\top = I$: penalty 0. Doubling them gives
# $AA^\top = 4I$, so $\|3I_4\|_F = 3\sqrt{4} = 6$.

# %%
Q, _ = torch.linalg.qr(torch.randn(32, 4, dtype=torch.float64))  # (32, 4), orthonormal columns
A = Q.T  # (4, 32), orthonormal rows
print(f"orthonormal: {gram_deviation(A, rows=True).item():.1e}, doubled: {gram_deviation(2 * A, rows=True).item():.4f}")
assert gram_deviation(A, rows=True) < 1e-12
assert abs(gram_deviation(2 * A, rows=True).item() - 6) < 1e-12
