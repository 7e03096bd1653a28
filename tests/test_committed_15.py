"""The committed CPU partial study of the DCFT question (``figures/data/cpu/dcft_lr``) and what notebook 15,
the README and REPORT.md §15 say about it (protocol: ``docs/dcft_question_protocol.md``, amendments 1–5; part (c): ``figures/data/cpu/dcft_init``).

These pin the committed numbers: a change to the committed results fails here, loudly. The notebook itself
asserts only what any honest run satisfies.
"""
from __future__ import annotations

import pandas as pd
import pytest

from dcft_edu.experiments.analysis import dcft_question, holdout_tuned, short_device
from dcft_edu.figures.dcft_question import init_study_runs, lr_study_runs
from dcft_edu.figures.delta_lora import constant_predictor


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return lr_study_runs()


@pytest.fixture(scope="module")
def stsb(runs) -> pd.DataFrame:
    return runs[runs["task"] == "stsb"]


def test_coverage_one_cpu_and_provenance(runs):
    cells = runs.groupby(["task", "label", "lr_factor"])["seed"].apply(sorted)
    assert len(cells) == 4 * 2 * 4
    assert all(s == [0, 1, 2] for s in cells.loc[["stsb", "sst2"]]) and all(s == [0] for s in cells.loc[["mrpc", "rte"]])
    assert set(runs["device"].map(short_device)) == {"cpu"} and (runs["scale"] == "cpu").all()
    assert (runs["select_on"] == "train_holdout").all() and (runs["limit_train"] == 1000).all()
    assert runs["holdout"].map(lambda h: h["rows"]).eq(100).all()
    for col in ("git_commit", "versions", "seed", "wall_time_s", "model"):
        assert runs[col].notna().all()


def test_mrpc_and_rte_sit_at_the_floor(runs):
    """Amendment 2's reason: at 1,000 rows every MRPC and RTE run is within 3 points of the majority class."""
    for task in ("mrpc", "rte"):
        floor = constant_predictor(task)["accuracy"]
        acc = runs.loc[runs["task"] == task, "selected_metric"]
        assert (acc - floor).abs().max() < 0.03, task


def test_stsb_recipe_gap_and_held_out_choice(stsb):
    recipe = stsb[stsb["lr_factor"] == 1.0].pivot(index="seed", columns="label", values="selected_metric")
    gap = 100 * (recipe["DCFT k=8"] - recipe["LoRA r=1"])
    assert (gap < 0).all() and gap.mean() == pytest.approx(-17.9, abs=0.1)
    tuned = lr_study_runs(holdout_tuned(stsb.drop(columns=["label", "lr_factor"])))
    chosen = tuned.groupby("label")["lr_factor"].first()
    assert chosen["DCFT k=8"] == 3.0 and chosen["LoRA r=1"] == 1.0
    means = 100 * tuned.groupby("label")["selected_metric"].mean()
    assert means["DCFT k=8"] == pytest.approx(70.9, abs=0.05) and means["LoRA r=1"] == pytest.approx(70.8, abs=0.05)
    # LoRA at 3× the recipe lr and everything at 10× collapse to the constant predictor (|r| < 0.15)
    hi = stsb[(stsb["lr_factor"] == 10.0) | ((stsb["label"] == "LoRA r=1") & (stsb["lr_factor"] == 3.0))]
    assert (hi["selected_metric"].abs() < 0.15).all()


def test_stsb_decision_rule(stsb):
    v = dcft_question(None, None, stsb.drop(columns=["label", "lr_factor"]), None)
    b1, b2 = v.loc["b: DCFT − LoRA r=1, both lr tuned on held-out train"], v.loc["b: gap change, tuned − recipe lr"]
    assert b1["n"] == b2["n"] == 3
    assert b1["mean"] == pytest.approx(0.08, abs=0.01) and b1["p"] == pytest.approx(0.966, abs=0.001)
    assert b2["mean"] == pytest.approx(17.99, abs=0.01) and b2["same sign"] == 1.0
    assert b2["p"] == pytest.approx(0.0341, abs=0.0005) and b2["p_holm"] == pytest.approx(0.0681, abs=0.001)
    assert (v["verdict"] == "inconclusive").all()  # B2: Holm p > 0.05 although 3/3 pairs agree


