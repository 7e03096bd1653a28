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
    run = make_run("sst2", method, scale="quick", limit_train=256, epochs=2)
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
