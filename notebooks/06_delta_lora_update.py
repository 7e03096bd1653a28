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
# # 06 · The Delta-LoRA update, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dcft-edu/dcft_edu/blob/main/notebooks/06_delta_lora_update.ipynb)
#
# **Paper.** Zi et al., *Delta-LoRA: Fine-Tuning High-Rank Parameters with the Delta of Low-Rank Matrices*,
# 2023 — §4.1 (Eq. 5–6) and Algorithm 1.
#
# Delta-LoRA is LoRA without dropout (notebook 05) in which the "frozen" weight also moves. After every
# optimizer step $t$ past a start step $K$:
#
# $$ W \leftarrow W + \lambda\, s\,\big(B_{t} A_{t} - B_{t-1} A_{t-1}\big), \qquad s = \alpha/r, $$
#
# i.e. $W$ takes (λ times) the step the product $BA$ just took. $W$ gets no gradient and no optimizer state,
# so the memory cost is LoRA's. We run it on the packaged MiniLM with a few real RTE batches and check, with
# the library's own layers (`dcft_edu.delta_lora`), everything that follows from that one line.

# %% [markdown]
# **Goals**
# - Run Delta-LoRA's update of $W$ inside a real optimizer step and see $W$ stay put until the start step $K$.
# - Prove that the updates telescope, so the total change of $W$ has rank $\le 2r$ however long you train.
# - Export the trained model as an exact rank-$2r$ LoRA on the original weights, and recover $W_0$.
# - See why an adapter-only save loses part of the fine-tuning.
#
# **Prerequisites.** Notebooks 01 (LoRA) and 05 (why no dropout).
#
# **Time.** About 1–2 minutes on a laptop CPU or on Colab; no GPU needed.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("06_delta_lora_update")

# %%
import torch
from dcft_edu.experiments.runinfo import notebook_setup

DEVICE, QUICK = notebook_setup()  # prints the device, and whether DCFT_EDU_QUICK=1 (the tiny CI scale)

# %%
import tempfile

import datasets
import matplotlib.pyplot as plt
from safetensors import safe_open

from dcft_edu import (DeltaLoRAConfig, apply_exported_lora, disable_adapters, export_delta_lora,
                      inject_adapters, load_adapters, original_weights, register_delta_lora_hook, save_adapters)
from dcft_edu.experiments.data import make_dataloaders
from dcft_edu.delta_lora import delta_lora_layers
from dcft_edu.experiments.models import load_model
from dcft_edu.figures.plotting import set_theme

set_theme()
datasets.disable_progress_bars()

# %% [markdown]
# ## 1. Set-up: MiniLM, Delta-LoRA on query and value, real RTE batches
#
# $r = 4$, $\alpha = 8$ ($s = 2$), $\lambda = 0.5$ (the paper's GLUE value), start step $K = 3$, AdamW.
# `register_delta_lora_hook` adds a step post-hook to the optimizer, so that every `step()` also applies the $W$
# update (`delta_step()` of each layer); the optimizer itself stays a plain AdamW.

# %%
K = 3
T = 8 if QUICK else 16  # optimizer steps
torch.manual_seed(0)
model, tokenizer = load_model("rte")
config = DeltaLoRAConfig(r=4, lora_alpha=8, update_ratio=0.5, start_steps=K, target_modules=("query", "value"))
inject_adapters(model, config)
layers = delta_lora_layers(model)
lam, s, r = config.update_ratio, config.scaling, config.r
print(f"{len(layers)} Delta-LoRA layers, r = {r}, s = α/r = {s}, λ = {lam}, K = {K}, T = {T}")

W0 = {name: layer.base_weight().detach().clone() for name, layer in layers}  # the pretrained weights
train_loader, dev_loader = make_dataloaders("rte", tokenizer, batch_size=8, limit_train=8 * T, limit_dev=16,
                                            max_length=64, seed=0)
trainable = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.01)
register_delta_lora_hook(optimizer, model)