B_NAMES = ("b: DCFT − LoRA r=1, both lr tuned on held-out train", "b: gap change, tuned − recipe lr")


def test_sst2_lr_study(runs):
    """Amendment 5: SST-2 — off the floor, DCFT's held-out choice 10× (the grid's edge), LoRA's 3×, level when tuned."""
    sst2 = runs[runs["task"] == "sst2"]
    dcft = sst2[sst2["label"] == "DCFT k=8"]
    assert (dcft["selected_metric"] - constant_predictor("sst2")["accuracy"]).min() > 0.03  # the floor guard passes
    tuned = lr_study_runs(holdout_tuned(sst2.drop(columns=["label", "lr_factor"])))
    chosen = tuned.groupby("label")["lr_factor"].first()
    assert chosen["DCFT k=8"] == 10.0 and chosen["LoRA r=1"] == 3.0
    means = 100 * tuned.groupby("label")["selected_metric"].mean()
    assert means["DCFT k=8"] == pytest.approx(78.17, abs=0.01) and means["LoRA r=1"] == pytest.approx(78.60, abs=0.01)
    recipe = sst2[sst2["lr_factor"] == 1.0].pivot(index="seed", columns="label", values="selected_metric")
    assert (100 * (recipe["DCFT k=8"] - recipe["LoRA r=1"])).mean() == pytest.approx(-11.35, abs=0.01)
    v = dcft_question(None, None, sst2.drop(columns=["label", "lr_factor"]), None)
    assert v.loc[B_NAMES[1], "mean"] == pytest.approx(10.93, abs=0.01) and (v["verdict"] == "inconclusive").all()


def test_two_task_lr_rule(runs):
    """Amendment 5's rule over STS-B and SST-2 (6 pairs, Holm over 2): tuning closes the gap (B2 > 0); B1 level."""
    two = runs[runs["task"].isin(["stsb", "sst2"])].drop(columns=["label", "lr_factor"])
    v = dcft_question(None, None, two, None)
    b1, b2 = (v.loc[k] for k in B_NAMES)
    assert (v["n"] == 6).all() and (v["tasks"] == "sst2,stsb").all()
    assert b2["mean"] == pytest.approx(14.46, abs=0.01) and b2["same sign"] == 1.0 and b2["tasks agree"]
    assert b2["p_holm"] == pytest.approx(0.0054, abs=0.0005) and b2["verdict"] == "> 0"
    assert b1["verdict"] == "inconclusive" and abs(b1["mean"]) < 0.5 and not b1["tasks agree"]
    # the exact sign-flip test beside the t-test: 6 of 6 positive pairs is the most extreme of 2^6 patterns
    assert b2["p_signflip"] == pytest.approx(2 / 64) and b2["p_signflip_holm"] == pytest.approx(0.0625)
    assert b2["holds under"] == "t-test only"  # README, lesson 15 and REPORT §15 say so


C_NAMES = ("c: B = 0 init − paper init (recipe γ)", "c: γ = 0 − recipe γ (paper init)",
           "c: B = 0 init and γ = 0 − paper init and γ")


@pytest.fixture(scope="module")
def init():
    return init_study_runs()


def test_init_study_coverage_one_cpu_and_provenance(init):
    """Amendments 3 and 4: the four DCFT cells on STS-B and SST-2, LoRA r = 1 beside them on SST-2, seeds 0–2, one CPU."""
    assert len(init) == 12 + 15 and set(init["task"]) == {"stsb", "sst2"} and (init["scale"] == "cpu").all()
    assert set(init["device"].map(short_device)) == {"cpu"} and (init["limit_train"] == 1000).all()
    cells = init.groupby(["task", "label", "cell"], dropna=False)["seed"].apply(sorted)
    assert len(cells) == 4 + 5 and all(s == [0, 1, 2] for s in cells)
    assert set(init.loc[init["method"] == "lora", "task"]) == {"sst2"}
    for col in ("git_commit", "versions", "seed", "wall_time_s", "model"):
        assert init[col].notna().all()
    # issue 18's logging: task loss and penalty apart, every epoch, train and dev (LoRA's penalty is 0)
    for epochs, method, gamma in zip(init["epochs"], init["method"], init["orth_gamma"]):
        assert all({"train_task_loss", "train_penalty", "dev_task_loss", "dev_penalty"} <= set(e) for e in epochs)
        penalised = method == "dcft" and gamma > 0
        assert all((e["train_penalty"] > 0) == penalised for e in epochs)


