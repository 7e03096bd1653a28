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
# # Solutions · 01 LoRA and the rank-one floor
#
# The exercises of `01_lora_and_the_rank_one_floor`; each cell asserts the prediction (seconds on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("01_lora_and_the_rank_one_floor_solutions")

# %%
import torch

from dcft_edu import DCFTConfig, LoRAConfig, count_adapter_parameters, count_for_config, inject_adapters
from dcft_edu.experiments.models import deberta_v3_base_config, load_model

deberta = deberta_v3_base_config()

# %% [markdown]
# **1. Fewer matrices.** Only `query` and `value` (384 → 384) in each of MiniLM's 6 layers, $r = 8$:
# $8 \cdot 6 \cdot 2 \cdot (384 + 384) = 73{,}728$, 3× fewer than all six matrices (221,184).

# %%
model, _ = load_model("rte")
inject_adapters(model, LoRAConfig(r=8, target_modules=("query", "value")))
n = count_adapter_parameters(model)
print(f"LoRA r=8 on query, value: {n:,}")
assert n == 8 * 6 * 2 * (384 + 384) == 73_728

# %% [markdown]
# **2. DCFT k = 4.** $A$ and $B$ are $1/4$ of LoRA $r = 1$: $165{,}888 / 4 = 41{,}472$, plus $72 \cdot 4^2 = 1{,}152$
# for the kernels: 42,624, i.e. 3.9× fewer than LoRA $r = 1$.

# %%
n_k4 = count_for_config(deberta, DCFTConfig(kernel_size=4))
print(f"DCFT k=4: {n_k4:,}; LoRA r=1 / DCFT k=4 = {165_888 / n_k4:.2f}")
assert n_k4 == 165_888 // 4 + 72 * 4**2 == 42_624

# %% [markdown]
# **3. The smallest DCFT.** Summed over the 72 matrices the count is $165{,}888/k + 72k^2$: the first term falls,
# the kernels grow. The minimum of the smooth curve is at $k^3 = 165{,}888/144 = 1{,}152$, $k \approx 10.5$; of the
# kernels that divide 768 and 3072 the nearest, $k = 12$ (24,192), wins; $k = 24$ costs more than $k = 4$.

# %%
counts = {k: count_for_config(deberta, DCFTConfig(kernel_size=k)) for k in (2, 4, 6, 8, 12, 16, 24)}
print({k: f"{n:,}" for k, n in counts.items()})
assert min(counts, key=counts.get) == 12
assert all(n == 165_888 // k + 72 * k * k for k, n in counts.items())
assert counts[24] > counts[4]
