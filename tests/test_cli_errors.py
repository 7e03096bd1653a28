"""Every failure is loud, and before any long work: a diverged run, a bad option, a run the model cannot take."""
from __future__ import annotations

import json
import math

import pytest
import torch

from dcft_edu.experiments.models import load_model
from dcft_edu.experiments.presets import make_run
from dcft_edu.experiments.sweep import main as sweep_cli
from dcft_edu.experiments.train import main as train_cli
from dcft_edu.experiments.trainer import prepare_model, train

TINY = ["--limit-train", "16", "--limit-dev", "8", "--batch-size", "8", "--max-length", "32", "--no-progress"]


def test_diverged_run_is_marked_and_the_cli_fails(tmp_path, capsys, data_root):
    out = tmp_path / "r.json"
    code = train_cli(["--task", "rte", "--method", "lora", "--lr", "1e4", "--epochs", "2", "--out", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged at epoch " in err and "Lower --lr (e.g. --lr 1000)" in err
    rec = json.loads(out.read_text())
    assert rec["status"] == "diverged" and rec["best_metric"] is None and rec["best"] is None
    # step 2's training loss is finite (5e4) but its weights give a NaN dev loss: no dev score of that model is kept
    assert rec["diverged_at"] == {"epoch": 1, "step": 2, "what": "dev loss nan"} and rec["epochs"] == []


@pytest.mark.parametrize("broken", ["training loss", "gradient norm"])
def test_non_finite_loss_or_gradient_stops_before_the_step(broken, data_root):
    model, tokenizer = load_model("rte")
    w = model.classifier.weight
    if broken == "training loss":
        w.data[0, 0] = math.nan
    else:  # a finite loss whose gradient overflows: what clipping's norm sees
        w.register_hook(lambda g: g * math.inf)
    before = w.detach().clone()
    run = make_run("rte", "head", limit_train=8, limit_dev=8, batch_size=8, max_length=32)
    rec = train(run, progress=False, log=lambda m: None, model_and_tokenizer=(model, tokenizer))
    assert rec["status"] == "diverged" and rec["diverged_at"]["what"].startswith(broken)
    assert (rec["diverged_at"]["epoch"], rec["diverged_at"]["step"], rec["optimizer_steps"]) == (1, 1, 0)
    assert torch.equal(w.detach().nan_to_num(), before.nan_to_num())  # the bad step never reached W


@pytest.mark.parametrize("argv,message", [
    (["--limit-dev", "0"], "limit_dev=0: an empty split can neither train nor be evaluated"),
    (["--limit-train", "0"], "limit_train=0: an empty split"),
    (["--seed", "-1"], "seed=-1: a seed must be in [0, 2**32 - 1]"),
    (["--epochs", "0"], "epochs=0: must be >= 1"),
])
def test_bad_run_fields_fail_at_once(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        train_cli(["--task", "rte", "--method", "lora", *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_unwritable_output_folders_fail_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        train_cli(["--task", "rte", "--method", "lora", "--out", str(blocker / "r.json")])
    assert f"--out: cannot write to the folder {blocker}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_cli(["--task", "rte", "--method", "lora", "--out", str(tmp_path)])
    assert "is a folder: give a file name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep_cli(["smoke", "--results", str(blocker / "results")])
    assert f"--results: cannot write to the folder {blocker / 'results'}" in capsys.readouterr().err


def test_run_the_model_cannot_take_fails_naming_the_layer():
    model, _ = load_model("rte")  # MiniLM: blocks 0–5, 384 → 384 attention matrices
    with pytest.raises(ValueError, match=r"layers=\[0, 7\]: BertForSequenceClassification has 6 blocks "
                                         r"\(0..5\), so \[7\] do not exist"):
        prepare_model(model, make_run("rte", "lora", layers=[0, 7]))
    with pytest.raises(ValueError, match=r"bert.encoder.layer.0.attention.self.query: cannot adapt a 384 → 384 layer: "
                                         r"kernel_size k=512 is larger .*; or leave this module out of target_modules"):
        prepare_model(model, make_run("rte", "dcft", kernel_size=512))
