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
# # 02 · DCFT: deconvolution in subspace
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/02_dcft_deconvolution_in_subspace.ipynb)
#
# **Paper.** Zhang et al., *Parameter-Efficient Fine-Tuning of Large Language Models via Deconvolution in
# Subspace*, COLING 2025 — §3 (Eq. 5–10), Table 1 (parameter counts), Tables 4–5 (kernel and stride).
#
# DCFT learns a small matrix $M = BA$ ("the subspace") and a $k\times k$ kernel $C$, and **deconvolves**
# (`conv_transpose2d`) $M$ up to the size of the frozen weight:
#
# $$ \Delta W = \frac{\alpha}{r}\;\operatorname{crop}\big(\operatorname{Deconv}(BA;\ C,\ \text{stride } s)\big),
#    \qquad A\in\mathbb{R}^{r\times h_\text{in}},\ B\in\mathbb{R}^{h_\text{out}\times r},\ C\in\mathbb{R}^{k\times k}. $$

# %% [markdown]
# **Goals**
# - Compute a transposed convolution by hand (the scatter rule) and match `conv_transpose2d`.
# - Prove that with stride = kernel the deconvolution is a Kronecker product, so $\operatorname{rank}(\Delta W) \le r k$.
# - Reproduce the paper's parameter counts (Tables 1 and 5) exactly, and find the one that does not reproduce.
# - Check the matrix-free forward (`impl="fast"`) against the official one (`impl="conv"`) and count their cost.
#
# **Prerequisites.** Notebook 01 (LoRA, parameter counts); the Kronecker product and matrix rank.
#
# **Time.** About 1 minute on a laptop CPU or on Colab; no GPU needed.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("02_dcft_deconvolution_in_subspace")

# %%
import torch
from dcft_edu.experiments.runinfo import notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import time

import pandas as pd
import torch.nn.functional as F
from torch import nn

from dcft_edu import DCFTConfig, DCFTLinear, count_for_config
from dcft_edu.dcft import dcft_num_params, deconv_reference, subspace_size
from dcft_edu.experiments.models import deberta_v3_base_config, roberta_large_config

# %% [markdown]
# ## 1. Transposed convolution, step by step
#
# `conv_transpose2d` with stride $s$ takes every entry of the input $M$ and **scatters** a scaled copy of the
# kernel into the output, $s$ cells further for each step in $M$:
#
# $$ \text{out}[i s + p,\ j s + q] \mathrel{+}= M[i, j]\; C[p, q], \qquad 0 \le p, q < k. $$
#
# A $2\times 3$ matrix and a $2\times 2$ kernel with stride 2 give a $4\times 6$ output, one $2\times 2$ block per
# entry of $M$:

# %%
M = torch.tensor([[1., 2., 3.],
                  [4., 5., 6.]])
C = torch.tensor([[1., 10.],
                  [100., 1000.]])


def scatter_by_hand(M, C, s):
    """The scatter rule, written as loops: out[i·s + p, j·s + q] += M[i, j] · C[p, q]."""
    k = C.shape[0]
    out = torch.zeros((M.shape[0] - 1) * s + k, (M.shape[1] - 1) * s + k, dtype=M.dtype)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            out[i * s: i * s + k, j * s: j * s + k] += M[i, j] * C
    return out


by_hand = scatter_by_hand(M, C, s=2)
by_torch = F.conv_transpose2d(M[None, None], C[None, None], stride=2)[0, 0]
print(by_hand.long())  # integers, for reading; conv_transpose2d itself works in floating point
assert torch.equal(by_hand, by_torch)

# %% [markdown]
# Each $2\times2$ block is $M[i,j]\cdot C$: the block in rows 2–3, columns 4–5 is $6 \cdot C$. With a stride
# **smaller** than the kernel the copies overlap and add up — stride 1 here, so the middle cells collect
# up to four contributions (notebook 03 is about these overlaps):

# %%
print(scatter_by_hand(M, C, s=1).long())
assert torch.equal(scatter_by_hand(M, C, s=1), F.conv_transpose2d(M[None, None], C[None, None], stride=1)[0, 0])

# %% [markdown]
# The library's `deconv_reference(M, C, stride, out_shape)` is exactly this `conv_transpose2d`, followed by a
# crop at the end (bottom rows, right columns) when the output overshoots the layer's shape:

# %%
assert torch.equal(deconv_reference(M, C, 2, (4, 6)), by_hand)
assert torch.equal(deconv_reference(M, C, 1, (3, 4)), scatter_by_hand(M, C, 1)[:3, :4])