# %% [markdown]
# ## 2. Train, and watch $W$
#
# We keep our own copies of $(A_t, B_t)$ after every step (small: $r\times 384$ and $384\times r$ per layer) and of
# how far $W$ has moved from $W_0$.

# %%
snapshots = {0: {n: (l.lora_A.detach().clone(), l.lora_B.detach().clone()) for n, l in layers}}
moved = {n: [0.0] for n, _ in layers}  # ‖W_t − W_0‖_F per layer
unchanged = {}  # step -> W_t == W_0 bit for bit, in every layer
model.train()
for t, batch in enumerate(train_loader, start=1):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()  # AdamW on A, B (and the head), then W ← W + λ·s·(B_t A_t − B_{t−1} A_{t−1}) if t > K
    optimizer.zero_grad()
    snapshots[t] = {n: (l.lora_A.detach().clone(), l.lora_B.detach().clone()) for n, l in layers}
    unchanged[t] = all(torch.equal(l.base_weight(), W0[n]) for n, l in layers)
    for n, l in layers:
        moved[n].append((l.base_weight().detach() - W0[n]).norm().item())
    print(f"step {t}: loss {loss.item():.4f}   W untouched: {unchanged[t]}")
assert t == T

# %% [markdown]
# $W$ is bit-for-bit the pretrained weight for the first $K$ steps, then moves at every step:

# %%
assert all(unchanged[t] for t in range(1, K + 1))
assert not any(unchanged[t] for t in range(K + 1, T + 1))

# %% [markdown]
# ## 3. The updates telescope
#
# Summing the per-step updates from $K+1$ to $T$, every intermediate product cancels:
#
# $$ W_T - W_K = \lambda\, s \sum_{t=K+1}^{T} \big(P_t - P_{t-1}\big) = \lambda\, s\,\big(P_T - P_K\big),
#    \qquad P_t = B_t A_t, \quad W_K = W_0 . $$
#
# Checked in float64 for every layer, against *our* snapshots (not the layer's internal buffers):

# %%
def P(step, name):
    A, B = snapshots[step][name]
    return B.double() @ A.double()


worst = 0.0
for name, layer in layers:
    lhs = layer.base_weight().detach().double() - W0[name].double()
    rhs = lam * s * (P(T, name) - P(K, name))
    torch.testing.assert_close(lhs, rhs, atol=1e-6, rtol=0)
    worst = max(worst, ((lhs - rhs).norm() / rhs.norm()).item())
print(f"W_T − W_0 = λ·s·(P_T − P_K) in all {len(layers)} layers; worst relative difference {worst:.1e} (float32 W)")

# %% [markdown]
# ## 4. The total change of $W$ has rank $\le 2r$
#
# $P_T - P_K = [B_T \mid -B_K]\,[A_T ; A_K]$ is a product through $2r$ columns, so however many steps are taken,
# $\operatorname{rank}(W_T - W_0) \le 2r = 8$, for a $384\times 384$ matrix. Its singular values fall off a cliff
# after the 8th (what is left is float32 rounding of $W$):

# %%
name0 = layers[0][0]
ranks = {}
for name, layer in layers:
    sv = torch.linalg.svdvals(layer.base_weight().detach().double() - W0[name].double())
    ranks[name] = int((sv > 1e-4 * sv[0]).sum())
    if name == name0:
        sv0 = sv
