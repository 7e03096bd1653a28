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
# # Solutions · 15 · Does DCFT match LoRA?
#
# The exercises of `15_does_dcft_match_lora`. Each cell runs on a laptop CPU in seconds (exercise 1 loads
# MiniLM twice) and asserts the prediction.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("15_does_dcft_match_lora_solutions")

# %%
import pandas as pd

from dcft_edu.experiments.analysis import dcft_question, holdout_tuned
from dcft_edu.experiments.probe import first_step_probe
from dcft_edu.figures.dcft_question import lr_study_runs

# %% [markdown]
# ## 1. $B = 0$ init with larger $A$, $C$
#
# **Prediction.** $\partial L/\partial B$ is scaled by $A$ and $C$ (DCFT's $\Delta W = s\,(BA)\otimes C$): with
# $A, C \sim \mathcal N(0, 0.125^2)$ instead of $0.02^2$ each is ~6× larger, so $B$'s gradient grows ~36×
# (it does not depend on $B$ itself, so $B = 0$ does not make it vanish). One AdamW step moves each entry of
# $B$ by about lr; $\Delta W$ then moves by about lr × $\lVert A\rVert\lVert C\rVert$: further than from the paper
# init, where $B$, $A$, $C$ are all small. At init $\Delta W_0 = 0$ exactly, as in LoRA.

# %%
paper = first_step_probe("mrpc", "dcft")
zero = first_step_probe("mrpc", "dcft", dcft_init="zero", dcft_init_std=0.125)
side = pd.DataFrame({"paper init": paper, "B = 0, std 0.125": zero})
assert zero["ΔW₀"] == 0.0 and paper["ΔW₀"] > 0
assert zero["task grad RMS lora_B"] > 10 * paper["task grad RMS lora_B"]
assert zero["ΔW step"] > paper["ΔW step"]
side

# %% [markdown]
# ## 2. Choosing the lr on the dev set instead
#
# For each task and method, take the lr with the best *dev* mean (`best_metric`) and compare with the lr the
# held-out rows chose. The dev-chosen cell's dev mean is ≥ the held-out-chosen cell's **by construction**
# (it is the maximum over the same cells): choosing on dev reports the maximum of 4 noisy means, an upward
# bias that grows with the number of lrs tried — for both methods, but not necessarily by the same amount,
# so even the *gap* is not safe.

# %%
runs = lr_study_runs()
dev_mean = runs.groupby(["task", "label", "lr_factor"])["best_metric"].mean()
dev_chosen = dev_mean.groupby(level=["task", "label"]).max()
tuned = lr_study_runs(holdout_tuned(runs.drop(columns=["label", "lr_factor"])))
held_chosen = tuned.groupby(["task", "label"])["best_metric"].mean()
both = pd.DataFrame({"dev-chosen lr": dev_mean.groupby(level=["task", "label"]).idxmax().map(lambda k: k[2]),
                     "dev mean at it": 100 * dev_chosen,
                     "held-out-chosen lr": tuned.groupby(["task", "label"])["lr_factor"].first(),
                     "dev mean at that": 100 * held_chosen})
assert (both["dev mean at it"] >= both["dev mean at that"] - 1e-9).all()
both.round(2)

# %% [markdown]
# ## 3. Holm by hand
#
# Sort the $m$ p-values; multiply the smallest by $m$, the next by $m - 1$, …; keep each adjusted value at least
# as large as the one before (step-down) and at most 1. With $m = 2$: $p_{(1)}\cdot 2$, then
# $\max(2p_{(1)}, p_{(2)})$. The smaller p must be below $0.05/2 = 0.025$ for its comparison to be called; in the
# full study's family of 8, below $0.05/8 = 0.00625$.

# %%
two_tasks = runs[runs["task"].isin(["stsb", "sst2"])]  # the lesson's family: STS-B and SST-2 (amendment 5)
verdict = dcft_question(None, None, two_tasks.drop(columns=["label", "lr_factor"]), None)
p = verdict["p"].dropna().sort_values()  # smallest first
m, running, by_hand = len(p), 0.0, {}
for i, (name, pi) in enumerate(p.items()):  # the i-th smallest (from 0) is multiplied by m − i
    running = max(running, min(1.0, (m - i) * pi))  # step-down: never below the one before
    by_hand[name] = running
by_hand = pd.Series(by_hand, dtype=float)
assert all(abs(by_hand[c] - verdict.loc[c, "p_holm"]) < 1e-12 for c in by_hand.index)
pd.DataFrame({"p": p, "Holm by hand": by_hand, "p_holm": verdict.loc[p.index, "p_holm"]})

# %% [markdown]
# ## 4. The other order
#
# Row $i\cdot k + p$ of $M \otimes C$ ($i < m$, $p < k$) holds $M_{i,:} \otimes C_{p,:}$; in $C \otimes M$ that row
# is number $p\cdot m + i$. So `shuffle(m, k)[p·m + i] = i·k + p`: write the indices as an (m, k) grid and read it
# column by column.
#
# **Same layer?** No, in general. A matrix is a Kronecker product $X \otimes Y$ with $X$ of shape (8, 8) and $Y$ of
# shape (48, 48) exactly when Van Loan's rearrangement — one row per entry of $X$, one column per entry of $Y$ — has
# rank 1. DCFT's $\Delta W = (ba)\otimes C$ is a Kronecker product with the *other* shapes ((48, 48) ⊗ (8, 8)); in
# LoKr's arrangement it has rank > 1, so no LoKr $\Delta W$ (not even with a full $W_2$) equals it on the same layer.
# Relabelled rows and columns (the shuffle) turn it into one — but $W$'s rows are not relabelled with it, so the two
# adapters can add different functions to the same pretrained layer.

# %%
import torch
from einops import rearrange


def shuffle(m: int, k: int) -> torch.Tensor:
    """Index vector: row p·m + i of C ⊗ M is row i·k + p of M ⊗ C."""
    # (m, k) grid of old row numbers i·k + p, read column by column -> new order p·m + i
    return torch.arange(m * k).reshape(m, k).T.reshape(-1)


M, C = torch.randn(6, 2, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
assert torch.equal(torch.kron(C, M), torch.kron(M, C)[shuffle(6, 3)][:, shuffle(2, 3)])

b, a, C8 = (torch.randn(48, 1, dtype=torch.float64), torch.randn(1, 48, dtype=torch.float64),
            torch.randn(8, 8, dtype=torch.float64))
dW = torch.kron(b @ a, C8)  # DCFT's ΔW of a 384 -> 384 layer: (48, 48) ⊗ (8, 8) -> (384, 384)


def lokr_rank(w: torch.Tensor) -> int:
    """Rank of Van Loan's rearrangement for LoKr's shapes W₁ (8, 8) ⊗ W₂ (48, 48): 1 iff w is such a product."""
    # (p i) (q j) -> (p q) (i j):  (384, 384) -> (64, 2304)
    return int(torch.linalg.matrix_rank(rearrange(w, "(p i) (q j) -> (p q) (i j)", p=8, q=8)))


assert lokr_rank(dW) > 1  # not a LoKr ΔW of the same layer
assert lokr_rank(dW[shuffle(48, 8)][:, shuffle(48, 8)]) == 1  # the shuffled one is
print("rank of the rearranged DCFT ΔW in LoKr's shapes:", lokr_rank(dW), "; after the shuffle: 1")
