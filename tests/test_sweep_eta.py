"""A sweep's ETA beside [k/N], its closing summary, and --dry-run's totals and time estimate."""
from __future__ import annotations

import json

import pytest

from dcft_edu.experiments import sweep, sweep_eta
from dcft_edu.experiments.presets import make_run


def test_duration_and_eta():
    assert sweep_eta.duration(35.4) == "35 s" and sweep_eta.duration(250) == "4 min 10 s"
    assert sweep_eta.duration(7500) == "2 h 05 min"
    assert sweep_eta.eta_text(0, 10, started=0.0, now=100.0) == ""  # nothing finished: nothing to extrapolate
    assert sweep_eta.eta_text(10, 10, started=0.0, now=100.0) == ""
    # 4 runs in 100 s: 25 s each, 6 left → 150 s
    assert sweep_eta.eta_text(4, 10, started=0.0, now=100.0) == "  · ETA 2 min 30 s"


def fake_train(run, progress=False, log=print):
    if run.seed == 1:
        raise RuntimeError("boom")
    return {"key": run.key(), "config": run.to_dict(), "task": run.task, "method": run.method, "scale": run.scale,
            "main_metric": "accuracy", "best": {"epoch": 1, "accuracy": 0.5}, "final": {"epoch": 1},
            "best_metric": 0.5, "status": "ok", "wall_time_s": 12.0}


def test_sweep_prints_eta_and_a_closing_summary(tmp_path):
    lines = []
    grid = {"task": ["rte"], "method": ["lora"], "seed": [0, 2, 3]}
    sweep.run_sweep("a", grid, tmp_path, train_fn=fake_train, log=lines.append)
    progress = [m for m in lines if m.startswith("[")]
    assert len(progress) == 3 and "ETA" not in progress[0] and all("· ETA " in m for m in progress[1:])
    assert lines[-1].startswith("sweep: 3 trained, 0 failed, 0 skipped (already done), 0 left; wall ")
    lines.clear()  # seed 1 fails, seeds 0, 2 and 3 are done
    with pytest.raises(sweep.SweepFailed):
        sweep.run_sweep("a", {**grid, "seed": [0, 1, 2, 3]}, tmp_path, train_fn=fake_train, log=lines.append)
    assert [m for m in lines if m.startswith("sweep: ")][-1].startswith(
        "sweep: 0 trained, 1 failed, 3 skipped (already done), 0 left; wall ")


def _record(folder, run, wall, device_type="cuda"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run.key()}.json").write_text(json.dumps(
        {"config": run.to_dict(), "key": run.key(), "wall_time_s": wall, "device_type": device_type}))


def test_dry_run_estimate_from_recorded_wall_times(tmp_path):
    lora, dcft = make_run("rte", "lora", scale="gpu"), make_run("rte", "dcft", scale="gpu")
    for seed, wall in enumerate([100.0, 120.0, 300.0]):  # median 120 s
        _record(tmp_path / "main", make_run("rte", "lora", scale="gpu", seed=seed), wall)
    _record(tmp_path / "cpu", make_run("rte", "lora", scale="gpu", seed=0), 1000.0, "cpu")
    text = sweep_eta.dry_run_estimate([lora, lora, dcft], [tmp_path], "cuda", workers=4)
    assert "cuda (like this machine): 4 min 00 s for 2 of the 3 runs" in text
    assert "cpu: 33 min 20 s for 2 of the 3 runs" in text
    assert "unknown: 1 runs" in text and "4 workers take up to 4× less" in text
    assert "unknown, no recorded run" in sweep_eta.dry_run_estimate([dcft], [tmp_path], "cuda")
    assert sweep_eta.dry_run_estimate([], [tmp_path], "cpu") == "estimate: nothing to train"


def test_dry_run_cli_prints_totals_and_an_estimate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DCFT_EDU_COMMITTED", str(tmp_path / "committed"))
    _record(tmp_path / "committed" / "main", make_run("rte", "lora", scale="quick", seed=0), 30.0, "cpu")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert sweep.main(["smoke", "--dry-run", "--results", str(tmp_path / "results")]) == 0
    out, err = capsys.readouterr()
    assert all(line.startswith(("todo", "done")) for line in out.splitlines())  # stdout: one line per run
    assert "\ntotal: " in err and " to train" in err and "estimate, the sum of recorded wall times" in err
