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
# # Solutions · 12 · Which weights to adapt
#
# The exercises of `12_layer_ablation`. Each cell runs at quick scale (`DCFT_EDU_QUICK=1`) in seconds to a minute
# and asserts the prediction.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("12_layer_ablation_solutions")

# %%
import tempfile
from pathlib import Path

from transformers import AutoConfig

from dcft_edu import DCFTConfig, LoRAConfig
from dcft_edu.experiments.models import default_model_path
from dcft_edu.experiments.runinfo import notebook_setup
from dcft_edu.experiments.store import load_results
from dcft_edu.experiments.sweep import run_sweep
from dcft_edu.figures.ablations import weight_change
from dcft_edu.inject import count_for_config

DEVICE, QUICK = notebook_setup()
minilm = AutoConfig.from_pretrained(default_model_path())
QKVO = ["query", "key", "value", "attention.output.dense"]

# %% [markdown]
# ## 1. Two counts before running
#
# LoRA r = 8 on q,k,v,o in every block: 4 matrices × 6 blocks × $8\,(384 + 384)$ = 147,456. DCFT k = 8 on all six
# matrices of blocks 0–2: 3 blocks × $[4\,(48 + 48 + 64) + 2\,(48 + 192 + 64)]$ = 3 × 1,248 = 3,744.

# %%
assert count_for_config(minilm, LoRAConfig(r=8, target_modules=QKVO)) == 4 * 6 * 8 * (384 + 384) == 147_456
assert count_for_config(minilm, DCFTConfig(r=1, kernel_size=8, target_modules="all-linear", layers=[0, 1, 2])) \
    == 3 * (4 * (48 + 48 + 64) + 2 * (48 + 192 + 64)) == 3_744

# %% [markdown]
# ## 2. Which blocks move?
#
# Only the blocks in `layers` carry adapters, so only their effective weights change: `rel_change` is exactly 0
# outside them and positive inside.

# %%
folder = Path(tempfile.mkdtemp())
grid = {"task": ["stsb"], "method": ["dcft"], "target_modules": ["all-linear"], "layers": [[3, 4, 5], [0]],
        "seed": [0]}
run_sweep("blocks", grid, folder, scale="quick", limit_train=32, limit_dev=32, log=lambda m: None)
for _, r in load_results(folder / "blocks").iterrows():
    moved = weight_change(r["weight_similarity"])["rel_change"].gt(0).all(axis=1)  # per block: query and value moved
    print(f"layers = {r['layers']}: blocks that moved {list(moved.index[moved])}")
    assert list(moved.index[moved]) == r["layers"] and not moved.drop(r["layers"]).any()

# %% [markdown]
# ## 3. A budget question
#
# LoRA r = 2 on all six: $2\,[24\,(384 + 384) + 12\,(384 + 1536)] = 82{,}944$; LoRA r = 8 on q,v: 73,728. The
# rank-2 adapter on every matrix is the larger one, by 12 %. Section 4 found "all six" the best configuration for
# both methods, so it is the one to train first — whether its lower rank costs more than its breadth gains is
# the experiment.

# %%
r2_all = count_for_config(minilm, LoRAConfig(r=2, target_modules="all-linear"))
r8_qv = count_for_config(minilm, LoRAConfig(r=8, target_modules=["query", "value"]))
assert r2_all == 82_944 and r8_qv == 73_728 and r2_all > r8_qv