# %% [markdown]
# ## 2. Stride = kernel: a Kronecker product
#
# With $s = k$ the blocks do not overlap and each one is $M[i,j]\,C$: that is the definition of the
# Kronecker product,
#
# $$ \operatorname{Deconv}(M;\ C,\ s{=}k) = M \otimes C, \qquad
#    \Delta W = \tfrac{\alpha}{r}\,(BA)\otimes C . $$
#
# Checked in float64 on random matrices of several sizes:

# %%
torch.manual_seed(0)
for h_out, h_in, k in [(2, 3, 2), (5, 4, 3), (12, 48, 8)]:
    M = torch.randn(h_out, h_in, dtype=torch.float64)
    C = torch.randn(k, k, dtype=torch.float64)
    D = deconv_reference(M, C, k, (h_out * k, h_in * k))
    torch.testing.assert_close(D, torch.kron(M, C), rtol=0, atol=1e-12)
    print(f"M {h_out}×{h_in}, C {k}×{k}: Deconv == kron, ΔW shape {tuple(D.shape)}")

# %% [markdown]
# ## 3. Rank: at most $r\cdot k$
#
# $\operatorname{rank}(M\otimes C) = \operatorname{rank}(M)\cdot\operatorname{rank}(C) \le r\cdot k$. For $s < k$
# the library writes $\Delta W = \sum_r U_r\,C\,V_r^\top$ with $U_r, V_r$ having $k$ columns (the factors
# upsampled and shifted), so the bound $r\cdot k$ still holds. A $3072\times 768$ DCFT update with the paper's
# $r = 1$, $k = 8$ has rank **8**, 2.4 million entries from 544 parameters:

# %%
torch.manual_seed(0)
rows = []
for d_out, d_in, r, k, s in [(3072, 768, 1, 8, 8), (384, 384, 2, 8, 8), (384, 384, 1, 4, 4),
                             (384, 384, 1, 8, 4), (384, 384, 1, 8, 6), (384, 384, 3, 8, 2)]:
    h_out, h_in = subspace_size(d_out, k, s), subspace_size(d_in, k, s)
    A = torch.randn(r, h_in, dtype=torch.float64)
    B = torch.randn(h_out, r, dtype=torch.float64)
    C = torch.randn(k, k, dtype=torch.float64)
    dW = deconv_reference(B @ A, C, s, (d_out, d_in))
    rank = int(torch.linalg.matrix_rank(dW))
    rows.append({"ΔW shape": f"{d_out}×{d_in}", "r": r, "k": k, "s": s, "subspace": f"{h_out}×{h_in}",
                 "rank(ΔW)": rank, "bound r·k": r * k})
    assert rank <= r * k
pd.DataFrame(rows)

# %% [markdown]
# ## 4. One DCFT layer
#
# `DCFTLinear` wraps a frozen `nn.Linear`. Per matrix it trains $r(h_\text{in} + h_\text{out}) + k^2$
# parameters, with the subspace size along a dimension $d$
#
# $$ h(d) = \Big\lceil \frac{d - k}{s} \Big\rceil + 1 \quad (= d/k \text{ when } s = k). $$
#
# For a 768 → 3072 layer with $k = s = 8$: $A$ is $1\times 96$, $B$ is $384\times 1$, $C$ is $8\times 8$ —
# $96 + 384 + 64 = 544$ parameters instead of $768\cdot 3072 = 2{,}359{,}296$.

# %%
torch.manual_seed(0)
layer = DCFTLinear(nn.Linear(768, 3072), DCFTConfig(kernel_size=8))
print(layer)
for name in layer.adapter_param_names:
    print(f"  {name}: {tuple(getattr(layer, name).shape)}")
n_layer = sum(p.numel() for p in layer.adapter_parameters())
assert n_layer == dcft_num_params(768, 3072, 8, 8) == 96 + 384 + 64

# %% [markdown]
# As in the official code, all three factors start random ($\mathcal{N}(0, 0.02^2)$), so $\Delta W$ is tiny but
# **not zero** at init; `init="zero"` (B = 0) makes DCFT start exactly at the pretrained model, like LoRA:

# %%
print(f"paper init: max |ΔW| = {layer.get_delta_weight().abs().max().item():.2e}")
zero = DCFTLinear(nn.Linear(768, 3072), DCFTConfig(kernel_size=8, init="zero"))
assert layer.get_delta_weight().abs().max() > 0
assert torch.equal(zero.get_delta_weight(), torch.zeros(3072, 768))

# %% [markdown]
# ## 5. The paper's parameter counts, exactly
#
# Summed over DeBERTa-v3-base's 72 adapted matrices (12 layers × query, key, value, attention output,
# FFN in, FFN out). The paper writes M $= 2^{20}$ and K $= 1024$: $25{,}344 / 2^{20} = 0.0242 \to$ "0.024M".
# Table 1 (kernel $k$, $s = k$) and Table 5 (stride $s$ with $k = 8$), from `docs/method_notes.md` §2:

