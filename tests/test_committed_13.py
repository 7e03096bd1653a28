"""The committed numbers and claims behind notebook 13 (Delta-LoRA's λ and the collapse) and REPORT.md section 13.

Pinned over ``figures/data``: a change to the committed results fails here, loudly, never in the notebook
(which asserts only what any honest run satisfies). Pairs are same seed on one device; a claim over the tasks
is Holm-corrected across them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dcft_edu.experiments.analysis import CPU_RESULTS, TASK_LABELS, paired_differences
from dcft_edu.experiments.analysis import holm
from dcft_edu.experiments.runinfo import committed_results_dir
from dcft_edu.figures import delta_lora as fd

pytestmark = pytest.mark.skipif(not (committed_results_dir() / "delta_lambda").is_dir(), reason="no committed results")


def test_holm_matches_a_hand_computed_example():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


@pytest.fixture(scope="module")
def dl():
    return fd.sweep_results("delta_lambda")


@pytest.fixture(scope="module")
def ref():
    return fd.lora_reference()


@pytest.fixture(scope="module")
def vs0(dl):
    """Each λ against λ = 0 of the same task, seed and device (H200 seed 0, H100 seeds 1–2)."""
    return paired_differences(dl, "update_ratio", 0.0, within=["task"])


@pytest.fixture(scope="module")
def vs_lora(dl, ref):
    both = pd.concat([dl.assign(setting=[f"λ={x:g}" for x in dl["update_ratio"]]), ref.assign(setting="LoRA")],
                     ignore_index=True)
    return paired_differences(both, "setting", "LoRA", within=["task"])


@pytest.fixture(scope="module")
def col(dl):
    out = fd.collapse_check(pd.concat([dl, fd.sweep_results("scale_jump")], ignore_index=True))
    out["run"] = np.where(out["jump"], "twin", "Delta-LoRA")
    return out


def n_col(col, run, task, lam):
    return int(col.loc[(col["run"] == run) & (col["task"] == task) & (col["λ"] == lam), "collapsed"].sum())


def test_every_cell_has_three_seeds_and_known_devices(dl):
    cov = fd.coverage()
    assert cov.apply(lambda c: c.str.startswith("3/")).to_numpy().all()
    dev = dl.groupby(["update_ratio", dl["device"].map(lambda d: "H200" if "H200" in d else "H100")])["seed"]
    seeds = dev.apply(lambda s: tuple(sorted(set(s)))).to_dict()
    for lam in (0.0, 1.0, 2.0, 3.0, 5.0):  # seed 0 on an H200, seeds 1–2 on an H100
        assert seeds[(lam, "H200")] == (0,) and seeds[(lam, "H100")] == (1, 2)
    assert seeds[(0.5, "H100")] == (0, 1, 2)  # sweep main's Delta-LoRA, reused


def test_lambda_half_is_lora_within_noise(vs_lora, vs0):
    half = vs_lora.xs("λ=0.5", level="setting")  # all on one H100: 3 pairs per task
    assert (half["runs (seed device)"] == "0 H100, 1 H100, 2 H100").all()
    assert (half["mean"].abs() < 1.5).all()
    assert half.loc["cola", "pairs > 0"] == "3/3" and half.loc["cola", "paired t-test p"] == pytest.approx(0.038, abs=5e-4)
    assert holm(half["paired t-test p"]).min() > 0.05  # CoLA's p = 0.04 does not survive Holm over 4 tasks
    assert vs0.loc[("cola", 0.5), "pairs > 0"] == "2/2"  # seed 0 of λ = 0 ran on another GPU: 2 pairs


def test_rte_below_lambda_0_in_every_same_device_pair(vs0):
    rte = vs0.xs("rte").loc[[1.0, 2.0, 3.0, 5.0]]
    assert (rte["pairs > 0"] == "0/3").all()  # 12/12 pairs below λ = 0, each within one device
    diffs = [float(x) for s in rte["minus update_ratio=0"] for x in s.split(", ")]
    assert len(diffs) == 12 and max(diffs) < 0
    holm_p = {lam: holm(vs0.xs(lam, level="update_ratio")["paired t-test p"])["rte"] for lam in (1.0, 2.0, 3.0, 5.0)}
    assert holm_p[5.0] < 0.05 and all(holm_p[lam] > 0.05 for lam in (1.0, 2.0, 3.0))


def test_mrpc_and_stsb_below_at_large_lambda(vs0, vs_lora):
    assert all(vs0.loc[("mrpc", lam), "pairs > 0"] == "0/3" for lam in (2.0, 3.0, 5.0))
    assert vs_lora.loc[("stsb", ["λ=2", "λ=3", "λ=5"]), "mean"].max() < -80
    for lam in (2.0, 3.0, 5.0):  # STS-B's collapse is significant after Holm over the four tasks
        x = vs0.xs(lam, level="update_ratio")
        assert holm(x["paired t-test p"])["stsb"] < 0.01
    assert all(vs_lora.loc[("cola", f"λ={x:g}"), "pairs > 0"] == "2/2" for x in (1.0, 2.0))  # H100 seeds 1–2


def test_lambda_five_is_below_lambda_0_on_every_task_after_holm(vs0):
    x = vs0.xs(5.0, level="update_ratio")
    assert (x["pairs > 0"] == "0/3").all() and (holm(x["paired t-test p"]) < 0.05).all()


def test_best_lambda_per_task(dl):
    means = dl.groupby(["update_ratio", "task"])["best_metric"].mean().unstack("task")[fd.TASKS] * 100
    assert means.mean(axis=1).idxmax() in (0.0, 0.5) and means["cola"].idxmax() == 2.0
    two = paired_differences(dl, "update_ratio", 0.0, within=["task"]).xs(2.0, level="update_ratio")
    assert (two.drop("cola")["mean"] < 0).all() and two.loc["cola", "paired t-test p"] > 0.05
    seed0 = dl[dl["seed"] == 0].pivot(index="update_ratio", columns="task", values="best_metric")
    assert (seed0.loc[[1.0, 2.0, 3.0, 5.0]] < seed0.loc[0.0]).all().all()  # seed 0 alone: every λ ≥ 1 below λ = 0


def test_stsb_training_prior_is_just_outside_the_tolerance():
    c = fd.constant_predictor("stsb")
    assert 1.05 < c["train prior loss"] / c["loss"] < 1.10


def test_collapse_counts(col):
    assert not col.loc[col["λ"] <= 0.5, "collapsed"].any()
    assert col.loc[(col["λ"] == 1.0) & col["collapsed"], "task"].tolist() == ["RTE"]
    assert all(n_col(col, "Delta-LoRA", "STS-B", x) == 3 for x in (2.0, 3.0, 5.0))
    assert n_col(col, "twin", "STS-B", 2.0) == 3
    assert all(n_col(col, "Delta-LoRA", TASK_LABELS[t], 5.0) == 3 for t in fd.TASKS)
    assert [n_col(col, "Delta-LoRA", "RTE", x) for x in (1.0, 2.0, 3.0)] == [1, 2, 2]
    assert n_col(col, "Delta-LoRA", "MRPC", 3.0) == 1 and n_col(col, "Delta-LoRA", "CoLA", 3.0) == 0
    stsb = col[col["task"] == "STS-B"]
    assert stsb["collapsed"].sum() == (stsb["best ×100"] < 10).sum()
    assert stsb.loc[stsb["collapsed"], "best ×100"].max() < 8.8


def test_smallest_collapsing_lambda_per_learning_rate(dl, col):
    lr = dl.groupby("task")["lr"].first()
    d = col[(col["run"] == "Delta-LoRA") & col["collapsed"]]
    smallest = {t: d.loc[d["task"] == TASK_LABELS[t], "λ"].min() for t in sorted(fd.TASKS, key=lambda t: lr[t])}
    assert list(smallest.values()) == [5.0, 3.0, 1.0, 2.0]  # lr 8e-4 (CoLA), 1e-3, 1.2e-3, 2.2e-3 (STS-B)


def test_twin_collapses_where_delta_lora_does(col):
    at2 = col[col["λ"] == 2.0]
    tasks = {run: sorted(set(at2.loc[(at2["run"] == run) & at2["collapsed"], "task"])) for run in ("Delta-LoRA", "twin")}
    assert tasks["Delta-LoRA"] == tasks["twin"] == ["RTE", "STS-B"]
    assert n_col(col, "twin", "RTE", 2.0) == 3 and n_col(col, "Delta-LoRA", "RTE", 2.0) == 2


def test_cola_on_the_cpu_against_the_gpu(vs0):
    cdl = fd.sweep_results(f"{CPU_RESULTS}/delta_lambda")
    assert set(cdl["task"]) == {"cola"} and set(cdl["seed"]) == {1, 2}
    cpu = paired_differences(cdl, "update_ratio", 0.0)
    assert cpu.loc[0.5, "pairs > 0"] == "2/2" and cpu.loc[5.0, "pairs > 0"] == "0/2"
    assert vs0.loc[("cola", 5.0), "pairs > 0"] == "0/3"
    gpu = fd.sweep_results("delta_lambda").query("task == 'cola'")
    same = gpu[["update_ratio", "seed", "best_metric"]].merge(cdl[["update_ratio", "seed", "best_metric"]],
                                                              on=["update_ratio", "seed"], suffixes=(" GPU", " CPU"))
    calm = 100 * (same["best_metric CPU"] - same["best_metric GPU"])[same["update_ratio"] < 3.0]
    assert len(same) == 12 and len(calm) == 8
    assert abs(calm.mean()) < 1 and stats.ttest_1samp(calm, 0.0).pvalue > 0.05 and calm.abs().max() < 6
