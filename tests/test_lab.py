"""Lab mode: the TRAIN switch, lab grids inside the committed ones, runs kept out of figures/, yours vs committed."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import dcft_edu  # noqa: E402
from dcft_edu.experiments import lab  # noqa: E402
from dcft_edu.experiments.sweep import GRIDS, expand_grid  # noqa: E402
from dcft_edu.figures.lab import overlay_user_runs  # noqa: E402

FIGURES = Path(dcft_edu.__file__).resolve().parents[1] / "figures"


@pytest.mark.parametrize("train_env, quick, cuda, expected", [
    ("1", "0", False, True), ("0", "0", True, False), ("0", "1", True, False),  # the env var wins
    ("", "0", True, True), ("", "0", False, False),  # unset: train when a CUDA GPU is present
    ("", "1", False, True),  # quick mode: CI exercises the lab path
])
def test_train_switch(monkeypatch, train_env, quick, cuda, expected):
    monkeypatch.setenv(lab.TRAIN_ENV, train_env)
    monkeypatch.setenv("DCFT_EDU_QUICK", quick)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert lab.train_switch(verbose=False) is expected


def test_train_switch_refuses_other_values(monkeypatch):
    monkeypatch.setenv(lab.TRAIN_ENV, "yes")
    with pytest.raises(ValueError, match="DCFT_EDU_TRAIN='yes'"):
        lab.train_switch()


def _points(grid) -> list[str]:
    return [json.dumps(p, sort_keys=True) for p in expand_grid(grid)]


@pytest.mark.parametrize("name", list(lab.LAB_GRIDS))
def test_lab_grids_are_subsets_of_the_committed_sweeps(name):
    g = lab.LAB_GRIDS[name]
    for form in (g.gpu, g.cpu):
        for sweep, grid in form.items():
            outside = set(_points(grid)) - set(_points(GRIDS[sweep]))
            assert not outside, f"{name}: lab points not in GRIDS[{sweep!r}]: {outside}"
    for sweep, grid in g.cpu.items():  # the reduced form: fewer runs, all of them in the GPU form
        assert set(_points(grid)) < set(_points(g.gpu[sweep]))


def test_lab_runs_pick_scale_and_form(monkeypatch):
    monkeypatch.setenv("DCFT_EDU_QUICK", "0")
    scale, runs = lab.lab_runs("kernel", reduced=True)
    assert scale == "lab_cpu" and [r.kernel_size for r in runs["kernel"]] == [2, 4, 8, 12]
    assert runs["kernel"][0].limit_train == 400
    scale, runs = lab.lab_runs("delta", reduced=False)
    assert scale == "lab" and {k: len(v) for k, v in runs.items()} == {"delta_lambda": 8, "delta_k": 6}
    monkeypatch.setenv("DCFT_EDU_QUICK", "1")
    scale, runs = lab.lab_runs("delta", reduced=False)
    assert scale == "quick" and {k: len(v) for k, v in runs.items()} == {"delta_lambda": 2, "delta_k": 2}


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def fake_train(run, progress=False, log=print):
    """Stands in for trainer.train (the quick scale trains for real in tests/test_sweep.py and the notebooks)."""
    metric = 0.5 + 0.01 * run.seed
    return {"key": run.key(), "config": run.to_dict(), "task": run.task, "method": run.method, "scale": run.scale,
            "main_metric": "pearson", "best": {"epoch": 1, "pearson": metric}, "final": {"epoch": 1},
            "best_metric": metric, "_model": object()}


def test_run_lab_quick_writes_only_to_the_user_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("DCFT_EDU_QUICK", "1")
    monkeypatch.setenv(lab.RESULTS_ENV, str(tmp_path / "results"))
    before = _tree(FIGURES)
    df = lab.run_lab("main", log=lambda m: None, train_fn=fake_train)
    assert _tree(FIGURES) == before  # figures/ untouched
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    assert len(files) == lab.QUICK_RUNS and all(str(f).startswith("results/main/") for f in files)
    assert len(df) == lab.QUICK_RUNS and set(df["scale"]) == {"quick"} and set(df["sweep"]) == {"main"}
    # a rerun trains nothing and returns the same runs
    again = lab.run_lab("main", log=lambda m: None, train_fn=lambda *a, **k: pytest.fail("retrained"))
    assert sorted(again["file"]) == sorted(df["file"])


def _runs(task, method, metrics, **cols):
    return pd.DataFrame([{"task": task, "method": method, "seed": s, "best_metric": m, **cols}
                         for s, m in enumerate(metrics)])


def test_yours_vs_committed():
    committed = pd.concat([_runs("stsb", "dcft", [0.80, 0.84, 0.82], kernel_size=8, layers=None),
                           _runs("stsb", "dcft", [0.70, 0.72, 0.71], kernel_size=2, layers=None),
                           _runs("mrpc", "dcft", [0.75], kernel_size=8, layers=None)])
    user = pd.concat([_runs("stsb", "dcft", [0.83], kernel_size=8, layers=None),
                      _runs("stsb", "dcft", [0.60, 0.62], kernel_size=2, layers=None),
                      _runs("rte", "dcft", [0.55], kernel_size=8, layers=None)])
    t = lab.yours_vs_committed(user, committed, by=["task", "kernel_size"])
    assert list(t.columns) == ["yours", "yours mean", "committed", "min", "max", "n", "inside"]
    assert t.loc[("stsb", 8)].to_dict() == pytest.approx(
        {"yours": "83.0", "yours mean": 83.0, "committed": 82.0, "min": 80.0, "max": 84.0, "n": 3, "inside": True})
    assert t.loc[("stsb", 2), "yours"] == "60.0, 62.0" and not t.loc[("stsb", 2), "inside"]
    assert t.loc[("rte", 8), "n"] == 0 and np.isnan(t.loc[("rte", 8), "committed"]) and not t.loc[("rte", 8), "inside"]
    assert ("mrpc", 8) not in t.index  # only the cells the student ran
    # label cells (added from the config) and list/None-valued columns group too
    t = lab.yours_vs_committed(user.assign(target_modules=[["query", "value"]] * 4),
                               committed.assign(target_modules=[["query", "value"]] * 7),
                               by=["task", "label", "target_modules", "layers"])
    assert t.loc[("stsb", "DCFT k=8", ("query", "value"), "—"), "n"] == 3


def test_overlay_user_runs_draws_yours_on_existing_axes():
    fig, ax = plt.subplots()
    ax.bar([0, 1], [80, 70], label="committed")
    ax.legend()
    user = _runs("stsb", "dcft", [0.83, 0.61], kernel_size=8)
    user["task"] = ["stsb", "mrpc"]
    pts = overlay_user_runs(ax, user, x="task", positions={"stsb": 0, "mrpc": 1})
    assert pts.get_offsets().tolist() == [[0.0, 83.0], [1.0, 61.0]]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["committed", "yours"]
    with pytest.raises(ValueError, match="no position for task"):
        overlay_user_runs(ax, user, x="task", positions={"stsb": 0})
    plt.close(fig)


def test_overlay_user_runs_widens_the_y_limits_to_show_every_run():
    fig, ax = plt.subplots()
    ax.plot([2, 8], [84, 86])
    ax.set_ylim(83, 87)  # a committed figure fixes its limits to the committed runs
    overlay_user_runs(ax, _runs("stsb", "dcft", [0.59], kernel_size=8), x="kernel_size")
    lo, hi = ax.get_ylim()
    assert lo < 59 and hi == 87
    plt.close(fig)


def test_committed_results_dir_can_be_pointed_elsewhere(monkeypatch, tmp_path):
    from dcft_edu.experiments import runinfo

    monkeypatch.delenv(runinfo.COMMITTED_ENV, raising=False)
    assert runinfo.committed_results_dir() == runinfo.REPO_ROOT / "figures" / "data"
    monkeypatch.setenv(runinfo.COMMITTED_ENV, str(tmp_path))
    assert runinfo.committed_results_dir() == tmp_path


def test_tiny_runs_trains_a_grid_and_keeps_the_models():
    """lab.tiny_runs (the solutions of 13 and 14): one run at the tiny scale, its result row and its model."""
    res, models = lab.tiny_runs({"task": ["rte"], "method": ["lora"], "seed": [0]}, epochs=1)
    assert len(res) == 1 and res["limit_train"].iloc[0] == 32 and len(res["epochs"].iloc[0]) == 1  # one epoch record
    assert list(models) == [res["key"].iloc[0]] and sum(p.numel() for p in models[res["key"].iloc[0]].parameters())


def test_run_batches_counts_training_and_evaluation_batches(monkeypatch):
    monkeypatch.setenv("DCFT_EDU_QUICK", "0")
    _, runs = lab.lab_runs("main", reduced=True)
    run = runs["main"][0]  # lab_cpu: STS-B, 400 training rows, 300 dev rows, batch 16, 3 epochs
    assert lab.run_batches(run) == (25 * 3, 19 * 3)
    _, runs = lab.lab_runs("dcft_question", reduced=True)  # select_on="train_holdout": 40 of the 400 rows held out
    assert lab.run_batches(runs["dcft_lr"][0]) == (23 * 3, (19 + 3) * 3)


class _Clock:
    """A fake time.perf_counter: the fake trainer below advances it."""

    def __init__(self):
        self.t = 0.0

    def perf_counter(self):
        return self.t


def _ticking_train(clock, per_batch, setup=5.0):
    """A fake trainer that takes `setup` s, then `per_batch[method]` s per training batch, ticking `progress`."""

    def train_fn(run, progress=False, log=print):
        clock.t += setup
        rows = min(run.limit_train, lab.train_size(run))
        for _ in range(-(-rows // run.batch_size) * run.epochs):
            clock.t += per_batch[run.method]
            if callable(progress):
                progress(1)
        return fake_train(run)

    return train_fn


def test_estimate_lab_times_each_task_and_method(monkeypatch):
    monkeypatch.setenv("DCFT_EDU_QUICK", "0")
    clock = _Clock()
    monkeypatch.setattr(lab, "time", clock)
    per_batch = {"head": 0.1, "full": 0.4, "delta_lora": 0.3, "lora": 0.2, "dcft": 0.25}
    _, runs = lab.lab_runs("main", reduced=True)
    todo = runs["main"]
    est = lab.estimate_lab(todo, _ticking_train(clock, per_batch))
    assert est.per_batch_s == pytest.approx({f"stsb {m}": c for m, c in per_batch.items()})
    # setup: what the calibration's wall time holds beyond the timed batches: 5 s + the warm-up batch − ⅓ batch
    setups = [5.0 + c - c / 3 for c in per_batch.values()]
    assert est.setup_s == pytest.approx(sum(setups) / len(setups))
    expected = sum(est.setup_s + (75 + 57 / 3) * per_batch[r.method] for r in todo)
    assert est.seconds == pytest.approx(expected) and est.runs == 5 and est.train_batches == 5 * 75
    assert "Estimated time: about 2 min on this machine" in est.describe()  # 143 s
    # a trainer without the progress hook times nothing: the estimate says so instead of guessing
    est = lab.estimate_lab(todo[:1], lambda run, progress=False, log=print: fake_train(run))
    assert est.seconds is None and "Estimated time: unknown" in est.describe()


def test_run_lab_prints_the_estimate_and_drives_one_bar(monkeypatch, tmp_path):
    monkeypatch.setenv("DCFT_EDU_QUICK", "1")
    clock = _Clock()
    monkeypatch.setattr(lab, "time", clock)
    lines = []
    train_fn = _ticking_train(clock, {"head": 1.0, "full": 2.0})
    lab.run_lab("main", results_dir=tmp_path, log=lines.append, train_fn=train_fn)
    assert any(m.startswith("Estimated time: ") for m in lines)
    assert lines[-1].startswith("lab 'main': trained 2 runs in ")
    lines.clear()  # a rerun: nothing to train, no calibration, no estimate
    lab.run_lab("main", results_dir=tmp_path, log=lines.append, train_fn=lambda *a, **k: pytest.fail("trained"))
    assert not any("Estimated" in m or "trained" in m for m in lines)


def test_overlay_user_runs_clip_keeps_the_limits_and_writes_off_axis_values():
    fig, ax = plt.subplots()
    ax.plot([2, 8], [84, 86])
    ax.set_ylim(83, 87)
    user = _runs("stsb", "dcft", [0.59, 0.85, 0.90], kernel_size=8)
    user["kernel_size"] = [2, 4, 8]
    pts = overlay_user_runs(ax, user, x="kernel_size", clip=True, colors=["red", "green", "blue"])
    assert ax.get_ylim() == (83, 87)
    ys = pts.get_offsets()[:, 1]
    assert 83 < ys[0] < 83.2 and ys[1] == 85 and 86.8 < ys[2] < 87  # off-axis runs on the edge they passed
    assert sorted(t.get_text() for t in ax.texts) == ["↑ 90.0", "↓ 59.0"]  # only the off-axis values, with arrows
    assert pts.get_facecolors().shape[0] == 3
    plt.close(fig)
