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
# # 01 · LoRA and the rank-one floor
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/01_lora_and_the_rank_one_floor.ipynb)
#
# **Papers.** LoRA: Hu et al., *LoRA: Low-Rank Adaptation of Large Language Models*, ICLR 2022.
# DCFT: Zhang et al., *Parameter-Efficient Fine-Tuning of Large Language Models via Deconvolution in
# Subspace*, COLING 2025 (§1 and §3: "the bottleneck imposed by rank one decomposition").
#
# What this notebook shows, with the library's own code (`dcft_edu.lora`, `dcft_edu.inject`):
#
# 1. LoRA on a real model (the packaged MiniLM): inject, count, check that it is the identity at init.
# 2. LoRA's parameter count on the papers' real models (DeBERTa-v3-base, RoBERTa-large), built on
#    PyTorch's *meta* device: real shapes, no weights, no download.
# 3. Why rank 1 is LoRA's floor, and what DCFT's "8× fewer parameters" means exactly.

# %% [markdown]
# **Goals**
# - Put LoRA on a real model and check that it is the identity at init and that merging changes nothing.
# - Count LoRA's parameters, $r(d_\text{in} + d_\text{out})$ per matrix, on the papers' models without downloading them.
# - See why $r = 1$ is LoRA's floor, and what DCFT's "8× fewer parameters" means exactly.
#
# **Prerequisites.** PyTorch (`nn.Linear`, autograd) and the transformer block's linear layers; no earlier notebook.
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
bootstrap("01_lora_and_the_rank_one_floor")

# %%
import torch
from dcft_edu.experiments.runinfo import notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import matplotlib.pyplot as plt
import pandas as pd

from dcft_edu import LoRAConfig, DCFTConfig, adapter_layers, count_adapter_parameters, count_for_config, inject_adapters
from dcft_edu.experiments.models import deberta_v3_base_config, load_model, roberta_large_config
from dcft_edu.figures.plotting import set_theme

set_theme()

# %% [markdown]
# ## 1. LoRA in one line
#
# A frozen linear layer $W \in \mathbb{R}^{d_\text{out}\times d_\text{in}}$ gets a trainable low-rank update:
#
# $$ h = W x + \frac{\alpha}{r}\, B A x, \qquad A \in \mathbb{R}^{r\times d_\text{in}},\quad
#    B \in \mathbb{R}^{d_\text{out}\times r}. $$
#
# $A$ starts random (Kaiming-uniform), $B$ starts at **zero**, so $\Delta W = \frac{\alpha}{r} BA = 0$ and the
# adapted model *is* the pretrained model at step 0. Trainable parameters per matrix:
#
# $$ \#\text{params} = r\,(d_\text{in} + d_\text{out}). $$

# %% [markdown]
# ## 2. LoRA on the packaged MiniLM
#
# `load_model` returns the packaged all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, FFN 1536) with a fresh
# classification head for RTE. The head is random, so we seed first.

# %%
torch.manual_seed(0)
model, tokenizer = load_model("rte")
model.eval()  # no dropout: outputs are deterministic
cfg = model.config
print(f"{type(model).__name__}: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, FFN {cfg.intermediate_size}")

# %%
batch = tokenizer(["A cat sat on the mat.", "The weather was awful all week."],
                  ["An animal is sitting.", "It rained a lot."], return_tensors="pt", padding=True)
with torch.no_grad():
    logits_before = model(**batch).logits
logits_before

# %% [markdown]
# `target_modules="all-linear"` picks the six matrices of every block that the DCFT paper adapts:
# `query`, `key`, `value`, `attention.output.dense`, `intermediate.dense`, `output.dense`.

# %%
lora_cfg = LoRAConfig(r=8, lora_alpha=16, target_modules="all-linear")
inject_adapters(model, lora_cfg)
layers = adapter_layers(model)
shapes = pd.Series([f"{l.in_features}→{l.out_features}" for _, l in layers]).value_counts()
print(f"{len(layers)} adapted matrices; shapes (in→out):\n{shapes.to_string()}")
print(layers[0][0], "->", layers[0][1])

# %% [markdown]
# The count from the library must match $r\sum (d_\text{in}+d_\text{out})$ over the adapted matrices:

# %%
n_lora = count_adapter_parameters(model)
by_formula = sum(lora_cfg.r * (l.in_features + l.out_features) for _, l in layers)
print(f"LoRA r={lora_cfg.r} on MiniLM: {n_lora:,} adapter parameters (formula: {by_formula:,}); "
      f"scaling α/r = {lora_cfg.scaling}")
assert n_lora == by_formula == 8 * 6 * (4 * (384 + 384) + 2 * (384 + 1536))

# %% [markdown]
# **Identity at init.** Because $B = 0$, the adapted model gives *exactly* the same logits as before:

# %%
with torch.no_grad():
    logits_after = model(**batch).logits
print("max |difference| at init:", (logits_after - logits_before).abs().max().item())
assert torch.equal(logits_after, logits_before)

