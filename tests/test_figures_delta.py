"""dcft_edu.figures.delta_lora: tables of the λ/K ablations, the twin pairs, the identity checks and the two figures."""
from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dcft_edu import DeltaLoRAConfig, inject_adapters, register_delta_lora_hook
from dcft_edu.figures import delta_lora as fd
from dcft_edu.experiments.analysis import committed_results_dir
from dcft_edu.delta_lora import delta_lora_layers


def _row(task="rte", method="delta_lora", seed=0, lam=0.5, k=10, steps=100, best=0.6, jump=False, r=8,
         alpha=16.0, targets="all-linear", dropout=0.0, curve=(0.5, 0.6), device="NVIDIA H200"):
    epochs = [{"epoch": i + 1, "step": (i + 1) * steps // len(curve), "loss": 0.7, "train_loss": 0.6, "accuracy": m}
              for i, m in enumerate(curve)]
    return {"task": task, "method": method, "seed": seed, "update_ratio": lam, "start_steps": k,
            "optimizer_steps": steps, "best_metric": best, "main_metric": "accuracy", "epochs": epochs,
            "lora_scale_jump": jump, "r": r, "lora_alpha": alpha, "target_modules": targets, "lora_dropout": dropout,
            "device": device}


def test_planned_fraction_follows_make_run_rounding():
    assert fd.planned_fraction(0, 575) == 0.0
    assert fd.planned_fraction(58, 575) == 0.1  # round(57.5) = 58
    assert fd.planned_fraction(144, 575) == 0.25
    assert fd.planned_fraction(7, 575) is None  # the task's default K is none of the grid's fractions


def test_lora_reference_keeps_only_delta_lora_s_twin_configuration():
    main = pd.DataFrame([_row(method="lora", best=0.5), _row(method="lora", r=1), _row(method="lora", dropout=0.1),
                         _row(method="lora", jump=True), _row(method="dcft"), _row(method="lora", alpha=8.0)])
    ref = fd.lora_reference(main)
    assert len(ref) == 1 and ref["best_metric"].iloc[0] == 0.5


def test_lambda_table_has_n_per_cell_and_marks_missing():
    dl = pd.DataFrame([_row(lam=0.5, seed=s, best=b) for s, b in [(0, 0.60), (1, 0.62), (2, 0.64)]]
                      + [_row(lam=2.0, best=0.55)])
    ref = pd.DataFrame([_row(method="lora", seed=s, best=0.6) for s in (0, 1)])
    t = fd.lambda_table(dl, ref, tasks=["rte"])
    assert t.loc["RTE", "λ=0.5"] == "62.0 ± 2.0 (n=3)"
    assert t.loc["RTE", "λ=2"] == "55.0 (n=1)"
    assert t.loc["RTE", "λ=0"] == "missing"
    assert t.loc["RTE", "LoRA r=8"] == "60.0 ± 0.0 (n=2)"
    assert list(t.columns[1:]) == [f"λ={lam:g}" for lam in fd.LAMBDAS]


def test_k_runs_labels_the_grid_fractions_and_adds_the_default_k():
    dk = pd.DataFrame([_row(lam=0.5, k=k, steps=200) for k in (0, 20, 50, 100)])
    dl = pd.DataFrame([_row(lam=0.5, k=13, steps=200, seed=s) for s in (0, 1)] + [_row(lam=2.0, k=13, steps=200)])
    kr = fd.k_runs(dk, dl)
    assert sorted(kr["k_setting"].unique()) == sorted(["0 %", "10 %", "25 %", "50 %", "default"])
    assert (kr["k_setting"] == "default").sum() == 2  # only the λ of the K sweep
    np.testing.assert_allclose(kr.loc[kr["k_setting"] == "25 %", "k_frac"], 0.25)
    t = fd.k_table(kr, pd.DataFrame([_row(method="lora")]), tasks=["rte"])
    assert t.loc["RTE", "default K (steps)"] == "13 / 200 (6.5 %)"
    assert t.loc["RTE", "K=default"].endswith("(n=2)")
    with pytest.raises(ValueError, match="one λ"):
        fd.k_runs(pd.concat([dk, pd.DataFrame([_row(lam=2.0, k=0, steps=200)])]), dl)


def test_twin_pairs_match_task_seed_lambda_and_k():
    dl = pd.DataFrame([_row(lam=2.0, k=10, best=0.60, curve=(0.5, 0.60)), _row(lam=2.0, k=99, best=0.1),
                       _row(lam=0.0, k=10, best=0.58)])
    tw = pd.DataFrame([_row(method="lora", jump=True, lam=2.0, k=10, best=0.57, curve=(0.45, 0.57))])
    lo = pd.DataFrame([_row(method="lora", best=0.59), _row(method="lora", seed=1, best=0.1)])
    table = fd.twin_table(fd.twin_matches(dl, tw, lo))
    row = table.iloc[0]
    assert (row["Delta-LoRA"], row["twin"], row["LoRA"]) == pytest.approx((60.0, 57.0, 59.0))
    assert row["abs diff Delta–twin"] == pytest.approx(3.0)
    assert row["max abs diff per epoch"] == pytest.approx(5.0)
    assert row["abs diff λ=0–LoRA (noise)"] == pytest.approx(1.0)
    curves = fd.twin_curves(fd.twin_matches(dl, tw, lo))
    assert sorted(curves["variant"].unique()) == ["Delta-LoRA", "LoRA", "twin"] and len(curves) == 6


def test_twin_adam_step_ratio():
    t = np.arange(1, 300)
    np.testing.assert_allclose(fd.twin_adam_step_ratio(2.0, 0, t), 1.0)  # constant scale: Adam ignores it
    np.testing.assert_allclose(fd.twin_adam_step_ratio(0.0, 50, t), 1.0)  # λ = 0: no jump at all
    r = fd.twin_adam_step_ratio(2.0, 50, t)
    np.testing.assert_allclose(r[:50], 1.0)  # identical before K
    assert (r[50:] > 1).all() and (r < 3).all()  # larger steps after K, never the full factor 1+λ
    assert r[-1] < r.max()  # and fading as Adam forgets


def _toy_delta_lora(lam=2.0, k=2, steps=5, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("query", nn.Linear(16, 16))
    model.add_module("value", nn.Linear(16, 8))
    w0 = {n: m.weight.detach().clone() for n, m in model.named_children()}
    inject_adapters(model, DeltaLoRAConfig(r=2, lora_alpha=4, update_ratio=lam, start_steps=k,
                                           target_modules=("query", "value"), modules_to_save=()))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    register_delta_lora_hook(opt, model)
    x = torch.randn(32, 16)
    for _ in range(steps):
        model(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return model, w0


def test_identity_gap_is_rounding_after_k_and_catches_a_wrong_w0():
    model, w0 = _toy_delta_lora()
    gap = fd.delta_lora_identity_gap(model, w0)
    assert len(gap) == 2 and (gap["num_steps"] == 5).all()
    assert gap["gap"].max() < 1e-6 and gap["scale"].min() > 1e-3
    wrong = {n: w + 1e-3 for n, w in w0.items()}
    assert fd.delta_lora_identity_gap(model, wrong)["gap"].min() > 5e-4
    early, w0e = _toy_delta_lora(k=10, steps=3)
    with pytest.raises(ValueError, match="train past K"):
        fd.delta_lora_identity_gap(early, w0e)


def test_effective_change_gap():
    model, w0 = _toy_delta_lora()
    assert fd.effective_change_gap(model, copy.deepcopy(model), w0) == 0.0
    other = copy.deepcopy(model)
    with torch.no_grad():
        for _, layer in delta_lora_layers(other):
            layer.lora_B.mul_(1.1)
    assert fd.effective_change_gap(other, model, w0) > 0.01


def test_constant_predictor_and_collapse_check():
    cp = fd.constant_predictor("rte")
    assert cp["accuracy"] == pytest.approx(146 / 277, abs=1e-3)  # RTE dev: its majority class
    assert cp["loss"] < np.log(2) + 1e-9  # the entropy of a two-class prior is at most ln 2
    assert np.isnan(fd.constant_predictor("stsb")["accuracy"]) and fd.constant_predictor("stsb")["loss"] > 1
    const_train = fd.constant_predictor("rte", "train")["loss"]
    runs = pd.DataFrame([_row(), _row(lam=5.0)])
    runs.at[1, "epochs"] = [{"epoch": 1, "step": 10, "loss": cp["loss"], "train_loss": const_train, "accuracy": 0.5}]
    col = fd.collapse_check(runs)
    assert col["collapsed"].tolist() == [False, True]
    # the training prior is never a better constant on dev than dev's own prior (Gibbs; Var ≤ any MSE) ...
    for task in ("rte", "stsb"):
        for split in ("dev", "train"):
            c = fd.constant_predictor(task, split)
            assert c["train prior loss"] >= c["loss"] - 1e-12
    assert fd.constant_predictor("rte", "train")["train prior loss"] == pytest.approx(const_train)
    # ... and a collapsed STS-B model, which predicts the training mean, sits 5.1 % above the best dev constant:
    # the dev test must accept the training prior's dev loss too, or such a run passes for a learning one
    st, st_train = fd.constant_predictor("stsb"), fd.constant_predictor("stsb", "train")["loss"]
    assert st["train prior loss"] / st["loss"] > 1.05
    flat = pd.DataFrame([_row(lam=5.0)]).assign(task="stsb", main_metric="pearson")
    flat.at[0, "epochs"] = [{"epoch": 1, "step": 10, "loss": st["train prior loss"], "train_loss": st_train}]
    c = fd.collapse_check(flat).iloc[0]
    assert abs(c["dev / constant"] - 1) > 0.05 and c["dev / train prior"] == pytest.approx(1.0) and c["collapsed"]



@pytest.mark.full_data
@pytest.mark.parametrize("task,split", list(fd.FULL_SPLIT_LABELS))
def test_full_split_labels_match_the_data(task, split):
    from dcft_edu.experiments.data import load_glue

    y = np.asarray(load_glue(task, split)["label"], dtype=np.float64)
    stats = fd.FULL_SPLIT_LABELS[(task, split)]
    if isinstance(stats, dict):
        assert (stats["mean"], stats["var"]) == pytest.approx((y.mean(), y.var()), rel=1e-12)
    else:
        assert np.bincount(y.astype(int)).tolist() == stats

needs_results = pytest.mark.skipif(not (committed_results_dir() / "delta_lambda").is_dir(), reason="no committed results")


@needs_results
def test_tables_and_coverage_from_the_committed_results():
    cov = fd.coverage()
    assert cov.shape == (len(fd.LAMBDAS) + len(fd.K_FRACTIONS) + len(fd.TWIN_LAMBDAS), len(fd.TASKS))
    assert cov.stack().str.match(r"^\d/3").all()
    t = fd.lambda_table()
    assert t.shape == (4, 1 + len(fd.LAMBDAS)) and t.stack().str.contains(r"\(n=\d\)|missing").all()
    assert len(fd.twin_table()) == len(fd.sweep_results("scale_jump"))


@needs_results
@pytest.mark.parametrize("draw", [fd.draw_delta_lora_lambda_k, fd.draw_delta_lora_twin])
def test_figures_draw_from_the_committed_results(draw):
    fig = draw()
    try:
        assert len([ax for ax in fig.axes if ax.has_data()]) == 8
        assert fig._suptitle is not None and "MiniLM" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
