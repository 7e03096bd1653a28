"""The committed stride sweep (``figures/data/stride``, ``cpu/stride``) and what notebook 11 and REPORT.md §11 say.

These pin the committed numbers: a change to the committed results fails here, loudly. The notebook itself
asserts only what any honest run satisfies.
"""
from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from dcft_edu.experiments.analysis import CPU_RESULTS, device_comparison, holm, paired_differences, short_device
from dcft_edu.figures.ablations import (ablation_results, checkerboard_contrast, grid_coverage, stride_deltas)

TASKS, K = ["cola", "mrpc", "stsb", "rte"], 8


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return ablation_results("stride").assign(dev=lambda d: d["device"].map(short_device))


@pytest.fixture(scope="module")
def means(df) -> pd.DataFrame:
    return 100 * df.pivot_table(index="s", columns="task", values="best_metric")[TASKS]


@pytest.fixture(scope="module")
def paired(df) -> pd.DataFrame:
    """Each s minus s = 8, same seed and GPU type, per task; Holm across the four tasks for each s."""
    p = paired_differences(df, "s", K, within=["task"])
    p["holm p"] = p.groupby(level="s")["paired t-test p"].transform(holm)
    return p


def test_coverage_and_devices(df):
    assert grid_coverage("stride")["present"].all() and len(df) == 60
    assert df.groupby("seed")["dev"].agg(set).to_dict() == {0: {"H200"}, 1: {"H100"}, 2: {"H100"}}
    reused = df[df["reused_from"].notna()]  # s = 8, seeds 1–2: the k = 8 runs of sweep kernel
    assert set(reused["s"]) == {8} and set(reused["seed"]) == {1, 2}


def test_seed0_rerun_of_s8_matches_main(df):
    main8 = ablation_results("main").query("method == 'dcft' and kernel_size == 8 and seed == 0").set_index("task")
    rerun = df.query("seed == 0 and s == 8").set_index("task")
    diff = (100 * (rerun["best_metric"] - main8["best_metric"])).reindex(TASKS).abs()
    assert (diff.drop("rte") < 1e-9).all() and 0 < diff["rte"] < 2  # identical but on RTE (H100 vs H200)


def test_s1_best_and_s8_low(means, paired):
    assert (means.idxmax() == 1).all() and (means.rank(ascending=False).loc[K] >= 4).all()
    for t in TASKS:
        m = means[t]
        assert m[1] > m[2] > m[4] > max(m[6], m[8])
    s1 = paired.xs(1, level="s")
    assert (s1["pairs > 0"] == "3/3").all()
    assert s1["mean"].round(1).to_dict() == {"cola": 9.2, "mrpc": 4.9, "rte": 3.0, "stsb": 2.6}
    assert (s1["holm p"] < 0.05).all()  # s = 1 beats s = 8 on every task after Holm


def test_s2_s4_ahead_mostly_and_s6_level(paired):
    ahead = sum(int(paired.loc[(t, s), "pairs > 0"].split("/")[0]) for t in TASKS for s in (2, 4))
    assert ahead == 23  # of 24 same-seed pairs
    for s in (2, 4):  # raw p < 0.05 on STS-B only; after Holm on none
        sub = paired.xs(s, level="s")
        assert list(sub.index[sub["paired t-test p"] < 0.05]) == ["stsb"] and (sub["holm p"] > 0.05).all()
    s6 = paired.xs(6, level="s")
    assert (s6["mean"].abs() < 1).all() and (s6["paired t-test p"] > 0.1).all()


def test_seed0_alone_vs_three_seeds(df, paired):
    p0 = df[df["seed"] == 0].pivot_table(index="s", columns="task", values="best_metric")
    assert p0["rte"].idxmax() == 2 and paired.loc[("rte", 2), "pairs > 0"] == "2/3"
    cola2 = [float(x) for x in paired.loc[("cola", 2), "minus s=8"].split(", ")]
    assert abs(cola2[0]) < 1 and min(cola2[1:]) > 5


def test_s8_fastest_on_the_h200(df):
    t = df[(df["seed"] == 0)].pivot_table(index="s", columns="task", values="train_time_s")[TASKS]
    slower = t.drop(index=K) / t.loc[K] - 1
    assert (t.idxmin() == K).all() and 0.01 < slower.min().min() and slower.max().max() < 0.23


def test_checkerboard_in_learned_delta():
    c = checkerboard_contrast(stride_deltas(), K, 6)
    assert (c.loc[6][2] > 1.2).all()  # s = 6: its 2-tap cells changed more than its 1-tap cells, every task
    assert c.drop(index=6, level="s")[[2, 4]].sub(1).abs().max().max() < 0.15  # control strides: even


def test_cola_on_a_cpu(df):
    cpu = ablation_results(f"{CPU_RESULTS}/stride")
    cola_cpu, cola_gpu = cpu[cpu["task"] == "cola"], df[df["task"] == "cola"]
    dev = device_comparison(cola_gpu, cola_cpu, ["s"])
    pairs = (100 * (cola_cpu.set_index(["s", "seed"])["best_metric"]
                    - cola_gpu.set_index(["s", "seed"])["best_metric"])).dropna()
    assert len(pairs) == dev["paired n"].sum() == 11
    assert dev.loc[8, "paired n"] == 3 and dev.loc[8, "CPU − GPU (same seed)"] < -2
    assert round(pairs.mean(), 1) == -1.2 and (pairs < 0).sum() == 8
    assert round(stats.ttest_1samp(pairs, 0.0).pvalue, 2) == 0.18 and pairs.abs().median() > 1.5
    for p in (paired_differences(cola_cpu, "s", K), paired_differences(cola_gpu[cola_gpu["seed"] > 0], "s", K)):
        assert (p.loc[[1, 2, 4], "pairs > 0"] == "2/2").all() and p.loc[6, "pairs > 0"] == "1/2"
        assert min(p.loc[1, "mean"], p.loc[2, "mean"]) > p.loc[4, "mean"] > 0 > p.loc[6, "mean"]
