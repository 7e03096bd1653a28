"""The committed E2E runs (``figures/data/e2e``) and what notebook 16, the README and REPORT.md §16 say about them.

These pin the committed numbers: a change to the committed results fails here, loudly.
"""
from __future__ import annotations

import pandas as pd
import pytest

from dcft_edu.experiments.analysis import holm
from dcft_edu.experiments.e2e import E2E_METRICS, load_e2e_results


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return load_e2e_results()


def _main(runs, method):
    d = runs[runs["method"] == method]
    return d[d["λ"].isna() | (d["λ"] == 2.0)].set_index("seed").sort_index()


def test_coverage_and_provenance(runs):
    assert len(runs) == 13 and (runs["scale"] == "cpu").all() and (runs["num_mrs"] == 50).all()
    for m in ("lora", "dcft"):
        assert list(_main(runs, m).index) == [0, 1, 2]
    assert list(_main(runs, "delta_lora").index) == [0, 1, 2]
    assert sorted(runs.loc[runs["method"] == "delta_lora", "λ"].unique()) == [0.0, 0.5, 1.0, 2.0, 3.0]


def test_table1_analogue(runs):
    lora, delta, dcft = _main(runs, "lora"), _main(runs, "delta_lora"), _main(runs, "dcft")
    assert lora["bleu"].mean() == pytest.approx(43.29, abs=0.01) and delta["bleu"].mean() == pytest.approx(50.02, abs=0.01)
    diff = delta[list(E2E_METRICS)] - lora[list(E2E_METRICS)]
    assert (diff > 0).all().all()  # every seed, every metric
    assert diff["bleu"].round(1).tolist() == [5.2, 8.8, 6.1]
    from scipy import stats

    p = pd.Series({m: stats.ttest_1samp(diff[m], 0.0).pvalue for m in E2E_METRICS})
    adj = holm(p)
    assert adj["rouge_l"] == pytest.approx(0.018, abs=0.001) and (adj.drop("rouge_l") > 0.05).all()
    assert (dcft["bleu"] < 2.1).all()  # DCFT never left the base model's level (2.02)
    base = runs.dropna(subset=["initial_bleu"])
    assert len(base) == 1 and base["initial_bleu"].iloc[0] == pytest.approx(2.02, abs=0.01)


def test_lambda_zero_is_lora_and_the_lambda_curve(runs):
    d = runs[(runs["seed"] == 0)]
    lam0 = d[(d["method"] == "delta_lora") & (d["λ"] == 0.0)][list(E2E_METRICS)].iloc[0]
    lora0 = d[d["method"] == "lora"][list(E2E_METRICS)].iloc[0]
    assert (lam0 == lora0).all()  # λ = 0: Delta-LoRA's update rule is LoRA's, to the last digit
    bleu = d[d["method"] == "delta_lora"].set_index("λ")["bleu"].round(1)
    assert bleu.to_dict() == {0.0: 46.7, 0.5: 39.9, 1.0: 45.2, 2.0: 51.9, 3.0: 55.5}
    spread = _main(runs, "delta_lora")["bleu"]
    assert spread.max() - spread.min() == pytest.approx(8.4, abs=0.05)