# %%
PAPER = [  # (kernel k, stride s, exact count, the paper's printed number)
    (2, 2, 83_232, "0.079M"),
    (4, 4, 42_624, "0.041M"),
    (6, 6, 30_240, "0.029M"),
    (8, 8, 25_344, "0.024M"),
    (12, 12, 24_192, "0.023M"),
    (8, 1, 169_488, "165.5K"),
    (8, 2, 87_120, "85K"),
    (8, 4, 45_936, "44.9K"),
]


def paper_format(n, printed):
    """Write n the way the paper printed its number: M = 2**20, K = 1024, with as many decimals as the paper."""
    unit = printed[-1]
    decimals = len(printed[:-1].partition(".")[2])
    return f"{n / {'M': 2**20, 'K': 1024}[unit]:.{decimals}f}{unit}"


deberta = deberta_v3_base_config()
rows = []
for k, s, exact, printed in PAPER:
    counted = count_for_config(deberta, DCFTConfig(kernel_size=k, stride=s))
    by_formula = 12 * (4 * dcft_num_params(768, 768, k, s) + dcft_num_params(768, 3072, k, s)
                       + dcft_num_params(3072, 768, k, s))
    rows.append({"k": k, "s": s, "counted (meta model)": counted, "formula": by_formula,
                 "exact (method notes §2)": exact, "ours, paper style": paper_format(counted, printed), "paper": printed})
    assert counted == by_formula == exact
    assert paper_format(counted, printed) == printed, (k, s)
pd.DataFrame(rows)

# %% [markdown]
# One printed number does **not** reproduce: Table 5's $s = 8$ row says "24.6k", but $k = s = 8$ is the same
# configuration as Table 1's "0.024M", 25,344 parameters, which is 24.75K in the paper's units;
# a misprint is the simplest explanation (a hypothesis: the paper does not say how it counted that row).

# %%
table5_s8 = count_for_config(deberta, DCFTConfig(kernel_size=8, stride=8))
print(f"Table 5, s = 8: ours {table5_s8:,} = {table5_s8 / 1024:.2f}K; paper prints 24.6k")
assert table5_s8 == 25_344 and f"{table5_s8 / 1024:.1f}K" != "24.6K"

# %% [markdown]
# The same code gives the paper's RoBERTa-large rows (Table 1: DCFT 0.06M with $k = 8$, 0.21M with $k = 2$,
# 24 layers × 6 matrices of 1024 / 4096):

# %%
roberta = roberta_large_config()
for k, printed in [(8, "0.06M"), (2, "0.21M")]:
    n = count_for_config(roberta, DCFTConfig(kernel_size=k))
    print(f"RoBERTa-large, k = s = {k}: {n:,} = {paper_format(n, printed)} (paper: {printed})")
    assert paper_format(n, printed) == printed

# %% [markdown]
# ## 6. Fast (matrix-free) vs. conv (official) forward
#
# The official code builds the whole $d_\text{in}\times d_\text{out}$ matrix with `conv_transpose2d` on every
# forward, then multiplies: $O(d_\text{in} d_\text{out})$ work per token, a second dense layer's worth.
# For $s = k$ the Kronecker form lets us skip $\Delta W$ altogether: reshape $x$ into $h_\text{in}$ chunks of
# length $k$ and contract with $A$, then $C$, then $B$,
#
# $$ y[i k + p] = \frac{\alpha}{r}\sum_{j,q} M[i,j]\,C[p,q]\,x[jk + q]
#    = \frac{\alpha}{r}\,\big(B\,(A Z)\,C^\top\big)[i, p], \qquad Z[j, q] = x[jk+q], $$
#
# which costs $O(r\,d_\text{in} + r k^2 + r\,d_\text{out})$ multiply-adds per token. `impl="fast"` and
# `impl="conv"` must agree (for $s < k$ too, where the library uses the $U C V^\top$ form):

# %%
torch.manual_seed(0)
x = torch.randn(4, 32, 768)
for s in (8, 4, 6):
    lay = DCFTLinear(nn.Linear(768, 3072), DCFTConfig(kernel_size=8, stride=s))
    with torch.no_grad():
        lay.impl = "fast"
        y_fast = lay.adapter_forward(x)  # ΔW x only (the frozen W x is the same code either way)
        lay.impl = "conv"
        y_conv = lay.adapter_forward(x)
    rel = ((y_fast - y_conv).norm() / y_conv.norm()).item()
    print(f"stride {s}: ‖fast − conv‖ / ‖conv‖ = {rel:.1e}")
    assert rel < 1e-5