def test_init_and_penalty_on_stsb(init):
    """Amendment 3: part (c) on STS-B alone, 3 seeds — the B = 0 init helps, the penalty does not matter."""
    v = dcft_question(None, None, None, init[init["task"] == "stsb"])
    c1, c2, c3 = (v.loc[k] for k in C_NAMES)
    assert c1["mean"] == pytest.approx(8.07, abs=0.01) and c1["p_holm"] == pytest.approx(0.0094, abs=0.0005)
    assert c1["verdict"] == c3["verdict"] == "> 0" and c1["same sign"] == 1.0
    assert c2["verdict"] == "inconclusive" and abs(c2["mean"]) < 0.2
    assert c3["mean"] == pytest.approx(8.40, abs=0.01)


def test_init_and_penalty_on_two_tasks(init):
    """Amendment 4: the two-task rule (STS-B and SST-2, 6 pairs, Holm over 3), its floor guard and SST-2's gap."""
    sst2 = init[init["task"] == "sst2"]
    dcft = sst2[sst2["method"] == "dcft"]
    assert dcft["best_metric"].min() > constant_predictor("sst2")["accuracy"] + 0.03  # the floor guard passes
    v = dcft_question(None, None, None, init)
    c1, c2, c3 = (v.loc[k] for k in C_NAMES)
    assert (v["n"] == 6).all() and (v["tasks"] == "sst2,stsb").all()
    assert c1["mean"] == pytest.approx(5.79, abs=0.01) and c1["p_holm"] == pytest.approx(0.0097, abs=0.0005)
    assert c3["mean"] == pytest.approx(6.01, abs=0.01) and c3["p_holm"] == pytest.approx(0.0097, abs=0.0005)
    assert c1["verdict"] == c3["verdict"] == "> 0" and c1["same sign"] == c3["same sign"] == 1.0
    assert c2["verdict"] == "inconclusive" and abs(c2["mean"]) < 0.1
    assert c1["p_signflip"] == pytest.approx(2 / 64) and c1["p_signflip_holm"] > 0.05
    assert c1["holds under"] == c3["holds under"] == "t-test only"
    # the robustness check of the rule: final_metric gives the same verdicts
    assert list(dcft_question(None, None, None, init, metric="final_metric")["verdict"]) == list(v["verdict"])
    # SST-2 alone: B = 0 helps in every seed (+3.5) but Holm over its 3 comparisons does not call it
    v2 = dcft_question(None, None, None, sst2)
    assert v2.loc[C_NAMES[0], "mean"] == pytest.approx(3.52, abs=0.01) and (v2["verdict"] == "inconclusive").all()
    # SST-2's gap, DCFT (paper init, recipe γ) − LoRA r = 1 by seed: −10.9; every C mean is below a third of it
    paper = dcft[(dcft["dcft_init"] == "paper") & (dcft["orth_gamma"] > 0)].set_index("seed")["best_metric"]
    lora = sst2[sst2["method"] == "lora"].set_index("seed")["best_metric"]
    gap = 100 * (paper - lora)
    assert (gap < 0).all() and gap.mean() == pytest.approx(-10.93, abs=0.01)
    assert (v2["mean"] < abs(gap.mean()) / 3).all()


# --- (b) at the budgeted scale on CoLA, with PEFT's LoKr (amendment 6: figures/data/cpu/dcft_lr_budget) ---------

L_NAMES = ("b: LoKr − LoRA r=1, both tuned", "b: DCFT − LoKr, both tuned")


