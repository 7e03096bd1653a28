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

from dcft_edu.presets import make_run
from dcft_edu.sweep import expand_grid, grid_runs, load_results, main, run_sweep

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
        "from dcft_edu.sweep import run_sweep\n"
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
