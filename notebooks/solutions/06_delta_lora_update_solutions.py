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
# # Solutions · 06 The Delta-LoRA update
#
# The exercises of `06_delta_lora_update`. A toy layer on random data replaces MiniLM and RTE, so each cell runs in
# a second; the algebra is the same.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("06_delta_lora_update_solutions")

# %%
import torch
from torch import nn

from dcft_edu import DeltaLoRAConfig, export_delta_lora, inject_adapters, register_delta_lora_hook
from dcft_edu.delta_lora import delta_lora_layers


def train_toy(T=10, **config):
    """A 64 → 64 `query` layer with Delta-LoRA, T AdamW steps on random regression data; returns (layer, W_0)."""
    torch.manual_seed(0)
    toy = nn.Sequential()
    toy.add_module("query", nn.Linear(64, 64))
    inject_adapters(toy, DeltaLoRAConfig(target_modules=("query",), modules_to_save=(), **config))
    (_, layer), = delta_lora_layers(toy)
    W0 = layer.base_weight().detach().clone()
    optimizer = torch.optim.AdamW([p for p in toy.parameters() if p.requires_grad], lr=1e-2)
    register_delta_lora_hook(optimizer, toy)
    x, y = torch.randn(32, 64), torch.randn(32, 64)
    for _ in range(T):
        torch.nn.functional.mse_loss(toy(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    return layer, W0


def rank(M):
    sv = torch.linalg.svdvals(M.double())
    return int((sv > 1e-4 * sv[0]).sum())

# %% [markdown]
# **1. The rank of $W_T - W_0$.** $\lambda s (P_T - P_K)$ goes through $2r$ columns: with $r = 2$, $K = 3$ the rank is
# $2r = 4$ (random data makes it exactly 4).

# %%
layer, W0 = train_toy(r=2, lora_alpha=4, start_steps=3)
print("rank(W_T − W_0), r = 2, K = 3:", rank(layer.base_weight().detach() - W0))
assert rank(layer.base_weight().detach() - W0) == 4

# %% [markdown]
# **2. Start at $K = 0$.** Then $P_K = B_0 A_0 = 0$ ($B$ starts at zero), so $W_T - W_0 = \lambda s\,B_T A_T$: rank $r = 2$.

# %%
layer, W0 = train_toy(r=2, lora_alpha=4, start_steps=0)
dW = layer.base_weight().detach() - W0
print("rank(W_T − W_0), r = 2, K = 0:", rank(dW))
assert rank(dW) == 2
torch.testing.assert_close(dW, 0.5 * layer.scaling * (layer.lora_B @ layer.lora_A).detach(), atol=1e-6, rtol=0)

# %% [markdown]
# **3. $\lambda = 0$.** $W$ never moves: plain LoRA without dropout. The export is still a rank-$2r$ LoRA, with
# $r' = 2r = 4$ and $\alpha' = 2\alpha = 8$ (same scale $s = 2$), whose $-\lambda B_K$ half is zero.

# %%
layer, W0 = train_toy(r=2, lora_alpha=4, start_steps=3, update_ratio=0.0)
assert torch.equal(layer.base_weight(), W0)
toy = nn.Sequential()
toy.add_module("query", layer)
factors, lora_config = export_delta_lora(toy)
print(f"exported: r = {lora_config.r}, α = {lora_config.lora_alpha}, s = {lora_config.scaling}")
assert (lora_config.r, lora_config.lora_alpha, lora_config.scaling) == (4, 8, layer.scaling)
assert torch.equal(factors["query"]["lora_B"][:, 2:], torch.zeros(64, 2))
