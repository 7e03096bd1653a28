"""Issue 29, the engine: nothing silent. A bad run field, grid, file, device or flag is refused before any work,
in one line naming what and how to fix it; sweeps sharing a folder neither duplicate runs nor delete each other's
files; E2E keeps the GLUE engine's guards. The checklist these tests pin down: ``scripts/probe_engine.py``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dcft_edu.experiments import e2e
from dcft_edu.experiments.cli import RunFailed, run_cli
from dcft_edu.experiments.presets import make_run
from dcft_edu.experiments.sweep import _pending, grid_runs, load_results, result_path, run_sweep
from dcft_edu.experiments.sweep import main as sweep_cli
from dcft_edu.experiments.train import main as train_cli
from dcft_edu.experiments.validate import RunClaim, check_save_delta_adapted, stale_temp

ROOT = Path(__file__).resolve().parents[1]
GLUE_SAMPLE = ROOT / "tests" / "data" / "glue_sample"


def fake_train(run, **kw):
    return {"config": run.to_dict(), "best": {"epoch": 1, "acc": 0.5}, "best_metric": 0.5, "main_metric": "acc",
            "status": "ok"}


# ------------------------------------------------------------------ run fields: one check wherever they enter
@pytest.mark.parametrize("field,value,says", [
    ("lr", -1e-3, "lr=-0.001: must be > 0"),
    ("lr", math.nan, "lr=nan: must be a finite number"),
    ("weight_decay", -0.1, "weight_decay=-0.1: must be >= 0"),
    ("weight_decay", math.nan, "weight_decay=nan: must be a finite number"),
    ("max_grad_norm", -1.0, "max_grad_norm=-1.0: must be >= 0; clip at a norm > 0"),
    ("max_grad_norm", math.nan, "max_grad_norm=nan"),
    ("warmup_steps", -5, "warmup_steps=-5: must be >= 0"),
    ("orth_gamma", math.nan, "orth_gamma=nan: must be a finite number"),
    ("orth_gamma", -1.0, "orth_gamma=-1.0: must be >= 0"),
    ("device", "cdua", "device='cdua': unknown device; use auto"),
    ("epochs", "two", "epochs='two': must be an integer"),
    ("save_delta", "layer.0.attention.self.qurey", "did you mean 'layer.0.attention.self.query'"),
    ("save_delta", "query", "save_delta='query' matches 6 layers"),
])
def test_make_run_refuses_bad_fields(field, value, says):
    with pytest.raises(ValueError) as e:
        make_run("rte", "lora", **{field: value})
    assert says in str(e.value)


def test_e2e_runs_share_the_checks():
    with pytest.raises(ValueError, match=r"lr=-1.0: must be > 0"):
        e2e.make_e2e_run("lora", "quick", 0, lr=-1.0)
    with pytest.raises(ValueError, match=r"max_grad_norm=-1.0"):
        e2e.make_e2e_run("lora", "quick", 0, max_grad_norm=-1.0)


def test_train_flag_refused_before_training(capsys, monkeypatch):
    import dcft_edu.experiments.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit) as e:
        train_cli(["--task", "rte", "--method", "lora", "--weight-decay", "-1"])
    assert e.value.code == 2 and "weight_decay=-1.0: must be >= 0" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_without_cuda_refused_up_front(capsys):
    with pytest.raises(SystemExit):
        train_cli(["--task", "rte", "--method", "lora", "--device", "cuda"])
    assert "device='cuda': this machine has no CUDA GPU" in capsys.readouterr().err
    from dcft_edu.experiments.bench import main as bench_cli

    with pytest.raises(SystemExit):
        bench_cli(["train", "--methods", "lora", "--device", "cuda"])
    assert "no CUDA GPU" in capsys.readouterr().err


def test_save_delta_must_name_an_adapted_layer():
    from dcft_edu.experiments.models import load_model
    from dcft_edu.experiments.trainer import prepare_model

    run = make_run("rte", "lora", target_modules=["query"], save_delta="layer.0.attention.self.value")
    model = prepare_model(load_model("rte")[0], run)
    with pytest.raises(ValueError, match=r"is not adapted by this lora run .*its ΔW would be 0"):
        check_save_delta_adapted(model, run)
    run.save_delta = "layer.0.attention.self.query"
    check_save_delta_adapted(model, run)


# ------------------------------------------------------------------ --set and grid files
def test_set_and_grid_files_are_checked(tmp_path, capsys):
    g1 = tmp_path / "g1.json"
    g1.write_text('{"task": ["rte"], "method": ["lora"], "seed": [0]}')
    cases = [
        ([str(g1), "--set", "lr=-1", "--dry-run"], "--set lr=-1: must be > 0"),
        ([str(g1), "--set", "scale=cpu"], "--set scale: not settable for every run (use --scale)"),
        ([str(g1), "--set", "lr=1e-3", "--set", "lr=2e-3"], "--set lr is given twice"),
        ([str(g1), "--set", "lrr=1"], "--set lrr: not a RunConfig field (did you mean lr?"),
        ([str(g1), "--deadline-min", "0"], "--deadline-min 0: give a number of minutes > 0"),
        ([str(g1), "--deadline-min", "-1"], "--deadline-min -1"),
    ]
    for name, content, says in [("neg", '{"task": ["rte"], "method": ["lora"], "lr": [-1]}', "lr=-1.0: must be > 0"),
                                ("str", '"rte"', "a grid is a dict of lists"),
                                ("empty", "[]", "the grid is empty (no runs)"),
                                ("none", '{"task": ["rte"], "method": []}', "method list no values"),
                                ("typo", '{"task": ["rte"], "method": ["lora"], "sed": [0]}', "'sed' is not a run field"),
                                ("broken", '{"task": [', "broken.json:1:11: not valid JSON")]:
        (tmp_path / f"{name}.json").write_text(content)
        cases.append(([str(tmp_path / f"{name}.json"), "--dry-run"], says))
    (tmp_path / "latin.json").write_bytes(b'{"task": ["r\xe9te"]}')
    cases.append(([str(tmp_path / "latin.json"), "--dry-run"], "latin.json:1: byte 0xe9 (file offset 12) is not UTF-8"))
    for argv, says in cases:
        with pytest.raises(SystemExit) as e:
            sweep_cli([*argv, "--results", str(tmp_path / "res")])
        out, err = capsys.readouterr()
        assert e.value.code == 2 and says in err, (argv, err)
        assert "todo" not in out  # a dry run lists no invalid run


def test_a_grid_never_makes_one_run_twice(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"is listed 2 times"):
        grid_runs({"task": ["rte"], "method": ["lora"], "seed": [0, 0]})
    with pytest.raises(ValueError, match=r"their stride mean the same setting"):  # s = k is the default stride
        grid_runs({"task": ["rte"], "method": ["dcft"], "kernel_size": [8], "stride": [8, None]})
    g3 = tmp_path / "g3.json"
    g3.write_text('{"task": ["rte"], "method": ["lora"], "seed": [0, 1, 2]}')
    with pytest.raises(SystemExit):
        sweep_cli([str(g3), "--results", str(tmp_path), "--set", "seed=5", "--dry-run"])
    assert "--set seed=5 makes 3 grid points the same run (seed: 0, 1, ... all become 5)" in capsys.readouterr().err


def test_named_grids_have_no_duplicate_runs():
    from dcft_edu.experiments.sweep import GRIDS

    for name, grid in GRIDS.items():
        for scale in ("quick", "gpu", "paper"):
            runs = grid_runs(grid, scale=scale)
            assert len({r.key() for r in runs}) == len(runs), (name, scale)


# ------------------------------------------------------------------ readers
def test_readers_refuse_missing_empty_and_non_utf8(tmp_path):
    from dcft_edu.experiments.data import load_e2e, load_glue

    with pytest.raises(FileNotFoundError, match=r"load_results: no folder .*nope \(missing\)"):
        load_results(tmp_path / "nope")
    (tmp_path / "RTE").mkdir()
    header = (GLUE_SAMPLE / "RTE" / "train.tsv").read_text().splitlines()[0]
    (tmp_path / "RTE" / "dev.tsv").write_text(header + "\n")
    with pytest.raises(ValueError, match=r"RTE/dev.tsv: no data rows \(only a header\); an empty dev split"):
        load_glue("rte", "dev", root=tmp_path)
    (tmp_path / "RTE" / "train.tsv").write_bytes(header.encode() + b"\n0\tcaf\xe9\tb\tentailment\n")  # Latin-1
    with pytest.raises(ValueError, match=r"RTE/train.tsv:2: byte 0xe9 .* is not UTF-8"):
        load_glue("rte", "train", root=tmp_path)
    (tmp_path / "E2E").mkdir()
    (tmp_path / "E2E" / "devset.csv").write_text("mr,ref\n")
    with pytest.raises(ValueError, match=r"devset.csv: no data rows"):
        load_e2e("dev", root=tmp_path)


def test_empty_dev_set_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text((GLUE_SAMPLE / "RTE" / "train.tsv").read_text())
    (tmp_path / "RTE" / "dev.tsv").write_text((GLUE_SAMPLE / "RTE" / "dev.tsv").read_text().splitlines()[0] + "\n")
    monkeypatch.setenv("DCFT_EDU_DATA", str(tmp_path))
    argv = ["--task", "rte", "--method", "head", "--limit-train", "8", "--max-length", "32", "--no-progress"]
    assert run_cli(train_cli, argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (after the tokenizer's progress bars)
    assert last.startswith("error: ") and "dev.tsv: no data rows" in last and "Traceback" not in err


# ------------------------------------------------------------------ E2E guards
def _tiny_e2e(tmp_path, lr):
    from dcft_edu.experiments.causal_lm import tiny_causal_lm

    pairs = [("name[x] ||", " x is a pub.")] * 16
    run = e2e.make_e2e_run("lora", "quick", 0, lr=lr, max_new_tokens=2)
    return run, dict(data=(pairs, ["name[x]"], [["x is a pub."]]), meteor=False, model_name="tiny"), tiny_causal_lm()


def test_e2e_nan_loss_is_marked_diverged_not_a_result(tmp_path):
    run, kw, base = _tiny_e2e(tmp_path, lr=1e30)
    with pytest.raises(RunFailed, match=r"diverged at epoch 1, step \d+ \(training loss nan\)"):
        e2e.train_and_save(run, tmp_path, base, log=lambda s: None, **kw)
    (p,) = tmp_path.glob("*.json")
    rec = json.loads(p.read_text())
    assert rec["status"] == "diverged" and rec["scores"] is None and all(math.isfinite(x) for x in rec["train_loss_curve"])
    assert len(e2e.load_e2e_results(tmp_path)) == 0  # not a result for any table
    with pytest.raises(RunFailed):  # a rerun does not pass it off as done
        e2e.train_and_save(run, tmp_path, base, log=lambda s: None, **kw)


def test_e2e_truncated_result_is_retrained(tmp_path, monkeypatch):
    run = e2e.make_e2e_run("lora", "quick", 0)
    p = result_path(tmp_path.parent, tmp_path.name, run)
    p.write_text('{"trunc')
    monkeypatch.setattr(e2e, "train_e2e", lambda run, **kw: {"key": run.key(), "config": run.to_dict(), "scores": {},
                                                              "status": "ok", "wall_time_s": 0.0})
    logs = []
    assert e2e.train_and_save(run, tmp_path, ("m", "t"), log=logs.append) == p
    assert p.with_name(p.name + ".bad").read_text() == '{"trunc' and json.loads(p.read_text())["key"] == run.key()
    assert "moved to" in logs[0] and logs[-1].startswith("wrote")


def test_e2e_cli_writes_to_the_users_results_and_returns_its_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCFT_EDU_RESULTS", str(tmp_path))
    monkeypatch.setattr(e2e, "load_causal_lm", lambda name=None: ("m", "t"))
    outs = []

    def fake(run, out, base, **kw):
        outs.append(Path(out))
        if run.method == "dcft":
            raise RunFailed("E2E dcft seed=0 diverged")
        return Path(out) / "x.json"

    monkeypatch.setattr(e2e, "train_and_save", fake)
    assert e2e.main(["--scale", "quick", "--methods", "lora"]) == 0
    assert outs == [tmp_path / "e2e"]  # not the committed figures/data/e2e
    assert e2e.main(["--scale", "quick", "--methods", "lora", "dcft"]) == 1
    assert "E2E dcft seed=0 diverged" in capsys.readouterr().err


# ------------------------------------------------------------------ sweeps together
HOLD = ("import sys, time; from dcft_edu.experiments.validate import RunClaim; c = RunClaim(sys.argv[1], sys.argv[2]); "
        "print(c.acquire(), flush=True); time.sleep(float(sys.argv[3]))")


def _holder(folder: Path, key: str, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), key, str(seconds)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout.readline().strip() == "True"
    return p


def test_a_claimed_run_is_left_to_its_sweep_and_a_dead_claim_is_free(tmp_path):
    grid = {"task": ["rte"], "method": ["lora"], "seed": [0, 1]}
    runs = grid_runs(grid)
    holder = _holder(tmp_path, runs[0].key(), 60)  # another sweep, training seed 0 right now
    try:
        trained, logs = [], []
        run_sweep("s", grid, tmp_path, train_fn=lambda run, **kw: trained.append(run.seed) or fake_train(run),
                  log=logs.append)
        assert trained == [1] and any("another sweep (pid" in m and "is training it" in m for m in logs)
        assert not RunClaim(tmp_path, runs[0].key()).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    claim = RunClaim(tmp_path, runs[0].key())  # its holder died: free at once
    assert claim.acquire()
    claim.release()
    trained.clear()
    run_sweep("s", grid, tmp_path, train_fn=lambda run, **kw: trained.append(run.seed) or fake_train(run),
              log=lambda m: None)
    assert trained == [0]


def test_only_a_dead_writers_temp_is_cleaned(tmp_path):
    from dcft_edu.adapter_io import atomic_write, host_tag

    folder = tmp_path / "s"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    temps = {"live": folder / f".a.json.pid{os.getpid()}@{host_tag()}.x1.tmp",  # this process: writing now
             "dead": folder / f".b.json.pid{dead.pid}@{host_tag()}.x2.tmp",
             "other_host": folder / f".c.json.pid{dead.pid}@elsewhere.x3.tmp",  # a cluster job's: not provable
             "unnamed": folder / ".rte-lora-x.json.abc.tmp"}  # an older writer's: not provable
    for t in temps.values():
        t.write_text("{}")
    assert [k for k, t in temps.items() if stale_temp(t)] == ["dead"]
    _pending("s", [make_run("rte", "lora")], tmp_path, log=lambda m: None)
    assert sorted(k for k, t in temps.items() if t.exists()) == ["live", "other_host", "unnamed"]
    seen = []
    atomic_write(folder / "r.json", lambda tmp: seen.append(Path(tmp).name) or Path(tmp).write_text("{}"))
    assert f".r.json.pid{os.getpid()}@{host_tag()}." in seen[0]


# ------------------------------------------------------------------ every CLI: one line, an exit status
def test_run_cli_turns_errors_into_one_line_and_a_status(capsys):
    def raising(exc):
        def main(argv):
            raise exc
        return main

    assert run_cli(raising(ValueError("lr=-1: must be > 0")), []) == 2
    assert capsys.readouterr().err == "error: lr=-1: must be > 0\n"
    assert run_cli(raising(FileNotFoundError(2, "No such file or directory", "x.json")), []) == 2
    assert "x.json" in capsys.readouterr().err
    assert run_cli(raising(RunFailed("2 runs diverged")), []) == 1
    assert run_cli(raising(KeyboardInterrupt()), []) == 130
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
    assert run_cli(lambda argv: 3, []) == 3 and run_cli(lambda argv: None, []) == 0
    with pytest.raises(ValueError):  # --debug: the traceback, for a bug report
        run_cli(raising(ValueError("x")), ["--debug"])
    with pytest.raises(KeyError):  # a bug is not a user error: its traceback shows
        run_cli(raising(KeyError("k")), [])


def test_sigint_and_a_closed_pipe_from_a_shell():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a shell's Ctrl-C meets Python's default SIGINT handler; restore it first, since a parent that ignores SIGINT
    # (pytest-xdist's workers do) passes "ignore" on to its children
    code = ("import os, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from dcft_edu.experiments.cli import run_cli; "
            "raise SystemExit(run_cli(lambda a: os.kill(os.getpid(), signal.SIGINT)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 130 and p.stderr.strip().startswith("interrupted (Ctrl-C)") and "Traceback" not in p.stderr
    code = ("from dcft_edu.experiments.cli import run_cli\n"
            "def main(a):\n    for i in range(100000): print('todo', i)\n"
            "raise SystemExit(run_cli(main))")
    p = subprocess.run(f"{sys.executable} -c \"{code}\" | head -1", shell=True, capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.stdout == "todo 0\n" and p.stderr == ""


def test_bench_counts_must_be_positive(capsys):
    from dcft_edu.experiments.bench import main as bench_cli

    for flag in ("--steps", "--batch-size", "--rounds"):
        with pytest.raises(SystemExit) as e:
            bench_cli(["train", "--methods", "lora", flag, "0"])
        assert e.value.code == 2 and "0 is too small: give an integer >= 1" in capsys.readouterr().err


def test_colab_unreachable_repository_is_one_error(tmp_path, monkeypatch):
    from dcft_edu.experiments import colab

    monkeypatch.setenv("DCFT_EDU_REPO_URL", str(tmp_path / "no-such-repo"))
    with pytest.raises(ConnectionError, match=r"could not clone .*no-such-repo .*git said .*check that the repository"):
        colab.bootstrap(clone_dir=tmp_path / "clone", force=True)


def test_sweep_into_an_unwritable_sweep_folder_fails_before_training(tmp_path, capsys, monkeypatch):
    import dcft_edu.experiments.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("trained"))
    g1 = tmp_path / "g1.json"
    g1.write_text('{"task": ["rte"], "method": ["lora"], "seed": [0]}')
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "g1").write_text("a file where the sweep's folder goes")
    with pytest.raises(SystemExit):
        sweep_cli([str(g1), "--results", str(tmp_path / "res")])
    assert f"--results: cannot write to the folder {tmp_path / 'res' / 'g1'}" in capsys.readouterr().err
