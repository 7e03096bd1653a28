"""The benchmark commands run and record what they measured (timings themselves are never asserted)."""
from __future__ import annotations

import json

import pytest

from dcft_edu.experiments import bench


def test_bench_adapters_writes_its_numbers_and_provenance(tmp_path, capsys):
    out = tmp_path / "adapters.json"
    assert bench.main(["adapters", "--tokens", "32", "--repeats", "1", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DCFT fast / LoRA r=8" in printed and "DCFT conv / DCFT fast" in printed
    rec = json.loads(out.read_text())
    shapes = ("768→768", "768→3072", "3072→768")
    assert set(rec["fast_vs_lora8"]) == set(shapes) == set(rec["conv_vs_fast"])
    assert all(v > 0 for v in rec["ms_per_step"].values())
    for field in ("device", "seed", "scale", "versions", "wall_time_s", "git_commit"):
        assert field in rec
    assert rec["scale"] == "bench" and rec["seed"] == 0
    assert set(rec["fast_vs_lora1"]) == set(shapes)


def test_bench_adapters_at_minilm_shapes(tmp_path, capsys, monkeypatch):
    # an allocator setting that changes CPU timings is printed and recorded with the numbers
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    out = tmp_path / "adapters.json"
    assert bench.main(["adapters", "--shapes", "minilm", "--tokens", "16", "--repeats", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DCFT fast / LoRA r=1" in printed and "| THP_MEM_ALLOC_ENABLE=1" in printed
    rec = json.loads(out.read_text())
    assert set(rec["fast_vs_lora1"]) == {"384→384", "384→1536", "1536→384"} and rec["settings"]["shapes"] == "minilm"
    assert rec["settings"]["env"]["THP_MEM_ALLOC_ENABLE"] == "1" and "LD_PRELOAD" not in rec["settings"]["env"]


def test_bench_train_on_a_random_paper_backbone(tmp_path, monkeypatch, capsys):
    from dcft_edu.experiments import models

    # the DeBERTa-v3-base path, at tiny sizes: same code, a 2-layer config instead of the real one
    monkeypatch.setattr(models, "deberta_v3_base_config", lambda: models.tiny_config("deberta-v2"))
    out = tmp_path / "train.json"
    assert bench.main(["train", "--backbone", "deberta-v3-base", "--task", "cola", "--methods", "dcft_fast",
                       "delta_lora", "--batch-size", "2", "--max-length", "8", "--steps", "1", "--rounds", "1",
                       "--no-memory", "--device", "cpu", "--out", str(out)]) == 0
    assert "random weights" in capsys.readouterr().out
    rec = json.loads(out.read_text())
    assert set(rec["samples_per_s"]) == {"lora", "dcft_fast", "delta_lora"}  # LoRA r=8 always: the reference
    sps = rec["samples_per_s"]["dcft_fast"]
    assert rec["epoch_s"]["dcft_fast"]["sst2"] == 67349 / sps and rec["settings"]["backbone"] == "deberta-v3-base"
    assert isinstance(rec["settings"]["env"], dict)


def test_bench_adapters_rejects_sizes_below_one(capsys):
    for argv, message in ((["--tokens", "0"], "argument --tokens: 0 is too small: give an integer >= 1"),
                          (["--repeats", "-2"], "argument --repeats: -2 is too small"),
                          (["--warmup", "-1"], "argument --warmup: -1 is too small: give an integer >= 0")):
        with pytest.raises(SystemExit):
            bench.main(["adapters", *argv])
        assert message in capsys.readouterr().err
