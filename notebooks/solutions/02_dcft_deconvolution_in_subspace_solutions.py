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
# # Solutions · 02 DCFT: deconvolution in subspace
#
# The exercises of `02_dcft_deconvolution_in_subspace`; each cell asserts the prediction (seconds on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("02_dcft_deconvolution_in_subspace_solutions")

# %%
import torch
from torch import nn

from dcft_edu import DCFTConfig, DCFTLinear
from dcft_edu.dcft import deconv_reference, dcft_num_params

# %% [markdown]
# **1. The Kronecker forward, yourself.** With $s = k$, $\Delta W = \frac{\alpha}{r}(BA)\otimes C$, so
# $\Delta W x$ can be built two ways: from the full matrix (`torch.kron`), or matrix-free by cutting $x$ into
# chunks of $k$, $Z[j, q] = x[jk + q]$, and computing $\frac{\alpha}{r} B (A Z) C^\top$. Both must equal the
# library's `adapter_forward` to float rounding.

# %%
torch.manual_seed(0)
layer = DCFTLinear(nn.Linear(768, 3072), DCFTConfig(kernel_size=8))
A, B, C, s = layer.lora_A.detach(), layer.lora_B.detach(), layer.lora_C.detach(), layer.scaling
x = torch.randn(4, 768)
k = C.shape[0]
dW = s * torch.kron(B @ A, C)  # (384, 1) @ (1, 96) -> (384, 96), ⊗ (8, 8) -> (3072, 768)
y_kron = x @ dW.T  # (4, 768) @ (768, 3072) -> (4, 3072)
Z = x.reshape(4, -1, k)  # (4, 768) -> (4, h_in = 96, k = 8)
y_free = (s * B @ (A @ Z) @ C.T).reshape(4, -1)  # (384, 1) @ ((1, 96) @ (4, 96, 8)) @ (8, 8) -> (4, 384, 8) -> (4, 3072)
with torch.no_grad():
    y_lib = layer.adapter_forward(x)
for name, y in (("kron", y_kron), ("matrix-free", y_free)):
    rel = ((y - y_lib).norm() / y_lib.norm()).item()
    print(f"{name} vs library: relative difference {rel:.1e}")
    assert rel < 1e-5

# %% [markdown]
# **2. A rank-1 kernel.** $\operatorname{rank}(M\otimes C) = \operatorname{rank}(M)\operatorname{rank}(C)$: with
# $C = uv^\top$ and $r = 2$ the update has rank $2 \cdot 1 = 2$, not $r k = 16$.

# %%
torch.manual_seed(0)
A, B = torch.randn(2, 12, dtype=torch.float64), torch.randn(12, 2, dtype=torch.float64)
u, v = torch.randn(8, 1, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
rank_full = int(torch.linalg.matrix_rank(deconv_reference(B @ A, torch.randn(8, 8, dtype=torch.float64), 8, (96, 96))))
rank_one = int(torch.linalg.matrix_rank(deconv_reference(B @ A, u @ v.T, 8, (96, 96))))
print(f"rank(ΔW): random kernel {rank_full}, rank-1 kernel {rank_one}")
assert (rank_full, rank_one) == (16, 2)

# %% [markdown]
# **3. Count before you build.** A 1024 → 4096 layer with $k = 8$, $s = 4$:
# $h(1024) = \lceil 1016/4 \rceil + 1 = 255$, $h(4096) = \lceil 4088/4 \rceil + 1 = 1023$, so
# $255 + 1023 + 64 = 1{,}342$ parameters (vs. $128 + 512 + 64 = 704$ with $s = 8$).

# %%
layer = DCFTLinear(nn.Linear(1024, 4096), DCFTConfig(kernel_size=8, stride=4))
n = sum(p.numel() for p in layer.adapter_parameters())
print(f"k = 8, s = 4: lora_A {tuple(layer.lora_A.shape)}, lora_B {tuple(layer.lora_B.shape)}, {n:,} parameters")
assert n == dcft_num_params(1024, 4096, 8, 4) == 255 + 1023 + 64