# %% [markdown]
# Once $B$ moves (here: set at random, as a few training steps would), the output changes, and merging
# $W \leftarrow W + \frac{\alpha}{r}BA$ gives the same function with no extra cost at inference:

# %%
from dcft_edu import merge_adapters, unmerge_adapters

torch.manual_seed(1)
with torch.no_grad():
    for _, layer in layers:
        layer.lora_B.normal_(std=0.01)
    logits_trained = model(**batch).logits
    merge_adapters(model)
    logits_merged = model(**batch).logits
    unmerge_adapters(model)
print("change vs. pretrained:", (logits_trained - logits_before).abs().max().item())
print("merged vs. unmerged:  ", (logits_merged - logits_trained).abs().max().item())
assert not torch.allclose(logits_trained, logits_before, atol=1e-4)
torch.testing.assert_close(logits_merged, logits_trained, atol=1e-5, rtol=1e-5)

# %% [markdown]
# ## 3. The papers' models, on the meta device
#
# `count_for_config` builds a model from its config **on the meta device** (shapes only: DeBERTa-v3-base's
# 184M parameters cost no memory and nothing is downloaded), injects the adapter and counts.
#
# - DeBERTa-v3-base: 12 layers × 6 matrices = **72** matrices (four 768→768, one 768→3072, one 3072→768 per layer).
# - RoBERTa-large: 24 layers × 6 = **144** matrices (1024 hidden, 4096 FFN).

# %%
ranks = [1, 2, 4, 8, 16]
models = {"DeBERTa-v3-base": deberta_v3_base_config(), "RoBERTa-large": roberta_large_config()}
rows = []
for name, mcfg in models.items():
    for r in ranks:
        rows.append({"model": name, "r": r,
                     "LoRA params": count_for_config(mcfg, LoRAConfig(r=r, target_modules="all-linear"))})
lora_counts = pd.DataFrame(rows).pivot(index="r", columns="model", values="LoRA params")
lora_counts.map("{:,}".format)

# %% [markdown]
# LoRA's count is exactly linear in $r$; at $r = 1$ on DeBERTa-v3-base it is the $\sum (d_\text{in}+d_\text{out})$
# over the 72 matrices, $12\cdot(4\cdot 1536 + 2\cdot 3840) = 165{,}888$ — the paper's "LoRA 0.17M" (Table 1).
#
# A detail worth knowing when you compare with the paper: its DCFT counts use $\text{M} = 2^{20}$
# ($25{,}344 / 2^{20} = 0.024$, notebook 02), but this LoRA entry is in decimal millions
# ($165{,}888 / 10^6 = 0.17$; in $2^{20}$ units it would read 0.16M).

# %%
LORA_R1_DEBERTA = 165_888  # docs/method_notes.md §2
assert lora_counts.loc[1, "DeBERTa-v3-base"] == LORA_R1_DEBERTA == 12 * (4 * 1536 + 2 * (768 + 3072))
for name in models:
    assert (lora_counts[name] == lora_counts.loc[1, name] * lora_counts.index).all(), name
print(f"LoRA r=1, DeBERTa-v3-base: {LORA_R1_DEBERTA:,} = {LORA_R1_DEBERTA / 1e6:.2f}M decimal "
      f"= {LORA_R1_DEBERTA / 2**20:.2f}M in 2^20 units (paper: 0.17M)")
assert f"{LORA_R1_DEBERTA / 1e6:.2f}M" == "0.17M"

# %% [markdown]
# ## 4. Rank 1 is LoRA's floor
#
# $r$ is a positive integer, so per matrix LoRA can never go below $d_\text{in} + d_\text{out}$ parameters:
# $A$ must hold at least one full row of length $d_\text{in}$ and $B$ one full column of length $d_\text{out}$.
# The only ways further down are to adapt *fewer matrices* or to change the parametrisation. The library
# refuses $r = 0$:

# %%
try:
    LoRAConfig(r=0)
except ValueError as err:
    print("ValueError:", err)
else:
    raise AssertionError("LoRAConfig(r=0) should be refused")

# %% [markdown]
# **DCFT's way below the floor.** DCFT learns a *small* rank-1 matrix $M = BA$ of shape
# $\frac{d_\text{out}}{k}\times\frac{d_\text{in}}{k}$ and a $k\times k$ kernel $C$, and deconvolves
# (transposed convolution, stride $k$) $M$ up to the full $d_\text{out}\times d_\text{in}$ update
# (notebook 02). Per matrix:
#
# $$ \#\text{params}_\text{DCFT} = \frac{d_\text{in}}{k} + \frac{d_\text{out}}{k} + k^2
#    \qquad\text{vs.}\qquad \#\text{params}_\text{LoRA, r=1} = d_\text{in} + d_\text{out}. $$
#
# So DCFT's $A$ and $B$ alone are **exactly 1/k** of LoRA $r=1$ on the same matrices. With $k = 8$ and the
# kernels ($72 \times 64$ parameters) the ratio is $165{,}888 / 25{,}344 \approx 6.5$.
# "8× fewer" (as in the paper's abstract) counts $A$ and $B$ only.

