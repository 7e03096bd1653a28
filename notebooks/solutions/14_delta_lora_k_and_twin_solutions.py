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
# # 14 · Solutions to the exercises
#
# Solutions of `notebooks/14_delta_lora_k_and_twin.ipynb`'s exercises, each at the tiny scale (seconds on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("14_delta_lora_k_and_twin_solutions")

# %%
import numpy as np
import torch

from dcft_edu.delta_lora import delta_lora_layers
from dcft_edu.experiments.lab import tiny_runs
from dcft_edu.figures.delta_lora import effective_change_gap, pretrained_weights, twin_adam_step_ratio
from dcft_edu.inject import adapter_layers

# %% [markdown]
# **1. $W_T - W_0$'s rank.** The frozen weight moves by $\lambda s (P_t - P_{t-1})$ per step, and these telescope:
# $W_T - W_0 = \lambda s\,(B_T A_T - B_K A_K) = \lambda s\,[B_T \mid -B_K]\,[A_T ; A_K]$, a product through
# $2r$ columns: **rank ≤ 2r = 16**, and generically exactly 16 (while $s\,B_T A_T$ has rank ≤ r = 8). That is why
# notebook 06 exports Delta-LoRA as a rank-2r LoRA.

# %%
res, models = tiny_runs([{"task": ["rte"], "method": ["delta_lora"], "update_ratio": [2.0], "start_steps": [2],
                          "seed": [0]}])
model = models[res["key"].iloc[0]]
W0 = pretrained_weights([n for n, _ in delta_lora_layers(model)], task="rte")
r = int(res["r"].iloc[0])
ranks = []
for name, layer in delta_lora_layers(model):
    sv = torch.linalg.svdvals((layer.base_weight() - W0[name]).double())  # W_T − W_0 : (out, in)
    ranks.append(int((sv > 1e-4 * sv[0]).sum()))  # far above float32 rounding of W (~1e-8 relative)
print(f"r = {r}; rank of W_T − W_0 per layer: {sorted(set(ranks))}")
assert max(ranks) <= 2 * r and min(ranks) > r

# %% [markdown]
# **2. K beyond the end.** $W$ never moves, so Delta-LoRA is LoRA: the same losses, the same weights.

# %%
res, models = tiny_runs([{"task": ["rte"], "method": ["delta_lora"], "update_ratio": [2.0], "start_steps": [100],
                          "seed": [0]}, {"task": ["rte"], "method": ["lora"], "seed": [0]}])
by = res.set_index("method")
assert by.loc["delta_lora", "optimizer_steps"] < 100
losses = [[e["loss"] for e in by.loc[m, "epochs"]] for m in ("delta_lora", "lora")]
print("dev loss per epoch, Delta-LoRA (K = 100) vs LoRA:", losses)
np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)

# %% [markdown]
# **3. The twin at K = 0.** The gradient scale $(1+\lambda)$ is constant over the whole run, so Adam's step ratio is
# exactly 1 for any λ, and the two runs learn the same $\Delta W$ up to Adam's ε and rounding.

# %%
assert np.allclose(twin_adam_step_ratio(5.0, 0, np.arange(1, 200)), 1.0)
res, models = tiny_runs([{"task": ["rte"], "method": ["delta_lora"], "update_ratio": [5.0], "start_steps": [0],
                          "seed": [0]},
                         {"task": ["rte"], "method": ["lora"], "lora_scale_jump": [True], "update_ratio": [5.0],
                          "start_steps": [0], "seed": [0]}])
by = res.set_index("method")
delta, twin = models[by.loc["delta_lora", "key"]], models[by.loc["lora", "key"]]
W0 = pretrained_weights([n for n, _ in adapter_layers(delta)], task="rte")
gap = effective_change_gap(twin, delta, W0)
print(f"K = 0, λ = 5: ‖ΔW_twin − ΔW_Delta‖ / ‖ΔW_Delta‖ = {gap:.2%}")
assert gap < 0.02