print("numerical rank of W_T − W_0 per layer:", sorted(set(ranks.values())), f"(bound 2r = {2 * r})")
print(f"{name0}: σ_8 / σ_1 = {(sv0[7] / sv0[0]).item():.1e},  σ_9 / σ_1 = {(sv0[8] / sv0[0]).item():.1e}")
assert all(rk <= 2 * r for rk in ranks.values())
assert (sv0[2 * r] / sv0[0]) < 1e-4

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
steps = range(T + 1)
ax1.plot(steps, moved[name0], "o-", label="‖W_t − W_0‖_F (Delta-LoRA's change of W)")
ax1.plot(steps, [(s * P(t, name0)).norm().item() for t in steps], "s--", label="‖s·B_t A_t‖_F (the LoRA branch)")
ax1.axvline(K, color="0.5", ls=":")
ax1.annotate(f"K = {K}: W starts moving", xy=(K, 0), xytext=(K + 0.3, max(moved[name0]) * 0.8), fontsize=9)
ax1.set_xlabel("optimizer step t")
ax1.set_ylabel("Frobenius norm")
ax1.set_title(f"{name0.replace('bert.encoder.', '')}  (λ = {lam}, K = {K})")
ax1.legend(fontsize=9)
ax2.semilogy(range(1, len(sv0) + 1), sv0.numpy(), ".")
ax2.axvline(2 * r + 0.5, color="C3", ls=":", label=f"2r = {2 * r}")
ax2.set_xlim(0, 40)
ax2.set_xlabel("index i")
ax2.set_ylabel(r"singular value $\sigma_i(W_T - W_0)$")
ax2.set_ylim(bottom=1e-8)
ax2.set_title("the total change of W has rank 2r")
ax2.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. The trained model *is* a rank-$2r$ LoRA on the original weights
#
# Adding the LoRA branch to the moved weight,
#
# $$ W_T + s\,B_T A_T = W_0 + s\,\big((1+\lambda)\,B_T A_T - \lambda\, B_K A_K\big)
#    = W_0 + s\,\underbrace{\big[(1+\lambda) B_T \mid -\lambda B_K\big]}_{B'\ (d_\text{out}\times 2r)}\,
#      \underbrace{\begin{bmatrix} A_T \\ A_K \end{bmatrix}}_{A'\ (2r\times d_\text{in})} . $$
#
# `export_delta_lora` returns those factors and a `LoRAConfig` with $r' = 2r$, $\alpha' = 2\alpha$ (same scale $s$);
# `apply_exported_lora` puts them on a model that holds the *original* weights (here: the pretrained model
# loaded again), together with the trained classifier head and pooler. It reproduces the trained model:

# %%
factors, lora_config = export_delta_lora(model)
print(f"exported: LoRA r = {lora_config.r}, α = {lora_config.lora_alpha}, scale {lora_config.scaling};",
      f"{name0}: lora_A {tuple(factors[name0]['lora_A'].shape)}, lora_B {tuple(factors[name0]['lora_B'].shape)}")

torch.manual_seed(1)  # a different random head: apply_exported_lora copies the trained one
exported, _ = load_model("rte")
apply_exported_lora(exported, factors, lora_config, heads_from=model)

dev_batch = next(iter(dev_loader))
model.eval()
exported.eval()
with torch.no_grad():
    logits_trained = model(**dev_batch).logits
    logits_exported = exported(**dev_batch).logits
print("max |logits difference|, exported LoRA vs. trained Delta-LoRA:",
      f"{(logits_exported - logits_trained).abs().max().item():.1e}")
torch.testing.assert_close(logits_exported, logits_trained, atol=1e-5, rtol=1e-5)

# %% [markdown]
# The original weights can also be recovered from the trained model alone (`original_weights`:
# $W_0 = W_T - \lambda s (P_T - P_K)$, using the $(A_K, B_K)$ that each layer keeps in its state dict):

# %%
for name, w0 in original_weights(model).items():
    torch.testing.assert_close(w0, W0[name], atol=1e-6, rtol=0)
print("original_weights(model) == W_0 in every layer")

# %% [markdown]
# ## 6. Why an adapter-only save loses the update
#
# A PEFT-style adapter file holds $A$, $B$ and the head, not $W$. Loaded onto a fresh pretrained model it gives
# $W_0 + s\,B_T A_T$ instead of $W_T + s\,B_T A_T$: the whole $\lambda s (P_T - P_K)$ is gone. Demonstrated:

# %%
torch.manual_seed(2)
ab_only, _ = load_model("rte")
inject_adapters(ab_only, config)
state = {k: v for k, v in model.state_dict().items()
         if k.endswith((".lora_A", ".lora_B")) or k.startswith(("classifier.", "bert.pooler."))}