# %%
deberta = deberta_v3_base_config()
dcft_k8 = count_for_config(deberta, DCFTConfig(kernel_size=8))
kernels = 72 * 8 * 8
ab_only = dcft_k8 - kernels
print(f"DCFT k=8 on DeBERTa-v3-base: {dcft_k8:,} = {ab_only:,} (A, B) + {kernels:,} (72 kernels of 8×8)")
print(f"LoRA r=1 / DCFT A,B only  = {LORA_R1_DEBERTA / ab_only:.3f}")
print(f"LoRA r=1 / DCFT with C    = {LORA_R1_DEBERTA / dcft_k8:.3f}")
assert dcft_k8 == 25_344  # the paper's 0.024M (docs/method_notes.md §2)
assert ab_only * 8 == LORA_R1_DEBERTA  # "8× fewer": A and B are exactly 1/8 of LoRA r=1
assert round(LORA_R1_DEBERTA / dcft_k8, 1) == 6.5  # with the kernels

# %% [markdown]
# ## 5. Parameters vs. rank, at a glance
#
# LoRA's lines start at $r = 1$ and only go up. DCFT's counts (horizontal lines, DeBERTa-v3-base) sit
# below LoRA's floor; $k = 2$ is the paper's other main setting (0.079M).

# %%
dcft_k2 = count_for_config(deberta, DCFTConfig(kernel_size=2))
fig, ax = plt.subplots(figsize=(7.5, 4.5))
for name, marker in zip(models, "os"):
    ax.plot(lora_counts.index, lora_counts[name], marker=marker, label=f"LoRA, {name}")
ax.axhline(dcft_k2, color="C2", ls="--", label=f"DCFT k=2, DeBERTa-v3-base ({dcft_k2:,})")
ax.axhline(dcft_k8, color="C3", ls="--", label=f"DCFT k=8, DeBERTa-v3-base ({dcft_k8:,})")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(ranks, [str(r) for r in ranks])
ax.set_xlabel("LoRA rank r")
ax.set_ylabel("adapter parameters (all six matrices per layer)")
ax.set_title("LoRA grows linearly in r from a floor at r = 1")
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# ## What you should take away
#
# - LoRA adds $\frac{\alpha}{r}BA$ to a frozen $W$; with $B = 0$ at init the model starts exactly as pretrained
#   (checked above, bit for bit), and merging gives the same function at no inference cost.
# - Its cost is $r(d_\text{in}+d_\text{out})$ per matrix, linear in $r$; $r = 1$ is the floor:
#   165,888 parameters on DeBERTa-v3-base's 72 matrices (the paper's "0.17M").
# - DCFT goes below the floor by learning a $k$ times smaller matrix and deconvolving it: its $A$ and $B$ are
#   exactly $1/k$ of LoRA $r=1$ ("8× fewer" for $k = 8$); counting the $8\times 8$ kernels, 6.5× fewer
#   (25,344, the paper's "0.024M").
# - Counting real models needs no download: build them on the meta device (`count_for_config`).

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/01_lora_and_the_rank_one_floor_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **Fewer matrices.** Adapt only `query` and `value` on MiniLM with $r = 8$. Predict the count, then check it
#    with `inject_adapters` and `count_adapter_parameters`.
# 2. **DCFT with $k = 4$.** Predict DCFT's count on DeBERTa-v3-base for $k = s = 4$ from LoRA's $r = 1$ count and the
#    kernels alone, and the ratio LoRA $r = 1$ / DCFT; check with `count_for_config`.
# 3. **The smallest DCFT.** Write DCFT's total on DeBERTa-v3-base as a function of $k$. Which of
#    $k \in \{2, 4, 6, 8, 12, 16, 24\}$ gives the fewest parameters, and why does it not keep falling?

# %%
# Exercise 1 · Fewer matrices: a starter. Fill in the TODOs, run, then compare with the solution.
predicted = None  # TODO: LoRA r = 8 on query and value only of MiniLM (6 blocks, 384 × 384): how many parameters?
# TODO: check: m = inject_adapters(load_model("rte")[0], LoRAConfig(r=8, target_modules=["query", "value"]))
#       and count_adapter_parameters(m); then compare with your prediction

# %%
# Exercise 2 · DCFT with k = 4: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_count = None  # TODO: DCFT k = s = 4 on DeBERTa-v3-base, from LoRA r = 1's 165,888 and the kernels alone
predicted_ratio = None  # TODO: LoRA r = 1 / DCFT k = 4
# TODO: check with count_for_config(deberta_v3_base_config(), DCFTConfig(kernel_size=4))

# %%
# Exercise 3 · The smallest DCFT: a starter. Fill in the TODOs, run, then compare with the solution.
def dcft_total(k):
    """TODO: DCFT's parameters on DeBERTa-v3-base (72 matrices, 768 / 3072) as a function of the kernel size k."""
    ...


predicted_best_k = None  # TODO: which of k in {2, 4, 6, 8, 12, 16, 24} gives the fewest, and why not the largest?