# %% [markdown]
# How much cheaper? Multiply-adds per token for the adapter branch of one 768 → 3072 layer, then a small
# wall-clock timing on this machine (median of a few runs; the numbers depend on the hardware and on
# what else is running, so nothing is asserted about them):

# %%
d_in, d_out, r, k = 768, 3072, 1, 8
macs_conv = d_in * d_out  # x @ ΔWᵀ, plus building ΔW (another d_in·d_out) on every call
macs_fast = r * d_in + r * k * k + r * d_out
print(f"multiply-adds per token: conv ≥ {macs_conv:,}   fast = {macs_fast:,}   (ratio ≥ {macs_conv / macs_fast:,.0f}×)")
assert macs_conv / macs_fast > 500


def median_ms(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * sorted(times)[len(times) // 2]


x = torch.randn(4, 128, 768)  # 512 tokens
layer.impl = "fast"
with torch.no_grad():
    t_fast = median_ms(lambda: layer.adapter_forward(x))
    layer.impl = "conv"
    t_conv = median_ms(lambda: layer.adapter_forward(x))
    t_base = median_ms(lambda: layer.base_layer(x))
layer.impl = "fast"
print(f"adapter branch, 512 tokens: fast {t_fast:.1f} ms | conv {t_conv:.1f} ms | "
      f"(the frozen 768→3072 layer itself: {t_base:.1f} ms)")

# %% [markdown]
# On a CPU the measured gap is smaller than the multiply-add ratio: the fast path is many small
# matrix products, which are memory- and overhead-bound. The point stands: the official forward
# costs about as much as the frozen layer itself, the matrix-free one a fraction of it.
#
# ## What you should take away
#
# - `conv_transpose2d` scatters $M[i,j]\cdot C$ into the output at $(is, js)$: with $s = k$ the copies tile
#   the output without overlap and $\Delta W = \frac{\alpha}{r}(BA)\otimes C$ (checked exactly).
# - Hence $\operatorname{rank}(\Delta W) \le r\cdot k$: with the paper's $r = 1$, $k = 8$, a rank-8 update.
# - Per matrix DCFT trains $r(h_\text{in} + h_\text{out}) + k^2$ parameters; summed over DeBERTa-v3-base that
#   reproduces the counts of the paper's Tables 1 and 5 exactly (M $= 2^{20}$, K $= 1024$), except Table 5's
#   "24.6k" for $s = 8$, which is Table 1's 0.024M configuration (25,344 = 24.75K).
# - The update never has to be built: the matrix-free forward gives the same numbers as the official
#   deconvolution at a small fraction of the multiply-adds.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/02_dcft_deconvolution_in_subspace_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **The Kronecker forward, yourself.** For a 768 → 3072 `DCFTLinear` ($k = s = 8$) compute $\Delta W x$ twice:
#    from $\frac{\alpha}{r}(BA)\otimes C$ with `torch.kron`, and matrix-free from section 6's formula (reshape $x$).
#    Predict how close both come to the library's `adapter_forward`, then check.
# 2. **A rank-1 kernel.** With $r = 2$, $k = s = 8$ and a kernel $C = uv^\top$, predict $\operatorname{rank}(\Delta W)$.
# 3. **Count before you build.** Predict the shapes of `lora_A`, `lora_B` and the parameter count of a 1024 → 4096
#    layer with $k = 8$, $s = 4$; check with `DCFTLinear`.

# %%
# Exercise 1 · The Kronecker forward, yourself: a starter. Fill in the TODOs, run, then compare with the solution.
layer = None  # TODO: DCFTLinear(torch.nn.Linear(768, 3072), DCFTConfig(kernel_size=8))
predicted_max_error = None  # TODO: how close will torch.kron and the reshape form come to layer.adapter_forward(x)?
# TODO: build ΔW = scaling · kron(B A, C) with torch.kron, and the matrix-free form of section 6; compare both

# %%
# Exercise 2 · A rank-1 kernel: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_rank = None  # TODO: rank(ΔW) for r = 2, k = s = 8 and C = u vᵀ
# TODO: check: set layer.lora_C to an outer product, then torch.linalg.matrix_rank(layer.get_delta_weight())

# %%
# Exercise 3 · Count before you build: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_shapes = None  # TODO: (lora_A.shape, lora_B.shape) of a 1024 → 4096 layer, k = 8, s = 4
predicted_params = None  # TODO: its trainable parameters (dcft_num_params's formula)
# TODO: check with DCFTLinear(torch.nn.Linear(1024, 4096), DCFTConfig(kernel_size=8, stride=4))
