"""The GPU window's grids, bundle format, freshness rule and probe (``experiments/gpu_window.py``)."""
from __future__ import annotations

import json
import lzma
import os
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from dcft_edu.experiments import gpu_window as gw
from dcft_edu.experiments.sweep import GRIDS, grid_runs


def test_grids_are_the_protocols_and_impl_touches_dcft_only():
    plain, dense = gw.study_grids("fast"), gw.study_grids("dense")
    assert set(plain) == {"dcft_ref", "dcft_init", "dcft_lr_budget", "dcft_paper"}
    assert plain["dcft_ref"] == GRIDS["dcft_ref"] and plain["dcft_paper"] == GRIDS["dcft_paper"]
    # the four tasks' dcft_lr_budget files as one grid: 3 arms × 4 lr factors × 3 seeds per task
    runs = grid_runs(plain["dcft_lr_budget"], scale="gpu")
    assert len(runs) == 144 and {r.task for r in runs} == set(gw.STUDY_TASKS)
    assert {r.method for r in runs} == {"dcft", "lora", "lokr"} and {r.select_on for r in runs} == {"train_holdout"}
    for name in plain:
        before = {r.key(): r for r in grid_runs(plain[name], scale="gpu")}
        after = grid_runs(dense[name], scale="gpu")
        assert len(after) == len(before)
        for r in after:  # DCFT runs change impl (and so their key); every other run keeps its key
            assert (r.impl == "dense") == (r.method == "dcft")
            assert (r.key() in before) == (r.method != "dcft")


def test_quick_grids_are_a_few_runs_of_one_task():
    quick = gw.study_grids("dense", quick=True)
    for name, grid in quick.items():
        runs = grid_runs(grid, scale="quick")
        assert 1 <= len(runs) <= 5 and len({r.task for r in runs}) == 1 and {r.seed for r in runs} == {0}, name


def test_todo_counts_unfinished_runs(tmp_path):
    paths = gw.write_grids(tmp_path / "grids", "fast", quick=True)
    ref = next(p for p in paths if p.stem == "dcft_ref")
    assert gw.count_todo([ref], tmp_path / "results", "quick") == 3
    assert gw.main(["todo", str(tmp_path / "results"), f"quick:{ref}", f"gpu:{ref},{ref}"]) == 0


def test_planes_round_trip_a_float16_safetensors_file(tmp_path):
    f = tmp_path / "m.safetensors"
    tensors = {"w": torch.randn(7, 6).half(), "ids": torch.arange(4), "b": torch.randn(5).half()}
    save_file(tensors, str(f))
    raw = f.read_bytes()
    planes = gw._planes(raw)
    assert len(planes) == len(raw) and planes != raw and gw._unplanes(planes) == raw


def test_bundle_and_unbundle_give_back_the_model_and_data(tmp_path, monkeypatch):
    from dcft_edu.experiments import models

    data = tmp_path / "glue"
    for task in gw.BUNDLE_TASKS:  # a tiny GLUE folder: header + rows
        (data / task).mkdir(parents=True)
        (data / task / "dev.tsv").write_text("h\n" + "".join(f"{task} dev {i}\n" for i in range(3)))
        (data / task / "train.tsv").write_text("h\n" + "".join(f"{task} train {i}\n" for i in range(1500)))
    model = tmp_path / "model"
    model.mkdir()
    for name in gw.MODEL_FILES:
        (model / name).write_text(f"{name} contents")
    save_file({"w": torch.randn(4, 4), "ids": torch.arange(3)}, str(model / "model.safetensors"))
    monkeypatch.setattr(models, "default_model_path", lambda: str(model))
    sizes = gw.bundle(tmp_path / "bundle", data, download=False)
    assert set(sizes) == {"model", "data", "wheels"} and sizes["wheels"] == 0
    gw.unbundle(tmp_path / "bundle", tmp_path / "m", tmp_path / "d")
    back = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert back["w"].dtype == torch.float16 and torch.equal(back["w"], load_file(str(model / "model.safetensors"))["w"].half())
    assert torch.equal(back["ids"], torch.arange(3))  # integer tensors stay as they are
    assert (tmp_path / "m" / "vocab.txt").read_text() == "vocab.txt contents"
    assert (tmp_path / "d" / "RTE" / "train.tsv").read_text() == (data / "RTE" / "train.tsv").read_text()
    sst2 = (tmp_path / "d" / "SST-2" / "train.tsv").read_text().splitlines()
    assert len(sst2) == gw.SST2_TRAIN_ROWS + 1 and sst2[1] == "SST-2 train 0"  # header and the first rows
    assert lzma.decompress((tmp_path / "bundle" / "data" / "CoLA" / "dev.tsv.xz").read_bytes()).startswith(b"h\n")


