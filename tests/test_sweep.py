"""Sweeps resume after being killed, with nothing lost or duplicated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcft_edu.experiments.presets import make_run
from dcft_edu.experiments.sweep import expand_grid, grid_runs, load_results, main, run_sweep, run_sweeps

GRID = {"task": ["rte", "mrpc"], "method": ["lora", "dcft"], "seed": [0, 1, 2]}  # 12 runs


def fake_train(run, progress=False, log=print, delay=0.0):
    """Stands in for trainer.train: fast, deterministic, same record shape."""
    time.sleep(delay)
    metric = 0.5 + 0.01 * run.seed
    return {"key": run.key(), "config": run.to_dict(), "task": run.task, "method": run.method,
            "main_metric": "accuracy", "best": {"epoch": 1, "accuracy": metric}, "final": {"epoch": 1},
            "best_metric": metric, "_model": object()}


def test_expand_grid_and_keys():
    points = expand_grid(GRID)
    assert len(points) == 12 and points[0] == {"task": "rte", "method": "lora", "seed": 0}
    runs = grid_runs(GRID)
    assert len({r.key() for r in runs}) == 12  # every config has its own key
    assert make_run("rte", "lora").key() == make_run("RTE", "lora").key()  # stable, alias-proof
    assert make_run("rte", "lora", lr=1e-4).key() != make_run("rte", "lora").key()


def test_killed_sweep_resumes(tmp_path):
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from functools import partial\n"
        "from test_sweep import GRID, fake_train\n"
        "from dcft_edu.experiments.sweep import run_sweep\n"
        "run_sweep('s', GRID, %r, train_fn=partial(fake_train, delay=0.4), log=lambda m: None)\n"
    ) % (str(Path(__file__).parent), str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script])
    folder = tmp_path / "s"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sorted(p.name for p in folder.glob("*.json"))
    assert 3 <= len(done_before) < 12, "the sweep should have been killed part-way"
    for p in folder.glob("*.json"):  # every finished file is whole JSON
        json.loads(p.read_text())

    calls = []

    def counting(run, **kw):
        calls.append(run.key())
        return fake_train(run)

    paths = run_sweep("s", GRID, tmp_path, train_fn=counting, log=lambda m: None)
    assert len(calls) == 12 - len(done_before)  # only the missing runs were trained
    assert len(set(calls)) == len(calls)
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(p.name for p in paths)
    assert not list(folder.glob(".*.tmp"))
    df = load_results(folder)
    assert len(df) == 12 and df["key"].is_unique
    assert "_model" not in df.columns
    # a third run does nothing
    calls.clear()
    run_sweep("s", GRID, tmp_path, train_fn=counting, log=lambda m: None)
    assert calls == []


def test_sweep_cli_dry_run_and_errors(tmp_path, capsys):
    assert main(["smoke", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("todo") == 5
    with pytest.raises(SystemExit):
        main(["no-such-grid"])
    assert "neither a named grid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["smoke", "--set", "nonsense=1", "--dry-run"])
    assert "not a RunConfig field" in capsys.readouterr().err


def test_shared_configs_are_trained_once_and_copied(tmp_path):
    calls = []

    def counting(run, **kw):
        calls.append(run.key())
        return fake_train(run)

    a = {"task": ["rte"], "method": ["dcft"], "kernel_size": [2, 8], "seed": [0]}
    b = {"task": ["rte"], "method": ["dcft"], "kernel_size": [8], "stride": [8, 4], "seed": [0]}  # s=8 is a's k=8
    out = run_sweeps([("a", a), ("b", b)], tmp_path, train_fn=counting, log=lambda m: None)
    assert len(calls) == 3 == len(set(calls))  # k=2, k=8 (shared), k=8 s=4
    assert all(p.exists() for ps in out.values() for p in ps)
    copied = [json.loads(p.read_text()) for p in out["b"] if "reused_from" in p.read_text()]
    assert len(copied) == 1 and copied[0]["sweep"] == "b" and copied[0]["reused_from"].startswith("a/")
    # a later sweep with the same config copies it from disk instead of training it
    calls.clear()
    run_sweep("c", {"task": ["rte"], "method": ["dcft"], "seed": [0]}, tmp_path, train_fn=counting, log=lambda m: None)
    assert calls == []


def test_runs_in_the_cpu_results_folder_are_never_copied_into_gpu_sweeps(tmp_path):
    from dcft_edu.experiments.analysis import CPU_RESULTS

    calls = []

    def counting(run, **kw):
        calls.append(run.key())
        return fake_train(run)

    grid = {"task": ["rte"], "method": ["dcft"], "seed": [0]}
    run_sweep("stride", grid, tmp_path / CPU_RESULTS, train_fn=counting, log=lambda m: None)  # "on the CPU"
    run_sweep("stride", grid, tmp_path, train_fn=counting, log=lambda m: None)  # the GPU sweep trains it itself
    assert len(calls) == 2 and calls[0] == calls[1]
    assert "reused_from" not in next((tmp_path / "stride").glob("*.json")).read_text()


def test_seed_major_order_and_deadline(tmp_path):
    order = []

    def recording(run, **kw):
        order.append((run.method, run.seed))
        return fake_train(run)

    grids = [("x", {"task": ["rte"], "method": ["lora"], "seed": [0, 1]}),
             ("y", {"task": ["rte"], "method": ["dcft"], "seed": [0, 1]})]
    run_sweeps(grids, tmp_path, train_fn=recording, log=lambda m: None, seed_major=True)
    assert order == [("lora", 0), ("dcft", 0), ("lora", 1), ("dcft", 1)]
    # a deadline in the past starts nothing; the runs stay to do
    order.clear()
    paths = run_sweep("z", GRID, tmp_path / "fresh", train_fn=recording, log=lambda m: None, deadline=time.time() - 1)
    assert order == [] and not any(p.exists() for p in paths)


def test_kept_delta_is_saved_beside_the_result(tmp_path):
    import torch
    from safetensors.torch import load_file

    from dcft_edu.experiments.sweep import delta_path

    def with_delta(run, **kw):
        rec = fake_train(run)
        rec["_delta"] = {"bert.encoder.layer.0.attention.self.query": torch.full((4, 3), 0.5)}
        return rec

    grid = {"task": ["rte"], "method": ["dcft"], "seed": [0], "save_delta": ["layer.0.attention.self.query"]}
    (p,) = run_sweep("d", grid, tmp_path, train_fn=with_delta, log=lambda m: None)
    saved = load_file(str(delta_path(p)))
    assert list(saved) == ["bert.encoder.layer.0.attention.self.query"]
    assert saved["bert.encoder.layer.0.attention.self.query"].dtype == torch.float16
    assert "_delta" not in json.loads(p.read_text())
    # keeping a ΔW does not change what is trained, so not the key either
    assert make_run("rte", "dcft", save_delta="layer.0.attention.self.query").key() == make_run("rte", "dcft").key()


def test_parallel_workers_train_real_runs(data_root, tmp_path):
    grid = {"task": ["rte"], "method": ["lora", "head"], "seed": [0]}
    paths = run_sweep("par", grid, tmp_path, scale="quick", workers=2, log=lambda m: None,
                      limit_train=16, limit_dev=16)
    recs = [json.loads(p.read_text()) for p in paths]
    assert sorted(r["method"] for r in recs) == ["head", "lora"]
    assert all(0.0 <= r["best_metric"] <= 1.0 and r["sweep"] == "par" for r in recs)


def test_cli_writes_to_the_user_results_never_to_the_committed_ones(tmp_path, monkeypatch, capsys):
    from dcft_edu.experiments.runinfo import REPO_ROOT, committed_results_dir, user_results_dir

    monkeypatch.delenv("DCFT_EDU_RESULTS", raising=False)
    assert user_results_dir() == REPO_ROOT / "results" != committed_results_dir() == REPO_ROOT / "figures" / "data"
    monkeypatch.setenv("DCFT_EDU_RESULTS", str(tmp_path))  # a fresh clone: nothing of the user's yet
    assert main(["main", "--scale", "gpu", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 105 and all(line.startswith("todo") for line in out)
    assert main(["main", "--scale", "gpu", "--dry-run", "--results", str(committed_results_dir())]) == 0
    assert all(line.startswith("done") for line in capsys.readouterr().out.splitlines())


def test_status_column_and_diverged_runs_left_out_of_tables(tmp_path, monkeypatch, caplog):
    from dcft_edu.experiments import analysis

    folder = tmp_path / "main"
    folder.mkdir()
    old = {"config": {"task": "rte", "method": "lora", "seed": 0}, "task": "rte", "best_metric": 0.7,
           "best": {"epoch": 1, "accuracy": 0.7}}  # written before the status field existed
    diverged = {"config": {"task": "rte", "method": "lora", "seed": 1}, "task": "rte", "best_metric": None,
                "best": None, "final": None, "status": "diverged", "diverged_at": {"epoch": 1, "step": 3, "what": "x"}}
    (folder / "old.json").write_text(json.dumps(old))
    (folder / "diverged.json").write_text(json.dumps(diverged))
    df = load_results(folder)
    assert dict(zip(df["seed"], df["status"])) == {0: "ok", 1: "diverged"}
    monkeypatch.setattr(analysis, "committed_results_dir", lambda: tmp_path)
    with caplog.at_level("WARNING"):
        kept = analysis.load_sweep("main")
    assert list(kept["seed"]) == [0]
    assert "left out 1 diverged run(s) of 2 (diverged.json)" in caplog.text