missing, unexpected = ab_only.load_state_dict(state, strict=False)
assert not unexpected
ab_only.eval()
with torch.no_grad():
    logits_ab_only = ab_only(**dev_batch).logits
    with disable_adapters(ab_only):  # W_0 and the trained head, no adapter: where fine-tuning started from
        logits_start = ab_only(**dev_batch).logits
lost = (logits_ab_only - logits_trained).norm() / (logits_trained - logits_start).norm()
print(f"A, B and head only, on fresh W_0: max |logits difference| = "
      f"{(logits_ab_only - logits_trained).abs().max().item():.1e}, "
      f"i.e. {lost.item():.0%} of what the adapters changed in the logits is lost")
assert not torch.allclose(logits_ab_only, logits_trained, atol=1e-4)

# %% [markdown]
# `dcft_edu.save_adapters` knows this: for Delta-LoRA it also saves the adapted $W$ (and the snapshots, so that
# training can resume exactly). A save → load round trip onto a fresh pretrained model reproduces the
# trained model:

# %%
with tempfile.TemporaryDirectory() as folder:
    save_adapters(model, folder)
    with safe_open(f"{folder}/adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    n_w = sum(k.endswith("base_layer.weight") for k in keys)
    print(f"saved {len(keys)} tensors, of which {n_w} adapted weights W (one per Delta-LoRA layer)")
    torch.manual_seed(3)
    restored, _ = load_model("rte")
    load_adapters(restored, folder)
restored.eval()
with torch.no_grad():
    logits_restored = restored(**dev_batch).logits
print(f"save → load round trip: max |logits difference| = {(logits_restored - logits_trained).abs().max().item():.1e}")
assert n_w == len(layers)
torch.testing.assert_close(logits_restored, logits_trained, atol=1e-6, rtol=1e-6)

# %% [markdown]
# ## What you should take away
#
# - Delta-LoRA trains $A$ and $B$ like LoRA and, after step $K$, adds $\lambda s$ times the change of $BA$ to $W$ after
#   each optimizer step; $W$ is untouched up to $K$ (checked bit for bit).
# - The updates telescope: $W_T - W_0 = \lambda s (P_T - P_K)$, so the total change of $W$ has rank $\le 2r$ no matter
#   how long you train, and the trained model is exactly a rank-$2r$ LoRA on the original weights
#   (`export_delta_lora` + `apply_exported_lora`), with $W_0$ recoverable (`original_weights`).
# - Because $W$ moves, saving only $A$, $B$ and the head loses part of the fine-tuning. Save $W$ too
#   (`save_adapters` does) or export the rank-$2r$ LoRA.

# %% [markdown]
# ## Exercises
#
# Solutions: `notebooks/solutions/06_delta_lora_update_solutions.ipynb`.
# Below, one starter cell per exercise: fill in its `TODO`s.
#
# 1. **The rank of $W_T - W_0$.** Train Delta-LoRA with $r = 2$, $K = 3$ for 10 steps. Predict
#    $\operatorname{rank}(W_T - W_0)$, then check with its singular values.
# 2. **Start at $K = 0$.** Predict the rank now (hint: what is $B_0 A_0$?), and write $W_T - W_0$ in terms of $B_T A_T$.
# 3. **$\lambda = 0$.** Predict what happens to $W$, and the rank $r'$ and $\alpha'$ of `export_delta_lora`'s LoRA.

# %%
# Exercise 1 · The rank of W_T − W_0: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_rank = None  # TODO: rank(W_T - W_0) after 10 steps of Delta-LoRA with r = 2, K = 3
# TODO: train as in section 2 with DeltaLoRAConfig(r=2, start_steps=3), then the singular values of W_T - W_0

# %%
# Exercise 2 · Start at K = 0: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_rank = None  # TODO: the rank now (what is B_0 A_0?)
predicted_formula = None  # TODO: W_T - W_0 in terms of B_T A_T, λ and α/r

# %%
# Exercise 3 · λ = 0: a starter. Fill in the TODOs, run, then compare with the solution.
predicted_W = None  # TODO: what happens to W with update_ratio=0?
predicted_export = None  # TODO: (r', α') of export_delta_lora's LoRA
