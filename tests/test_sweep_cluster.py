"""Sweeps beyond one process: workers spread over GPUs, runs submitted as cluster jobs (submitit)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from dcft_edu.experiments.sweep import load_results, main, run_sweep

GRID = {"task": ["rte", "mrpc"], "method": ["lora"], "seed": [0, 1, 2]}  # 6 runs


def visible_devices_train(run, progress=False, log=print):
    """A stand-in for trainer.train (top-level, so worker processes can unpickle it): records the GPU the
    worker process was given and which process it was."""
    time.sleep(0.3)  # long enough for every worker to take runs
    return {"key": run.key(), "config": run.to_dict(), "task": run.task, "method": run.method,
            "main_metric": "accuracy", "best": {"epoch": 1, "accuracy": 0.5}, "best_metric": 0.5,
            "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def test_workers_spread_over_gpus(tmp_path):
    run_sweep("g", GRID, tmp_path, workers=4, gpus=["0", "1"], train_fn=visible_devices_train, log=lambda m: None)
    df = load_results(tmp_path / "g")
    assert len(df) == 6
    per_worker = df.groupby("pid")["visible"].unique()
    assert all(len(v) == 1 for v in per_worker), "a worker process changed GPU"
    assert sorted(v[0] for v in per_worker) in (["0", "1"], ["0", "0", "1"], ["0", "1", "1"], ["0", "0", "1", "1"])
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the parent process is left alone


def test_submitit_jobs_resume(tmp_path, data_root):
    pytest.importorskip("submitit")
    # no SLURM here: submitit's AutoExecutor falls back to its LocalExecutor (one process per job). The command
    # runs as a user runs it, in a fresh interpreter, so nothing an earlier test left in this one can interfere.
    grid = tmp_path / "jobs.json"
    grid.write_text(json.dumps({"task": ["rte"], "method": ["lora"], "limit_train": [16], "limit_dev": [16],
                                "batch_size": [8], "max_length": [32]}))
    cmd = [sys.executable, "-m", "dcft_edu.experiments.sweep", str(grid), "--launcher", "submitit",
           "--job-gpus", "0", "--job-cpus", "1", "--results", str(tmp_path)]
    env = {**os.environ, "DCFT_EDU_DATA": str(data_root)}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "submitted 1 jobs" in first.stdout and "FAILED" not in first.stdout
    df = load_results(tmp_path / "jobs")
    assert len(df) == 1 and df["status"].tolist() == ["ok"] and df["method"].tolist() == ["lora"]
    assert list((tmp_path / ".submitit").iterdir()), "the job's logs are kept under RESULTS/.submitit"
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)  # a rerun: no job
    assert again.returncode == 0 and "0 to go" in again.stdout and "submitted" not in again.stdout


def test_gpus_option_errors(capsys):
    with pytest.raises(SystemExit):
        main(["smoke", "--gpus", ","])
    assert "expected GPU indices" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["smoke", "--gpus", "0,1", "--launcher", "submitit"])
    assert "--job-gpus" in capsys.readouterr().err
