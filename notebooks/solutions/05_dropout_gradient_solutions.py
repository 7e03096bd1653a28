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
# # Solutions · 05 Why Delta-LoRA removes dropout
#
# The exercises of `05_dropout_gradient`; each cell asserts the prediction (seconds on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("05_dropout_gradient_solutions")

# %%
import torch
import torch.nn.functional as F
from torch import nn

from dcft_edu import LoRAConfig, LoRALinear, dropout_gradient_gap

# %% [markdown]
# **1. The gap at $p = 0$.** No mask, so both gradients are built from the same $x$: Eq. 4 holds exactly and the gap
# is 0 (to rounding), the cosine 1.

# %%
res = dropout_gradient_gap(p=0.0, n_trials=4)
print(f"p = 0: gap {res['gap']:.1e}, cosine {res['cosine']:.6f}")
assert res["gap"] < 1e-12 and abs(res["cosine"] - 1) < 1e-12

# %% [markdown]
# **2. The gap at $p = 0.5$.** The reference $\sqrt{p/(1-p)} = 1$: inverted dropout's noise is as large as the
# signal, so the gap is of order 1 (within a factor 2), and the gradients' directions differ a lot.

# %%
res = dropout_gradient_gap(p=0.5, n_trials=4)
print(f"p = 0.5: gap {res['gap']:.3f}, reference {res['reference']:.3f}, cosine {res['cosine']:.3f}")
assert res["reference"] == 1.0 and 0.5 < res["gap"] < 2

# %% [markdown]
# **3. Evaluation mode.** `nn.Dropout` is the identity in `eval()` mode, so even with `lora_dropout=0.5` Eq. 4's
# prediction $\partial L/\partial A = s\,B^\top\,\partial L/\partial W$ holds exactly there.

# %%
torch.manual_seed(0)
layer = LoRALinear(nn.Linear(64, 48), LoRAConfig(r=8, lora_alpha=16, lora_dropout=0.5))
with torch.no_grad():
    layer.lora_B.normal_(std=0.1)
layer.base_layer.weight.requires_grad_(True)
layer.eval()
x, y = torch.randn(32, 64), torch.randn(32, 48)
F.mse_loss(layer(x), y).backward()
pred_A = layer.scaling * layer.lora_B.detach().T @ layer.base_layer.weight.grad  # (8, 48) @ (48, 64) -> (8, 64)
err = ((layer.lora_A.grad - pred_A).norm() / layer.lora_A.grad.norm()).item()
print(f"eval mode, p = 0.5: relative error of Eq. 4's prediction {err:.1e}")
assert err < 1e-5
