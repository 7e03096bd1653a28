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


def test_bench_adapters_rejects_sizes_below_one(capsys):
    for argv, message in ((["--tokens", "0"], "argument --tokens: 0 is too small: give an integer >= 1"),
                          (["--repeats", "-2"], "argument --repeats: -2 is too small"),
                          (["--warmup", "-1"], "argument --warmup: -1 is too small: give an integer >= 0")):
        with pytest.raises(SystemExit):
            bench.main(["adapters", *argv])
        assert message in capsys.readouterr().err
