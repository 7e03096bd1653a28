"""The committed numbers behind notebook 07 (GLUE main results) and REPORT.md § 07, over ``figures/data/main``.

The notebook asserts only what any honest run satisfies; the readings its prose and the report state about the
committed sweep are pinned here, so a change to the committed data fails loudly. Statistics follow REPORT.md:
seed-paired differences on one device, Holm's correction across the five tasks of a claim.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dcft_edu.experiments import analysis, runinfo
from dcft_edu.figures import main_results as fm

TASKS = ["cola", "sst2", "mrpc", "stsb", "rte"]


def holm(p: pd.Series) -> pd.Series:
    """Holm's step-down adjusted p-values (family = the entries of ``p``)."""
    order = p.sort_values()
    m = len(order)
    adjusted = np.minimum(1, np.maximum.accumulate([(m - i) * v for i, v in enumerate(order)]))
    return pd.Series(adjusted, index=order.index).reindex(p.index)


@pytest.fixture(scope="module")
def df():
    return fm.main_runs()


@pytest.fixture(scope="module")
def wide(df):
    return 100 * df.pivot_table(index=["task", "seed"], columns="label", values="best_metric")


def paired(wide: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per task: mean of the seed-paired differences a − b (×100), pairs below 0, paired t-test p, Holm p."""
    d = (wide[a] - wide[b]).dropna()
    out = pd.DataFrame({"mean": d.groupby("task").mean(), "below": (d < 0).groupby("task").sum(),
                        "p": d.groupby("task").apply(lambda x: stats.ttest_1samp(x, 0).pvalue)})
    out["holm"] = holm(out["p"])
    return out.loc[TASKS]


def test_sweep_is_complete_on_one_device(df):
    assert len(df) == 105  # 7 methods × 5 tasks × 3 seeds
    assert (df.groupby(["label", "task"])["seed"].nunique() == 3).all()
    assert {analysis.short_device(d) for d in df["device"]} == {"H100"} and set(df["scale"]) == {"gpu"}


def test_parameter_counts(df):
    ap = fm.main_table(df)["adapter params"]
    assert ap["LoRA r=1"] == 41472 and ap["DCFT k=8"] == 7488 and ap["LoRA r=1"] / ap["DCFT k=8"] == pytest.approx(5.54, abs=0.01)


def test_ranking_of_the_averages(df):
    avg = fm.main_means(df)["avg"]
    assert list(avg.sort_values(ascending=False).index) == [
        "full FT", "Delta-LoRA r=8 λ=0.5", "LoRA r=8", "LoRA r=1", "DCFT k=8", "DCFT k=2", "head only"]
    assert avg["DCFT k=8"] - avg["LoRA r=1"] == pytest.approx(-4.77, abs=0.01)
    assert avg["DCFT k=2"] - avg["LoRA r=1"] == pytest.approx(-4.84, abs=0.01)
    assert avg["Delta-LoRA r=8 λ=0.5"] - avg["LoRA r=8"] == pytest.approx(0.10, abs=0.01)


def test_dcft_trails_lora_r1(wide):
    k8 = paired(wide, "DCFT k=8", "LoRA r=1")
    assert (k8["mean"] < 0).all() and int(k8["below"].sum()) == 14  # 14 of 15 seed pairs; RTE 2/3
    assert k8["mean"].idxmin() == "cola" and k8.at["cola", "mean"] == pytest.approx(-11.53, abs=0.01)
    assert list(k8.index[k8["holm"] < 0.05]) == ["cola"]  # Holm across the 5 tasks: only CoLA is clear
    assert (k8.loc[["cola", "sst2", "mrpc"], "p"] < 0.05).all()  # uncorrected: 3 of 5
    k2 = paired(wide, "DCFT k=2", "LoRA r=1")
    assert list(k2.index[k2["holm"] < 0.05]) == ["cola"] and abs(k2.at["stsb", "mean"]) < 0.1


def test_delta_lora_vs_lora_is_within_noise(wide):
    dl = paired(wide, "Delta-LoRA r=8 λ=0.5", "LoRA r=8")
    assert (dl["holm"] > 0.05).all()
    assert dl.at["cola", "below"] == 0 and dl.at["cola", "p"] < 0.05  # CoLA: 3/3 pairs above, uncorrected only


def test_full_ft(df, wide):
    means = fm.main_means(df)
    assert means["avg"].idxmax() == "full FT" and means["cola"].idxmax() == "full FT"
    ff = paired(wide, "full FT", "LoRA r=8")
    assert ff.at["mrpc", "below"] == 3 and ff.at["mrpc", "mean"] == pytest.approx(-2.86, abs=0.01)


def test_dcft_underfits_and_moves_w_more(df):
    conv = fm.convergence_table(df)
    loss = conv["train loss last"].unstack("label")
    assert (loss["DCFT k=8"] > loss["LoRA r=1"]).all() and (loss["DCFT k=8"] > loss["LoRA r=8"]).all()
    best_last = conv["best = last"].groupby(level="label").mean()
    assert best_last["DCFT k=8"] > best_last["LoRA r=1"] and best_last["DCFT k=8"] > best_last["LoRA r=8"]
    rel = fm.similarity_frame(df).groupby(["task", "label"])["rel_change"].mean().unstack("label")
    assert (rel["DCFT k=8"] > rel["LoRA r=8"]).all() and (rel["DCFT k=2"] < rel["DCFT k=8"]).all()
    cola_first = fm.epoch_frame(df.query("task == 'cola' and method == 'dcft'")).query("epoch == 1")["metric"]
    assert (cola_first == 0).all()  # DCFT on CoLA after epoch 1: one class for every sentence


def test_committed_folder_can_be_pointed_at_a_copy(monkeypatch, tmp_path):
    """``$DCFT_EDU_COMMITTED``: how the notebooks are run against a copy with seed 2 removed."""
    import shutil

    shutil.copytree(runinfo.committed_results_dir() / "main", tmp_path / "main")
    for f in (tmp_path / "main").glob("*-s2-*.json"):
        f.unlink()
    monkeypatch.setenv(runinfo.COMMITTED_ENV, str(tmp_path))
    assert runinfo.committed_results_dir() == tmp_path
    assert len(fm.main_runs()) == 70 and set(fm.main_runs()["seed"]) == {0, 1}
