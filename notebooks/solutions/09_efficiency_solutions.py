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
# # Solutions · 09 efficiency
#
# The exercises of `09_efficiency`; each cell builds single layers (no model, no data) and asserts the prediction.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("09_efficiency_solutions")

# %%
from torch import nn

from dcft_edu.config import DCFTConfig, DeltaLoRAConfig, LoRAConfig
from dcft_edu.dcft import DCFTLinear
from dcft_edu.delta_lora import DeltaLoRALinear
from dcft_edu.lora import LoRALinear

h_in, h_out = 768, 3072

# %% [markdown]
# **1. State per matrix.** LoRA r = 8: $r(h_\text{in} + h_\text{out}) = 30{,}720$; DCFT k = 8:
# $h_\text{in}/8 + h_\text{out}/8 + 8^2 = 544$, 56× fewer. Weights, gradient and AdamW's two moments are 4 floats
# of 4 bytes each: 480 KiB vs 8.5 KiB per matrix — small next to the 9 MiB of $W$ itself, so on a small model the
# frozen weights and the activations, not the adapters, set the memory.

# %%
def trained(layer: nn.Module) -> int:
    return sum(p.numel() for p in layer.adapter_parameters())


lora = LoRALinear(nn.Linear(h_in, h_out), LoRAConfig(r=8))
dcft = DCFTLinear(nn.Linear(h_in, h_out), DCFTConfig(kernel_size=8))
print(f"LoRA r=8 {trained(lora):,} ({16 * trained(lora) / 1024:.1f} KiB of state), "
      f"DCFT k=8 {trained(dcft):,} ({16 * trained(dcft) / 1024:.1f} KiB)")
assert trained(lora) == 8 * (h_in + h_out) and trained(dcft) == h_in // 8 + h_out // 8 + 8 * 8

# %% [markdown]
# **2. Delta-LoRA's extra memory.** $A$ and $B$ after the previous step ($A_t$, $B_t$) are one copy of the adapter,
# $r(h_\text{in} + h_\text{out})$ floats. Counting the buffers shows a second copy: $A_K$, $B_K$, recorded at the
# start step $K$ (exporting the adapter and recovering the original $W$ need them), plus the step counter.
# Both copies together are 240 KiB per matrix: "comparable memory", as the paper says.

# %%
delta = DeltaLoRALinear(nn.Linear(h_in, h_out), DeltaLoRAConfig(r=8))
extra = sum(b.numel() for b in delta.buffers()) - sum(b.numel() for b in lora.buffers())
print(f"extra buffer entries of Delta-LoRA over LoRA: {extra:,} = 2 × {trained(lora):,} + 1")
assert extra == 2 * trained(lora) + 1
