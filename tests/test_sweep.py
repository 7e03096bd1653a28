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

from dcft_edu.experiments.presets import METHODS, RESULT_SCHEMA, RunConfig, make_run
from dcft_edu.experiments.sweep import (SweepFailed, expand_grid, grid_runs, load_results, main, run_sweep,
                                        run_sweeps)

REPO = Path(__file__).resolve().parents[1]

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
    assert out.count("todo") == len(METHODS)  # the smoke grid: one run per method
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


def test_parallel_workers_train_real_runs_and_list_failures(data_root, tmp_path):
    missing = str(tmp_path / "no-such-model")
    grid = [{"task": ["rte"], "method": ["lora", "head"], "seed": [0]},
            {"task": ["rte"], "method": ["head"], "seed": [0], "model": [missing]}]  # fails at load_model
    with pytest.raises(SweepFailed) as err:
        run_sweep("par", grid, tmp_path, scale="quick", workers=2, log=lambda m: None, limit_train=16, limit_dev=16)
    (failure,) = err.value.failures
    assert failure.run.model == missing and "FileNotFoundError" in failure.error and missing in failure.error
    assert f"key={failure.run.key()}" in str(err.value)
    paths = err.value.paths["par"]
    assert [p.exists() for p in paths] == [True, True, False]  # the other two runs finished
    recs = [json.loads(p.read_text()) for p in paths[:2]]
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


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s live children that are multiprocessing spawn workers."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmd:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_sweep(data_root, tmp_path):
    script = ("from dcft_edu.experiments.sweep import run_sweep\n"
              "run_sweep('k', {'task': ['rte'], 'method': ['lora', 'dcft'], 'seed': [0, 1, 2, 3]}, %r, "
              "workers=2, log=lambda m: None, limit_train=16, limit_dev=16)\n") % str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    workers = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list((tmp_path / "k").glob("*.json")):  # workers are training
            workers = _children(proc.pid) or workers
            time.sleep(0.05)
        workers = _children(proc.pid) or workers
        assert len(workers) == 2 and list((tmp_path / "k").glob("*.json")), "the sweep should be training"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "workers outlived their killed sweep"
    finally:
        proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_a_failed_run_is_listed_and_the_rest_finish(tmp_path):
    def failing(run, **kw):
        if run.method == "dcft" and run.seed == 1:
            raise RuntimeError("CUDA out of memory")
        return fake_train(run)

    with pytest.raises(SweepFailed) as err:
        run_sweep("f", GRID, tmp_path, train_fn=failing, log=lambda m: None)
    assert [(f.run.task, f.run.method, f.run.seed) for f in err.value.failures] == [("rte", "dcft", 1), ("mrpc", "dcft", 1)]
    assert "2 run(s) failed" in str(err.value) and "RuntimeError: CUDA out of memory" in str(err.value)
    assert sum(p.exists() for p in err.value.paths["f"]) == 10  # every other run finished
    calls = []
    run_sweep("f", GRID, tmp_path, train_fn=lambda run, **kw: calls.append(run.key()) or fake_train(run),
              log=lambda m: None)
    assert sorted(calls) == sorted(f.run.key() for f in err.value.failures)  # a rerun trains only those


