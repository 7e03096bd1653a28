"""The committed numbers behind notebook 08 (weight similarity) and REPORT.md § 08, over ``figures/data/main``.

Per run, the cosine to W₀ is averaged over the 12 matrices (Wq, Wv of blocks 0–5); methods are compared seed by
seed (same seed, same device), with Holm's correction across the five tasks of a claim.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dcft_edu.experiments.analysis import TASK_ORDER
from dcft_edu.figures.main_results import main_runs, similarity_frame, similarity_ordering

METHODS = ["full FT", "LoRA r=8", "Delta-LoRA r=8 λ=0.5", "DCFT k=8"]
DL, LORA, FULL, DCFT = "Delta-LoRA r=8 λ=0.5", "LoRA r=8", "full FT", "DCFT k=8"


@pytest.fixture(scope="module")
def sim():
    s = similarity_frame(main_runs())
    return s[s["label"].isin(METHODS)]


def holm(p: pd.Series) -> pd.Series:
    order = p.sort_values()
    adjusted = np.minimum(1, np.maximum.accumulate([(len(order) - i) * v for i, v in enumerate(order)]))
    return pd.Series(adjusted, index=order.index).reindex(p.index)


def test_every_cell_has_three_seeds(sim):
    assert (sim.groupby(["task", "label"])["seed"].nunique() == 3).all() and len(sim) == 5 * 4 * 3 * 12


def test_orderings_per_task(sim):
    mean_cos = sim.groupby(["task", "label"])["cosine"].mean().unstack("label").loc[TASK_ORDER]
    assert (mean_cos[DL] < mean_cos[LORA]).all()  # Delta-LoRA moves W more than LoRA: 5 of 5 tasks (the paper)
    assert (mean_cos.idxmax(axis=1) == FULL).all()  # full FT stays closest on every task (not the paper)
    assert (mean_cos.idxmin(axis=1) == DCFT).sum() == 4 and mean_cos.loc["stsb"].idxmin() == DL


@pytest.mark.parametrize("a, b", [(DL, LORA), (LORA, FULL)])
def test_paired_per_seed_and_holm(sim, a, b):
    """a below b (lower cosine) in all 15 seed pairs, and on every task after Holm's correction."""
    per_run = sim.groupby(["task", "label", "seed"])["cosine"].mean().unstack("label")
    d = per_run[a] - per_run[b]
    assert int((d < 0).sum()) == 15
    p = d.groupby("task").apply(lambda x: stats.ttest_1samp(x, 0).pvalue)
    assert (holm(p) < 0.05).all()


def test_mrpc_per_block(sim):
    wv = sim[(sim["task"] == "mrpc") & (sim["proj"] == "Wv")].groupby(["label", "layer"])["cosine"].mean().unstack("layer")
    assert all(wv.loc[m].idxmin() == 0 for m in [LORA, DL, DCFT])  # block 0's Wv moves most
    assert wv.loc[DCFT].is_monotonic_increasing
    assert list(similarity_ordering(sim, "mrpc", METHODS).index) == [FULL, LORA, DL, DCFT]


def test_full_ft_moves_least_in_norm(sim):
    rel = sim.groupby(["task", "label"])["rel_change"].mean().unstack("label")
    assert rel[FULL].between(0.02, 0.035).all() and rel[LORA].between(0.045, 0.115).all()