def test_freshness_of_a_benchmark_file(tmp_path):
    f = tmp_path / "b.json"
    assert not gw.is_fresh(f, "2026-12-05")  # missing
    f.write_text(json.dumps({"timestamp": "2026-12-05T01:02:03+00:00"}))
    assert gw.is_fresh(f, "2026-12-05") and not gw.is_fresh(f, "2026-12-06")
    f.write_text("not json")
    assert not gw.is_fresh(f, "2026-12-05")


def _result(folder, name, method, task, seed, wall, **config):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"seed": seed, "lr": 1e-3, "r": config.pop("r", 8), "kernel_size": 8, "stride": None, **config}
    (folder / f"{name}.json").write_text(json.dumps({"config": cfg, "method": method, "task": task,
                                                     "wall_time_s": wall, "status": "ok"}))


def test_probe_counts_this_windows_runs_and_pairs_dcft_with_lora(tmp_path):
    res = tmp_path / "results"
    _result(res / "dcft_ref", "old", "dcft", "rte", 0, 999.0)
    os.utime(res / "dcft_ref" / "old.json", (0, 0))  # restored from the repository: not this window's
    since = time.time() - 1
    for seed, (d, lo) in enumerate([(120.0, 60.0), (90.0, 60.0)]):
        _result(res / "dcft_ref", f"d{seed}", "dcft", "rte", seed, d)
        _result(res / "dcft_ref", f"l{seed}", "lora", "rte", seed, lo, r=1)
    _result(res / "dcft_init", "r8", "lora", "mrpc", 0, 30.0)
    p = gw.probe(res, since, elapsed_s=120.0, workers=4)
    assert p["runs_finished"] == 5 and p["runs_per_min"] == 2.5
    assert p["dcft_over_lora_r1_per_run"] == {"median": 1.75, "min": 1.5, "max": 2.0, "pairs": 2}
    assert p["wall_time_s_by_method"]["DCFT k=8"]["n"] == 2
    assert p["steady_runs_per_min"] == pytest.approx(4 * 60 / 72.0)


def test_the_script_names_its_device_call_and_passes_bash_syntax():
    import subprocess

    from dcft_edu.experiments.runinfo import REPO_ROOT

    script = REPO_ROOT / "scripts" / "gpu_window.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    call = 'run(command="DCFT_EDU_GIT_COMMIT=<commit> bash scripts/gpu_window.sh run", carry=[".device-bundle"],'
    assert call in text and "timeout_s=600" in text
    doc = (REPO_ROOT / "docs" / "gpu_window.md").read_text()
    assert "DCFT_EDU_GIT_COMMIT=<commit> bash scripts/gpu_window.sh run" in doc


def test_choose_impl_keeps_the_studys_and_else_follows_the_benchmark(tmp_path):
    bench = tmp_path / "bench_train_cuda_rte.json"
    assert gw.choose_impl(tmp_path, bench)[0] == "fast"  # nothing measured: the default
    bench.write_text(json.dumps({"samples_per_s": {"lora": 700.0, "dcft_fast": 600.0, "dcft_dense": 650.0}}))
    impl, why = gw.choose_impl(tmp_path, bench)
    assert impl == "dense" and "650" in why
    bench.write_text(json.dumps({"samples_per_s": {"lora": 700.0, "dcft_fast": 600.0}}))  # an older file
    assert gw.choose_impl(tmp_path, bench)[0] == "fast"
    (tmp_path / "dcft_ref").mkdir()  # once the study has DCFT runs, their impl stays
    (tmp_path / "dcft_ref" / "rte-dcft-s0-abc.json").write_text(json.dumps({"config": {"impl": "dense"}}))
    assert gw.choose_impl(tmp_path, bench) == ("dense", "the study's DCFT runs so far use impl=dense "
                                                        "(dcft_ref/rte-dcft-s0-abc.json)")
