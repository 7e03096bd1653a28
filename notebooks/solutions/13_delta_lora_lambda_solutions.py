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
# # 13 · Solutions to the exercises
#
# Solutions of `notebooks/13_delta_lora_lambda.ipynb`'s exercises, each at the tiny scale (seconds on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("13_delta_lora_lambda_solutions")

# %%
import numpy as np
import torch

from dcft_edu.delta_lora import delta_lora_layers
from dcft_edu.experiments.lab import tiny_runs
from dcft_edu.figures.delta_lora import FULL_SPLIT_LABELS, collapse_check, effective_weight, pretrained_weights, sweep_results
from dcft_edu.inject import adapter_layers

# %% [markdown]
# **1. λ = 2 on STS-B.** Past K the effective weight is $W_0 + s((1+\lambda)P_t - \lambda P_K)$, so its change since
# K is $W_\text{eff}(t) - W_\text{eff}(K) = (1+\lambda)\,s\,(P_t - P_K)$: **3×** what the LoRA branch alone moves.
# λ multiplies every step of the adapter after K; on top of STS-B's learning rate (2.2e-3, the largest of the four
# tasks, CoLA's is 8e-4) that overshoots, and the model falls back to the constant that minimises the loss: the
# training mean. The committed λ = 2 STS-B runs show it (every seed collapsed, Pearson r ≈ 0).

# %%
res, models = tiny_runs([{"task": ["stsb"], "method": ["delta_lora"], "update_ratio": [2.0], "start_steps": [2],
                          "seed": [0]}])
model = models[res["key"].iloc[0]]
W0 = pretrained_weights([n for n, _ in delta_lora_layers(model)], task="stsb")
ratios = []
for name, layer in delta_lora_layers(model):
    s = layer.scaling
    # P_t − P_K = B_t A_t − B_K A_K :  (out, r) @ (r, in) -> (out, in)
    dp = (layer.lora_B @ layer.lora_A - layer.lora_B_start @ layer.lora_A_start).double()
    w_k = W0[name].double() + s * (layer.lora_B_start @ layer.lora_A_start).double()  # W_eff at step K
    ratios.append(((effective_weight(layer).double() - w_k).norm() / (s * dp.norm())).item())
print(f"‖W_eff(t) − W_eff(K)‖ / ‖s (P_t − P_K)‖ over {len(ratios)} layers: {min(ratios):.4f} … {max(ratios):.4f}")
assert np.allclose(ratios, 3.0, rtol=1e-3)

stsb = sweep_results("delta_lambda").query("task == 'stsb' and update_ratio == 2.0")
col = collapse_check(stsb)
print(col[["seed", "best ×100", "train / constant", "dev / train prior", "collapsed"]].round(3).to_string(index=False))
assert col["collapsed"].all() and (col["best ×100"] < 10).all()
assert sweep_results("delta_lambda").groupby("task")["lr"].first().idxmax() == "stsb"

# %% [markdown]
# **2. The constant a collapsed STS-B model predicts** is the training mean, and its dev MSE is
# $\mathrm{Var}_\text{dev} + (\bar y_\text{train} - \bar y_\text{dev})^2$:

# %%
tr, dev = FULL_SPLIT_LABELS[("stsb", "train")], FULL_SPLIT_LABELS[("stsb", "dev")]
predicted = dev["var"] + (tr["mean"] - dev["mean"]) ** 2
last_dev_loss = np.array([r["epochs"][-1]["loss"] for _, r in stsb.iterrows()])
print(f"predicted {predicted:.3f}; the runs' last dev loss {np.round(last_dev_loss, 3)}")
assert np.allclose(last_dev_loss, predicted, rtol=0.05)

# %% [markdown]
# **3. λ = 0 with another α.** They no longer agree: α sets the scale $s = \alpha/r$ of the LoRA branch, so the
# two models compute different functions from the first step on (λ = 0 still never moves $W$).

# %%
res, models = tiny_runs([{"task": ["rte"], "method": ["delta_lora"], "update_ratio": [0.0], "lora_alpha": [32.0],
                          "start_steps": [2], "seed": [0]}, {"task": ["rte"], "method": ["lora"], "seed": [0]}])
by = res.set_index("method")
delta, lora = models[by.loc["delta_lora", "key"]], dict(adapter_layers(models[by.loc["lora", "key"]]))
gap = max((effective_weight(l) - effective_weight(lora[n])).abs().max().item() for n, l in adapter_layers(delta))
print(f"α: {by.loc['delta_lora', 'lora_alpha']:g} vs {by.loc['lora', 'lora_alpha']:g}; largest weight gap {gap:.1e}")
W0 = pretrained_weights([n for n, _ in delta_lora_layers(delta)], task="rte")
assert gap > 1e-5 and all(torch.equal(layer.base_weight(), W0[n]) for n, layer in delta_lora_layers(delta))