@pytest.fixture(scope="module")
def cola():
    from dcft_edu.figures.dcft_question import BUDGET_LR_SWEEP

    runs = lr_study_runs(sweep=BUDGET_LR_SWEEP)
    return runs[runs["task"] == "cola"]  # MRPC's runs, when they land in the same sweep, are their own family


def test_cola_coverage_one_cpu_one_commit(cola):
    """36 runs: 3 arms × lr {⅓, 1, 3, 10} × seeds 0–2, the gpu preset, one CPU, all at the amendment's commit."""
    cells = cola.groupby(["label", "lr_factor"])["seed"].apply(sorted)
    assert len(cola) == 36 and len(cells) == 3 * 4 and all(s == [0, 1, 2] for s in cells)
    assert set(cola["task"]) == {"cola"} and (cola["scale"] == "gpu").all()
    assert set(cola["device"].map(short_device)) == {"cpu"} and set(cola["git_commit"]) == {"a0988c4fa4fa54f2837c4eb825b0869c22f12016"}
    assert set(cola["lr_factor"]) == {0.333, 1.0, 3.0, 10.0}  # no arm chose 10×: the edge rule added no 30× runs
    for col in ("versions", "wall_time_s", "model", "holdout"):
        assert cola[col].notna().all()
    assert (cola.loc[cola["method"] == "lokr", "adapter_params"] == cola.loc[cola["method"] == "dcft", "adapter_params"].iloc[0]).all()


def test_cola_held_out_choices_and_collapse(cola):
    tuned = lr_study_runs(holdout_tuned(cola.drop(columns=["label", "lr_factor"])))
    chosen = tuned.groupby("label")["lr_factor"].first()
    assert chosen.to_dict() == {"DCFT k=8": 3.0, "LoKr k=8": 3.0, "LoRA r=1": 1.0}
    means = 100 * tuned.groupby("label")["selected_metric"].mean()
    assert means.round(1).to_dict() == {"DCFT k=8": 14.1, "LoKr k=8": 6.2, "LoRA r=1": 17.0}
    # MCC 0 is a constant prediction: every arm at 10×, LoRA already at 3×
    hi = cola[(cola["lr_factor"] == 10.0) | ((cola["label"] == "LoRA r=1") & (cola["lr_factor"] == 3.0))]
    assert (hi["selected_metric"] == 0).all()
    assert (100 * cola["selected_metric"]).max() > 5  # the floor guard passes: verdicts are drawn


def test_cola_decision_rule(cola):
    """Amendment 6's rule on CoLA (3 pairs, Holm over 4): only L1 is called, and under the t-test only."""
    v = dcft_question(None, None, cola.drop(columns=["label", "lr_factor"]), None)
    assert list(v.index) == list(B_NAMES) + list(L_NAMES) and (v["n"] == 3).all()
    b1, b2, l1, l2 = (v.loc[k] for k in list(B_NAMES) + list(L_NAMES))
    assert b1["mean"] == pytest.approx(-2.84, abs=0.01) and b1["p_holm"] == pytest.approx(0.164, abs=0.001)
    assert b2["mean"] == pytest.approx(12.76, abs=0.01) and b2["p"] == pytest.approx(0.051, abs=0.001)
    assert b2["p_holm"] == pytest.approx(0.153, abs=0.001) and b2["same sign"] == 1.0
    assert l1["mean"] == pytest.approx(-10.84, abs=0.01) and l1["p_holm"] == pytest.approx(0.021, abs=0.001)
    assert l2["mean"] == pytest.approx(8.00, abs=0.01) and l2["p_holm"] == pytest.approx(0.153, abs=0.001)
    assert list(v["verdict"]) == ["inconclusive", "inconclusive", "< 0", "inconclusive"]
    assert l1["holds under"] == "t-test only"
    # with 3 pairs the exact sign-flip p sits at its floor 2/8 for every comparison (all 3 pairs share a sign)
    assert (v["p_signflip"] == 0.25).all() and (v["p_signflip_holm"] == 1.0).all() and (v["same sign"] == 1.0).all()
