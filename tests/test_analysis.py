"""Result tables: mean ± std over seeds, the papers' layout, the best λ."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from dcft_edu.experiments.analysis import best_lambda, best_lambda_of, cell, device_comparison, mean_std, paired_differences, method_label, summarize, wide_table
from dcft_edu.experiments.sweep import load_results
from dcft_edu.experiments.trainer import effective_weights, weight_similarity


def rows():
    out = []
    for task, base in (("rte", 0.6), ("mrpc", 0.8)):
        for method, extra, bump in (("lora", {"r": 8}, 0.0), ("dcft", {"kernel_size": 8, "stride": None}, -0.1)):
            for seed in range(3):
                out.append({"task": task, "method": method, "seed": seed, "best_metric": base + bump + 0.01 * seed,
                            "adapter_params": 100, **extra})
    return pd.DataFrame(out)


def test_summarize_mean_std_n():
    s = summarize(rows())
    assert len(s) == 4 and set(s["n"]) == {3}
    rte_lora = s[(s.task == "rte") & (s.label == "LoRA r=8")].iloc[0]
    assert rte_lora["mean"] == pytest.approx(61.0) and rte_lora["std"] == pytest.approx(1.0)
    t = wide_table(s)
    assert list(t.columns) == ["MRPC", "RTE", "Avg."]
    assert t.loc["DCFT k=8", "RTE"] == "51.0 ± 1.0"
    assert t.loc["LoRA r=8", "Avg."] == "71.0"


def test_labels_and_formatting():
    assert method_label({"method": "dcft", "kernel_size": 8, "stride": 4}) == "DCFT k=8 s=4"
    assert method_label({"method": "dcft", "kernel_size": 8, "stride": float("nan")}) == "DCFT k=8"
    assert method_label({"method": "delta_lora", "r": 8, "update_ratio": 0.5}) == "Delta-LoRA r=8 λ=0.5"
    assert mean_std(71.23, float("nan"), 1) == "71.2"
    assert mean_std(float("nan"), 0.0, 0) == "—"
    assert cell(71.234, 1.26, 3) == "71.2 ± 1.3 (n=3)"
    assert cell(49.8, float("nan"), 1) == "49.8 (n=1)"  # one seed: n, no std
    assert cell(float("nan"), float("nan"), 0) == "missing"


def test_device_comparison_pairs_same_config_and_seed():
    gpu = pd.DataFrame({"s": [8, 8, 8, 1], "seed": [0, 1, 2, 0], "best_metric": [0.10, 0.12, 0.08, 0.20]})
    cpu = pd.DataFrame({"s": [8, 8, 1, 1], "seed": [0, 1, 1, 2], "best_metric": [0.07, 0.10, 0.15, 0.25]})
    t = device_comparison(gpu, cpu, ["s"])
    assert t.loc[8, "GPU"] == "10.0 ± 2.0 (n=3)" and t.loc[8, "CPU seeds"] == "0,1"
    # only seeds 0 and 1 of s = 8 ran on both: (−3 + −2) / 2
    assert t.loc[8, "CPU − GPU (same seed)"] == pytest.approx(-2.5) and t.loc[8, "paired n"] == 2
    # s = 1: no seed ran on both devices, so no paired difference
    assert t.loc[1, "paired n"] == 0 and pd.isna(t.loc[1, "CPU − GPU (same seed)"])
    assert t.loc[1, "CPU"] == "20.0 ± 7.1 (n=2)"


def test_paired_differences_pair_within_seed_and_device():
    df = pd.DataFrame({"s": [8, 8, 8, 1, 1, 1, 4],
                       "seed": [0, 1, 2, 0, 1, 2, 5],
                       "device": ["cuda (NVIDIA H200)", "cpu (x86_64)", "cpu (x86_64)",
                                  "cuda (NVIDIA H200)", "cpu (x86_64)", "cpu (x86_64)", "cpu (x86_64)"],
                       "best_metric": [0.10, 0.06, 0.04, 0.20, 0.18, 0.13, 0.5]})
    t = paired_differences(df, "s", 8)
    assert list(t.index) == [1]  # s = 4's seed 5 has no s = 8 partner: left out
    assert t.loc[1, "minus s=8"] == "+10.0, +12.0, +9.0" and t.loc[1, "runs (seed device)"] == "0 H200, 1 cpu, 2 cpu"
    assert t.loc[1, "metric ×100"] == "20.0, 18.0, 13.0"
    assert t.loc[1, "mean"] == pytest.approx(31 / 3) and t.loc[1, "pairs > 0"] == "3/3"
    assert 0 < t.loc[1, "paired t-test p"] < 0.01
    assert "minus k=default" in paired_differences(df.assign(k=["default"] * 3 + ["10 %"] * 4), "k", "default")
    # a CPU run is never paired with a GPU reference of the same seed
    t = paired_differences(df.drop(index=[1]), "s", 8)
    assert t.loc[1, "pairs > 0"] == "2/2"
    # within=: one table per group, the group's key leading the index
    both = pd.concat([df.assign(task="rte"), df.assign(task="mrpc")])
    w = paired_differences(both, "s", 8, within=["task"])
    assert w.index.names == ["task", "s"] and w.loc["rte"].equals(paired_differences(df, "s", 8))
    # no setting with a partner: an empty table with the same columns, not an error
    t = paired_differences(df[df["s"] != 8], "s", 8)
    assert t.empty and t.index.name == "s" and "minus s=8" in t.columns


def test_best_lambda(tmp_path):
    folder = tmp_path / "delta_lambda"
    folder.mkdir()
    for lam, metric in ((0.0, 0.9), (0.5, 0.7), (2.0, 0.6)):
        for task in ("rte", "mrpc"):
            rec = {"config": {"task": task, "method": "delta_lora", "update_ratio": lam, "seed": 0},
                   "best": {"epoch": 1, "accuracy": metric}, "best_metric": metric, "task": task}
            (folder / f"{task}-{lam}.json").write_text(json.dumps(rec))
    assert best_lambda(folder) == 0.5  # λ = 0 is plain LoRA: left out unless asked for
    assert best_lambda(folder, positive=False) == 0.0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no results"):
        best_lambda(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no folder"):  # a folder that does not exist is refused, not empty
        best_lambda(tmp_path / "missing")
    runs = load_results(folder)  # the same choice from runs already loaded (the λ/K figure's subtitle)
    assert best_lambda_of(runs) == 0.5 and best_lambda_of(runs, positive=False) == 0.0
    with pytest.raises(ValueError, match="no results in these runs"):
        best_lambda_of(runs[runs["update_ratio"] > 5])


def test_weight_similarity_of_effective_weights():
    from dcft_edu import LoRAConfig, inject_adapters
    from dcft_edu.experiments.models import tiny_model

    model = tiny_model("bert")
    before = effective_weights(model)
    assert before and all(n.endswith((".query", ".value")) for n in before)
    model = inject_adapters(model, LoRAConfig(r=2, target_modules=("query",)))
    for name, w in effective_weights(model).items():  # B = 0: the adapter changes nothing yet
        torch.testing.assert_close(w, before[name])
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "lora_B"):
                m.lora_B.normal_()
    after = effective_weights(model)
    sim = weight_similarity(before, after)
    for name, s in sim.items():
        w0, w = before[name].flatten().double(), after[name].flatten().double()
        assert s["cosine"] == pytest.approx(float(w0 @ w / (w0.norm() * w.norm())))
        moved = name.endswith(".query")
        assert (s["rel_change"] > 1e-3) == moved and (s["cosine"] < 1 - 1e-9) == moved


def test_holm_step_down():
    from dcft_edu.experiments.analysis import holm

    # sorted 0.01, 0.02, 0.03, 0.04 → 4·0.01, 3·0.02, max(0.06, 2·0.03), max(0.06, 1·0.04); input order kept
    assert holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.01, float("nan"), 0.04])  # NaN is not a test: m = 2
    assert out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04) and pd.isna(out[1])


def study_frames(gap_paper):
    """Synthetic study runs: DCFT trails LoRA r=1 by 5 points at the gpu preset, by ``gap_paper`` at the paper one."""
    from dcft_edu.experiments.presets import TASK_RECIPES

    def run(task, method, seed, metric, **kw):
        base = {"task": task, "method": method, "seed": seed, "device": "NVIDIA H200", "kernel_size": 8,
                "stride": None, "r": 1 if method == "dcft" else kw.pop("r", 1), "best_metric": metric,
                "select_on": "dev", "lr": TASK_RECIPES[task].lr, "dcft_init": "paper", "orth_gamma": 0.1,
                "main_metric": "accuracy"}
        return {**base, **kw}

    noise, noise2 = [0.002, -0.001, 0.0], [0.003, -0.003, 0.001]  # same mean: the pairs' differences average 0
    ref, paper, lr, init = [], [], [], []
    for task in ("cola", "mrpc", "stsb", "rte"):
        for s in range(3):
            e, e2 = noise[s], noise2[s]
            ref += [run(task, "lora", s, 0.80 + e), run(task, "dcft", s, 0.75 + e)]
            paper += [run(task, "lora", s, 0.82 + e), run(task, "lora", s, 0.83 + e2, r=8),
                      run(task, "dcft", s, 0.82 + gap_paper + e2)]
            for f, dcft_holdout in ((1, 0.70), (10, 0.79)):  # DCFT's held-out score prefers 10× the recipe lr
                lr_kw = dict(lr=f * TASK_RECIPES[task].lr, select_on="train_holdout")
                lr += [run(task, "lora", s, 0.8, selected={"holdout_accuracy": 0.8 - 0.01 * f}, selected_metric=0.80 + e, **lr_kw),
                       run(task, "dcft", s, 0.8, selected={"holdout_accuracy": dcft_holdout},
                           selected_metric=(0.75 + e if f == 1 else 0.80 + e2), **lr_kw)]
    for task in ("mrpc", "rte"):
        for s in range(3):
            init += [run(task, "dcft", s, 0.75 + noise[s]), run(task, "dcft", s, 0.75 - noise[s], orth_gamma=0.0),
                     run(task, "dcft", s, 0.75 + noise[s], dcft_init="zero"),
                     run(task, "dcft", s, 0.75, dcft_init="zero", orth_gamma=0.0)]
    return [pd.DataFrame(x) for x in (ref, paper, lr, init)]


def test_dcft_question_applies_the_rule():
    from dcft_edu.experiments.analysis import dcft_question, holdout_tuned

    t = dcft_question(*study_frames(gap_paper=0.0))
    assert t.loc["a: gap change, paper − gpu preset (budget)", "mean"] == pytest.approx(5.0)
    assert t.loc["a: gap change, paper − gpu preset (budget)", "verdict"] == "> 0"
    assert t.loc["a: DCFT − LoRA r=1, paper preset", "verdict"] == "inconclusive"  # no gap left: nothing to reject
    assert t.loc["a: LoRA r=8 − r=1, paper preset (capacity)", "verdict"] == "> 0"
    # (b): lr chosen on held-out train rows: DCFT 10× (its dev score then matches LoRA's), LoRA 1×
    assert t.loc["b: gap change, tuned − recipe lr", "mean"] == pytest.approx(5.0)
    assert t.loc["b: gap change, tuned − recipe lr", "verdict"] == "> 0"
    assert t.loc["c: B = 0 init − paper init (recipe γ)", "mean"] == pytest.approx(0.0)
    assert t.loc["c: γ = 0 − recipe γ (paper init)", "verdict"] == "inconclusive"
    assert (t["p_holm"].dropna() >= t["p"].dropna()).all() and (t["n"] > 0).all()
    tuned = holdout_tuned(study_frames(0.0)[2])
    assert set(tuned.groupby("label")["lr_factor"].first().round(6)) == {1.0, 10.0}
    # the gap persists at the paper preset: the budget change is 0, the gap itself clearly < 0
    t = dcft_question(*study_frames(gap_paper=-0.05))
    assert t.loc["a: DCFT − LoRA r=1, paper preset", "verdict"] == "< 0"
    assert t.loc["a: gap change, paper − gpu preset (budget)", "verdict"] == "inconclusive"


def test_dcft_question_with_sweeps_still_to_run():
    """A partial study (the CPU fallback: (b) alone) keeps only its comparisons, Holm-corrected over those."""
    from dcft_edu.experiments.analysis import dcft_question

    ref, paper, lr, init = study_frames(gap_paper=0.0)
    full = dcft_question(ref, paper, lr, init)
    t = dcft_question(None, None, lr, None)
    assert list(t.index) == [c for c in full.index if c.startswith("b:")]
    assert t.loc["b: gap change, tuned − recipe lr", "mean"] == pytest.approx(5.0)
    assert (t["p_holm"] <= full.loc[t.index, "p_holm"] + 1e-12).all()  # a smaller family: no larger correction
    assert "a: gap change, paper − gpu preset (budget)" not in dcft_question(None, paper, None, None).index
    with pytest.raises(ValueError, match="every sweep is None"):
        dcft_question(None, None, None, None)


def test_holm_steps_down_and_keeps_order():
    import numpy as np

    from dcft_edu.experiments.analysis import holm

    adj = holm(pd.Series({"cola": 0.04, "mrpc": 0.01, "stsb": 0.03, "rte": float("nan")}))
    # three tests: 0.01·3, 0.03·2, then max(0.04·1, 0.06): monotone; NaN stays
    assert adj[["mrpc", "stsb", "cola"]].round(10).tolist() == [0.03, 0.06, 0.06] and np.isnan(adj["rte"])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def test_sign_flip_p_is_exact():
    """All 2ⁿ sign patterns: 3 pairs of one sign give 2/8, 6 give 2/64; mixed signs count the patterns."""
    import numpy as np

    from dcft_edu.experiments.analysis import sign_flip_p

    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(0.25)
    assert sign_flip_p([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]) == pytest.approx(2 / 64)
    # |±1 ±2 ±3| ≥ 2 in 6 of the 8 patterns
    assert sign_flip_p([1.0, -2.0, 3.0]) == pytest.approx(0.75)
    assert np.isnan(sign_flip_p([1.0]))


def test_dcft_question_reports_both_tests_and_lokr():
    """Every row carries the sign-flip p beside the t-test's; with 3 pairs a clear verdict is the t-test's alone.
    LoKr runs in (b) add LoKr − LoRA and DCFT − LoKr (both tuned) to the family."""
    from dcft_edu.experiments.analysis import dcft_question
    from dcft_edu.experiments.presets import TASK_RECIPES

    _, _, lr, _ = study_frames(gap_paper=0.0)
    lr = lr[lr["task"] == "cola"]
    lokr = lr[lr["method"] == "dcft"].assign(method="lokr")
    lokr["selected_metric"] = lokr["selected_metric"] - 0.10  # LoKr 10 points below DCFT at every lr
    t = dcft_question(None, None, pd.concat([lr, lokr], ignore_index=True), None)
    assert list(t.index[-2:]) == ["b: LoKr − LoRA r=1, both tuned", "b: DCFT − LoKr, both tuned"]
    assert t.loc["b: DCFT − LoKr, both tuned", "mean"] == pytest.approx(10.0)
    assert (t["p_signflip"] >= 0.25 - 1e-12).all() and (t["n"] == 3).all()
    assert (t["p_signflip_holm"] >= t["p_signflip"]).all()
    clear = t[t["verdict"] != "inconclusive"]
    assert len(clear) and (clear["holds under"] == "t-test only").all()
    assert (t.loc[t["verdict"] == "inconclusive", "holds under"] == "").all()
    assert TASK_RECIPES["cola"].lr == 8e-4


def test_two_looks_raise_the_false_positive_rate():
    """Adding a task after an inconclusive first look (amendments 2 → 5) is optional stopping: more false verdicts."""
    from dcft_edu.experiments.analysis import two_look_false_positive_rate

    r = two_look_false_positive_rate(n_sim=20_000, seed=0)
    assert r["two_looks"] > r["one_look"] + 0.01 and r["two_looks"] >= r["first_look"]
    assert 0.01 < r["one_look"] < 0.05  # one planned look stays at or below α
