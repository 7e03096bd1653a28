"""The experiments engine end to end: real MiniLM, real GLUE rows, every method (quick scale)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from dcft_edu.experiments.presets import PRESETS, make_run, total_optimizer_steps
from dcft_edu.experiments.train import main as train_cli
from dcft_edu.experiments.trainer import strip_model, train


@pytest.mark.parametrize("method", ["head", "full", "lora", "dcft", "delta_lora"])
def test_quick_run_learns(method, data_root):
    run = make_run("sst2", method, scale="quick", limit_train=128, epochs=2)
    result = train(run, progress=False, log=lambda m: None, eval_at_start=True)
    rec = strip_model(result)
    json.dumps(rec)  # JSON-ready
    assert 0.0 <= rec["best_metric"] <= 1.0 and rec["main_metric"] == "accuracy"
    assert rec["final"]["loss"] < rec["initial"]["loss"], "dev loss did not go down"
    assert rec["optimizer_steps"] == total_optimizer_steps(run)
    assert rec["samples_per_s"] > 0 and rec["peak_memory_mb"] > 0 and rec["scale"] == "quick"
    for key in ("device", "seed", "versions", "git_commit", "wall_time_s", "config"):
        assert key in rec
    if method in ("head", "full"):
        assert rec["adapter_params"] == 0
    else:
        assert 0 < rec["adapter_params"] < rec["trainable_params"]


def test_presets_and_make_run():
    assert PRESETS["quick"].epochs == 1
    run = make_run("rte", "delta_lora", scale="cpu")
    assert run.start_steps == round(0.128 * total_optimizer_steps(run))
    run = make_run("mrpc", "dcft", scale="gpu")
    # the recipe's lr, γ, warmup fraction; epochs cut to the ~20k-example budget (3668 × 5)
    assert (run.epochs, run.lr, run.orth_gamma, run.kernel_size, run.r) == (5, 1e-3, 0.1, 8, 1)
    assert run.limit_train is None and run.warmup_steps == round(0.1 * total_optimizer_steps(run))
    run = make_run("sst2", "delta_lora", scale="gpu")  # 67k rows: 3 epochs of the first 20000 // 3
    assert (run.epochs, run.limit_train) == (3, 6666)
    # SST-2's 1000 warmup steps of 24 × 2105 recipe steps, and K = 400 / 31.6k, as fractions of ours
    assert run.warmup_steps == round(1000 / (24 * 2105) * total_optimizer_steps(run))
    assert run.start_steps == round(0.013 * total_optimizer_steps(run))
    full = make_run("mrpc", "dcft", scale="gpu", epochs=30)  # the papers' full recipe is one override away
    assert full.epochs == 30
    assert make_run("rte", "dcft", stride=8).key() == make_run("rte", "dcft").key()  # s = k spelled two ways
    with pytest.raises(ValueError, match="unknown method 'adalora'"):
        make_run("rte", "adalora")
    with pytest.raises(ValueError, match="unknown scale"):
        make_run("rte", "lora", scale="huge")


def test_grad_accum_counts_real_steps(data_root):
    run = make_run("rte", "delta_lora", scale="quick", limit_train=48, batch_size=8, grad_accum=4, start_steps=0)
    rec = strip_model(train(run, progress=False, log=lambda m: None))
    assert rec["optimizer_steps"] == math.ceil(math.ceil(48 / 8) / 4) == 2


def test_train_cli(tmp_path, capsys, data_root):
    out = tmp_path / "r.json"
    assert train_cli(["--task", "RTE", "--method", "dcft", "--kernel-size", "4", "--limit-train", "32",
                      "--limit-dev", "32", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["kernel_size"] == 4 and rec["config"]["limit_train"] == 32
    assert rec["status"] == "ok" and rec["diverged_at"] is None
    with pytest.raises(SystemExit):
        train_cli(["--task", "qqp", "--method", "lora"])
    assert "invalid choice: 'qqp'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_cli(["--task", "rte", "--method", "dcft", "--kernel-size", "4", "--stride", "8"])
    assert "stride (8) > kernel_size (4)" in capsys.readouterr().err


def test_same_seed_same_run(data_root):
    # transformers.set_seed (Python, NumPy, torch) and the seeded loader: two runs of one config are identical,
    # Delta-LoRA's W moves included; its step post-hook fired once per optimizer step
    run = make_run("rte", "delta_lora", scale="quick", limit_train=48, limit_dev=16, batch_size=8, start_steps=1)
    a, b = (train(run, progress=False, log=lambda m: None) for _ in range(2))
    assert a["epochs"] == b["epochs"]
    sd_a, sd_b = a["_model"].state_dict(), b["_model"].state_dict()
    assert all(torch.equal(t, sd_b[n]) for n, t in sd_a.items())
    steps = {int(t) for n, t in sd_a.items() if n.endswith(".num_steps")}
    assert steps == {a["optimizer_steps"]} == {6}


def test_penalty_logged_apart_from_the_task_loss(data_root):
    # a huge γ: were γ·R in train_loss (as before), it would be ~1000× the task loss
    run = make_run("rte", "dcft", scale="quick", limit_train=32, limit_dev=16, batch_size=8, orth_gamma=1e3)
    ep = train(run, progress=False, log=lambda m: None)["epochs"][0]
    assert ep["train_loss"] == ep["train_task_loss"] < 2.0  # cross-entropy of 2 classes, γ·R left out
    assert ep["train_penalty"] > 100 * ep["train_loss"] and ep["dev_penalty"] > 100 * ep["dev_task_loss"]
    assert ep["dev_task_loss"] == ep["loss"]
    lora = make_run("rte", "lora", scale="quick", limit_train=32, limit_dev=16, batch_size=8)
    ep = train(lora, progress=False, log=lambda m: None)["epochs"][0]
    assert ep["train_penalty"] == ep["dev_penalty"] == 0.0 and ep["train_loss"] == ep["train_task_loss"]


def test_select_on_train_holdout(data_root):
    run = make_run("rte", "lora", scale="quick", limit_train=40, limit_dev=16, batch_size=8, epochs=2,
                   select_on="train_holdout")
    rec = strip_model(train(run, progress=False, log=lambda m: None))
    assert rec["holdout"] == {"fraction": 0.1, "seed": 0, "rows": 4}  # ⌈0.1 · 40⌉ rows never trained on
    assert rec["optimizer_steps"] == total_optimizer_steps(run) == 2 * math.ceil(36 / 8)
    by_holdout = max(rec["epochs"], key=lambda e: e["holdout_accuracy"])
    assert rec["selected"] == by_holdout and rec["selected_metric"] == by_holdout["accuracy"]  # dev score of it
    assert make_run("rte", "lora").key() != make_run("rte", "lora", select_on="train_holdout").key()
    with pytest.raises(ValueError, match="select_on='test'"):
        make_run("rte", "lora", select_on="test")


def test_fields_added_later_keep_the_committed_keys():
    # a committed result's config (written before classifier_dropout, dcft_init_std, select_on existed)
    from pathlib import Path

    from dcft_edu.experiments.presets import RunConfig

    f = next(Path(__file__).parents[1].joinpath("figures", "data", "main").glob("mrpc-dcft-s0-*.json"))
    rec = json.loads(f.read_text())
    assert RunConfig(**rec["config"]).legacy_key() == rec["key"]  # found under its schema-1 key
    assert RunConfig(**rec["config"], classifier_dropout=0.0).legacy_key() is None  # set: no schema-1 run had it


def test_paper_preset_and_gpu_deviations():
    from dcft_edu.experiments.presets import GPU_DEVIATIONS, gpu_deviations

    # the official scripts (docs/method_notes.md §1): DCFT scale α/r = 32/3 (CoLA), 16/2 (SST-2), 32/2; max length 320 on RTE
    cola, sst2, rte = (make_run(t, "dcft", scale="paper") for t in ("cola", "sst2", "rte"))
    assert cola.r == 1 and cola.lora_alpha / cola.r == 32 / 3 and sst2.lora_alpha == 8.0
    assert (rte.epochs, rte.limit_train, rte.max_length, rte.classifier_dropout, rte.warmup_steps) == (50, None, 320, 0.2, 200)
    assert (cola.max_length, cola.classifier_dropout, sst2.classifier_dropout) == (64, 0.1, 0.0)
    assert make_run("mrpc", "dcft", scale="paper").warmup_steps == round(0.1 * 30 * math.ceil(3668 / 32))
    assert make_run("rte", "lora", scale="paper").lora_alpha == 16.0  # the official scale is DCFT's only
    # GPU_DEVIATIONS explains exactly the fields where the gpu preset departs from the paper preset
    assert {d["field"] for d in gpu_deviations()} == set(GPU_DEVIATIONS)
    assert make_run("rte", "lora", scale="gpu", lr_factor=3).lr == pytest.approx(3 * 1.2e-3)