def test_cli_exits_non_zero_and_lists_failures(tmp_path, monkeypatch, capsys):
    import dcft_edu.experiments.trainer as trainer

    def failing(run, **kw):
        if run.method == "dcft":
            raise ValueError("bad kernel")
        return fake_train(run)

    monkeypatch.setattr(trainer, "train", failing)
    assert main(["smoke", "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "1 run(s) failed" in err and "rte dcft seed=0" in err and "ValueError: bad kernel" in err
    assert '"kernel_size": 8' in err  # the failed run's config
    assert len(list((tmp_path / "smoke").glob("*.json"))) == len(METHODS) - 1  # all but the failed DCFT run


def test_bad_result_files_are_reported_moved_aside_and_retrained(tmp_path):
    paths = run_sweep("s", GRID, tmp_path, train_fn=fake_train, log=lambda m: None)
    truncated, empty, hollow = paths[0], paths[1], paths[2]
    truncated.write_text(truncated.read_text()[:40])
    empty.write_text("")
    hollow.write_text(json.dumps({"key": "x", "config": {}}))  # parses, but lacks best/best_metric
    with pytest.raises(ValueError, match=str(truncated.name)):  # the reader names the bad file
        load_results(tmp_path / "s")
    with pytest.warns(UserWarning, match=str(empty.name)):
        df = load_results(tmp_path / "s", on_error="skip")
    assert len(df) == 9
    # another sweep sharing the folder is not hurt by them: it trains its own copy
    calls = []
    run_sweep("t", {"task": ["rte"], "method": ["lora"], "seed": [0]}, tmp_path,
              train_fn=lambda run, **kw: calls.append(run.key()) or fake_train(run), log=lambda m: None)
    assert calls == [paths[0].stem.rsplit("-", 1)[1]]
    # the sweep itself reports them by path, moves them aside and retrains them
    calls, logs = [], []
    run_sweep("s", GRID, tmp_path, train_fn=lambda run, **kw: calls.append(run.key()) or fake_train(run),
              log=logs.append)
    assert sorted(calls) == sorted(p.stem.rsplit("-", 1)[1] for p in (empty, hollow))
    assert json.loads(truncated.read_text())["reused_from"].startswith("t/")  # "t" trained it meanwhile
    for p in (truncated, empty, hollow):
        assert any(str(p) in m and "moved to" in m for m in logs)
        assert p.with_name(p.name + ".bad").exists() and json.loads(p.read_text())["best_metric"] >= 0.5
    assert len(load_results(tmp_path / "s")) == 12


def test_key_names_the_model_and_every_adapter_default(tmp_path, monkeypatch):
    from dcft_edu.config import DCFTConfig
    from dcft_edu.experiments.models import default_model_path

    base = make_run("rte", "lora")
    assert base.model == str(Path(default_model_path()).resolve()) and base.model_fingerprint
    monkeypatch.setenv("DCFT_EDU_MODEL", "roberta-base")
    other = make_run("rte", "lora")
    assert other.model == "roberta-base" and other.key() != base.key() and other.legacy_key() is None
    monkeypatch.delenv("DCFT_EDU_MODEL")
    # two local folders: the fingerprint of config.json, not the bookkeeping fields, tells them apart
    for name, layers in (("a", 6), ("b", 6), ("c", 12)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(
            {"num_hidden_layers": layers, "_name_or_path": name, "transformers_version": name}))
    a, b, c = (make_run("rte", "lora", model=str(tmp_path / n)) for n in "abc")
    assert a.model_fingerprint == b.model_fingerprint != c.model_fingerprint
    assert len({a.key(), b.key(), c.key(), base.key()}) == 4
    # numbers are canonical: 16 and 16.0 are one run (the CLI's --set lora_alpha=16 gives an int)
    assert make_run("rte", "lora", lora_alpha=16).key() == base.key()
    assert make_run("rte", "lora", lr=1).key() == make_run("rte", "lora", lr=1.0).key()
    from dcft_edu.experiments.presets import _canonical
    assert _canonical({"jump": True, "alpha": 16.0, "lr": 1e-3})["jump"] is True  # bools stay bools
    # an adapter default outside RunConfig (DCFT's init_std) is in the key
    dcft = make_run("rte", "dcft")
    before = dcft.key()
    monkeypatch.setattr(RunConfig, "adapter_config", lambda self: DCFTConfig(init_std=0.05))
    assert dcft.key() != before


def test_new_results_carry_the_schema_and_the_model(tmp_path):
    (p,) = run_sweep("n", {"task": ["rte"], "method": ["lora"], "seed": [0]}, tmp_path, train_fn=fake_train,
                     log=lambda m: None)
    rec = json.loads(p.read_text())
    run = make_run("rte", "lora")
    assert rec["schema"] == RESULT_SCHEMA == 2 and rec["key"] == run.key() and p.name.endswith(f"-{run.key()}.json")
    assert rec["config"]["model"] == run.model and rec["config"]["model_fingerprint"] == run.model_fingerprint
    assert load_results(tmp_path / "n")["schema"].tolist() == [2]


def test_committed_schema1_results_keep_their_identity(capsys):
    data = REPO / "figures" / "data"
    f = sorted((data / "main").glob("*.json"))[0]
    rec = json.loads(f.read_text())
    assert "schema" not in rec and rec["config"]["model"] is None  # schema 1
    assert RunConfig(**rec["config"]).legacy_key() == rec["key"]
    assert main(["main", "--scale", "gpu", "--dry-run", "--results", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 105 and all(line.startswith("done") for line in out)
    assert set(load_results(data / "main")["schema"]) == {1}


def test_a_diverged_result_is_a_finished_result(tmp_path):
    """A run that diverged is done (its file says where it diverged): a sweep must not retrain it forever."""
    from dcft_edu.experiments.sweep import read_result

    rec = {"config": {"task": "rte"}, "best": None, "best_metric": None, "status": "diverged",
           "diverged_at": {"epoch": 1, "step": 3, "what": "train loss nan"}}
    p = tmp_path / "r.json"
    p.write_text(json.dumps(rec))
    assert read_result(p)["status"] == "diverged"
    p.write_text(json.dumps({**rec, "diverged_at": None}))
    with pytest.raises(ValueError, match="marked diverged but lacks 'diverged_at'"):
        read_result(p)
