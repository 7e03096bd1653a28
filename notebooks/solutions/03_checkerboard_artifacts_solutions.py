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
# # Solutions · 03 Checkerboard artifacts
#
# The exercises of `03_checkerboard_artifacts`; each cell asserts the prediction (seconds on a CPU).

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("03_checkerboard_artifacts_solutions")

# %%
from collections import Counter

import torch

from dcft_edu.dcft import coverage_map, dcft_num_params

# %% [markdown]
# **1. Stride 6, kernel 8.** Along one dimension a cell at $x$ is covered by the copies $i$ with $0 \le x - 6i < 8$:
# two when $x \bmod 6 \in \{0, 1\}$, one otherwise (period 6). The 2-D map is the product, so inside it holds
# 1, 2 and 4 taps on $4/9$, $4/9$ and $1/9$ of the cells; the mean is $(k/s)^2 = 16/9$.

# %%
c = coverage_map(8, 6, (8, 96))[0]  # c_6(y), one row of subspace cells
assert [int(c[y]) for y in range(12, 24)] == [2, 2, 1, 1, 1, 1] * 2
inner = coverage_map(8, 6, (96, 96))[12:84, 12:84]  # 72 × 72: twelve whole periods each way
share = {int(v): n / inner.numel() for v, n in Counter(inner.flatten().tolist()).items()}
print("taps: share of interior cells", {v: round(f, 3) for v, f in sorted(share.items())})
assert sorted(share) == [1, 2, 4]
assert abs(share[4] - 1 / 9) < 1e-9 and abs(share[2] - 4 / 9) < 1e-9 and abs(share[1] - 4 / 9) < 1e-9
assert abs(inner.double().mean().item() - 16 / 9) < 1e-9

# %% [markdown]
# **2. Which kernels are even with stride 4?** Coverage is even exactly when $s$ divides $k$: with $s = 4$,
# $k = 4, 8, 12$ (1, 4, 9 taps per cell) are even, $k = 6$ and $k = 10$ are not.

# %%
for k in (4, 6, 8, 10, 12):
    values = coverage_map(k, 4, (96, 96))[k:-k, k:-k].unique().tolist()
    print(f"k = {k:2d}, s = 4: taps inside {values}")
    assert (len(values) == 1) == (k % 4 == 0)
    if k % 4 == 0:
        assert values == [(k // 4) ** 2]

# %% [markdown]
# **3. The price of overlap.** One 768×768 matrix, $k = 8$: $s = 6$ gives $h = \lceil 760/6 \rceil + 1 = 128$ per side,
# $2 \cdot 128 + 64 = 320$ parameters; $s = 8$ gives $96$, $2 \cdot 96 + 64 = 256$.

# %%
assert dcft_num_params(768, 768, 8, 6) == 320 and dcft_num_params(768, 768, 8, 8) == 256
