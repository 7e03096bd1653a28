"""One run on two processes (DistributedDataParallel, gloo on the CPU) equals the single-process run.

Two ranks train on their halves of the very batches one process would draw, with the same global batch;
the per-epoch train loss, the dev metrics and the final weights (adapters, head, Delta-LoRA's moved W)
must match the single-process run to float tolerance, and be bitwise equal on the two ranks.
The model's own dropout is off (``hidden_dropout_prob = attention_probs_dropout_prob = 0``): with it on,
two ranks draw other masks than one process over the whole batch, and no two runs could be compared.
"""
from __future__ import annotations

import os
import socket

import pytest
import torch
from transformers import set_seed

from dcft_edu.experiments.models import load_model
from dcft_edu.experiments.presets import make_run
from dcft_edu.experiments.trainer import strip_model, train

#: what each method's run also exercises
RUNS = {
    "lora": {},
    "dcft": {"limit_train": 41},  # the orthogonal penalty; a last batch of 1 row: rank 1 runs a weight-0 stand-in
    "delta_lora": {"grad_accum": 2, "start_steps": 1},  # W moves after each real (accumulated) optimizer step
}


def _run(method: str):
    return make_run("rte", method, scale="quick", **{"limit_train": 40, "limit_dev": 16, "batch_size": 8, "epochs": 2,
                                                     "max_length": 32, **RUNS[method]})


def _train_without_dropout(method: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(result record, the trained tensors: adapter factors and buffers, adapted W, classifier)."""
    run = _run(method)
    set_seed(run.seed)  # as train() does before it loads a model: the same fresh head in every process
    model_and_tokenizer = load_model(run.task, run.model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    result = train(run, progress=False, log=lambda m: None, model_and_tokenizer=model_and_tokenizer)
    state = {n: t.detach().clone() for n, t in result["_model"].state_dict().items()
             if "lora_" in n or "base_layer" in n or "classifier" in n}
    return strip_model(result), state


def _ddp_worker(rank: int, world_size: int, port: int, out_dir) -> None:
    """One rank, set up as torchrun would: the trainer joins the group from these variables."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.save({m: _train_without_dropout(m) for m in RUNS}, out_dir / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path, data_root):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), tmp_path), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]  # written just above
    for method in RUNS:
        single, single_state = _train_without_dropout(method)
        (rec0, state0), (rec1, state1) = ranks[0][method], ranks[1][method]
        assert rec0["world_size"] == 2 and single["world_size"] == 1
        assert rec0["optimizer_steps"] == single["optimizer_steps"] > 0
        assert rec0["train_examples_seen"] == single["train_examples_seen"] == 2 * _run(method).limit_train
        for e0, e1, e in zip(rec0["epochs"], rec1["epochs"], single["epochs"], strict=True):
            assert e0 == e1, f"{method}: the ranks disagree on epoch {e['epoch']}"  # gathered metrics
            for k in ("train_loss", "loss", "accuracy"):
                assert e0[k] == pytest.approx(e[k], abs=1e-5), f"{method} epoch {e['epoch']}: {k}"
        assert state0.keys() == single_state.keys()
        for n, t in single_state.items():
            assert torch.equal(state0[n], state1[n]), f"{method}: {n} differs between the ranks"
            torch.testing.assert_close(state0[n], t, atol=1e-5, rtol=1e-5, msg=f"{method}: {n}")
        if method == "delta_lora":  # W itself moved, and identically on both ranks (checked above)
            moved = [n for n in single_state if n.endswith("base_layer.weight")]
            assert moved and any(not torch.equal(state0[n], ranks[0]["lora"][1][n]) for n in moved)


def test_batch_must_split_evenly(monkeypatch, data_root):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="batch_size 8 is the global batch.*not divisible by 3; use a multiple of 3"):
        train(make_run("rte", "lora", batch_size=8), progress=False, log=lambda m: None)
