"""The op counter of ``bench ops`` counts what it says: exact counts, never timings."""
from __future__ import annotations

import json

import pytest
import torch

from dcft_edu import DCFTConfig, LoRAConfig, inject_adapters
from dcft_edu.experiments import bench, bench_ops
from dcft_edu.experiments.models import tiny_model


def test_views_and_allocations_launch_nothing_and_a_foreach_op_counts_once():
    x = torch.randn(4, 6)
    ts = [torch.randn(3) for _ in range(5)]

    def work():
        with bench_ops.phase("forward"):
            y = x.view(6, 4).t().contiguous()  # a copy: the transpose's contiguous() launches one
            z = y.reshape(-1)[:3].expand(2, 3) + 1  # views, then one add
            torch.empty(7)  # an allocation: no kernel
        with bench_ops.phase("optimizer"):
            torch._foreach_add_(ts, 1.0)  # on a CPU a loop of five adds inside; on a GPU one launch
            torch.tensor(2.0).item()  # AdamW-style step-counter read in the optimizer phase: not counted
        return z

    c = bench_ops.count_ops(work)
    assert c.kernels["forward"] == 2 and c.kernels["optimizer"] == 1, c.by_op
    assert c.by_op["aten::_foreach_add_"] == 1 and "aten::view" not in c.by_op and "aten::empty" not in c.by_op
    assert c.total_aten_events > c.total_kernels  # views, composites and the foreach op's inner adds
    assert not bench_ops.launches("aten::t") and not bench_ops.launches("aten::empty_strided")
    assert bench_ops.launches("aten::mm") and bench_ops.launches("aten::_local_scalar_dense")


def _count(layers: int, config, seed: int = 0) -> bench_ops.OpCount:
    torch.manual_seed(seed)
    model = inject_adapters(tiny_model("bert", num_hidden_layers=layers), config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    batch = bench_ops.random_batch(model.config.vocab_size, 2, batch_size=2, max_length=8)
    gamma = 0.1 if isinstance(config, DCFTConfig) else 0.0
    return bench_ops.count_step(model, optimizer, batch, gamma, warmup=1)


def test_each_block_adds_the_same_number_of_kernels():
    # the count is exact: one more block of the same kind adds the same ops every time
    counts = [_count(n, LoRAConfig(r=2)).total_kernels for n in (1, 2, 3)]
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] - counts[1] == counts[1] - counts[0]
    assert _count(2, LoRAConfig(r=2), seed=1).total_kernels == counts[1]  # the values do not matter


def test_the_three_dcft_impls_are_told_apart():
    counts = {impl: _count(2, DCFTConfig(kernel_size=4, impl=impl)) for impl in ("fast", "conv", "dense")}
    # conv builds ΔW with a transposed convolution; dense adds M ⊗ C into W with addcmul; fast does neither
    assert counts["conv"].aten_by_op["aten::conv_transpose2d"] == 12 and "aten::conv_transpose2d" not in \
        counts["fast"].aten_by_op
    assert counts["dense"].by_op["aten::addcmul"] == 12 and "aten::addcmul" not in counts["fast"].by_op  # 6 × 2 blocks
    # fewer, larger ops: one product per layer instead of two, and no per-token contractions
    assert counts["dense"].kernels["forward"] < counts["fast"].kernels["forward"]
    assert counts["dense"].total_kernels < counts["fast"].total_kernels
    # the orthogonal penalty is counted in its own phase
    assert all(c.kernels["penalty"] > 2 for c in counts.values())


def test_bench_ops_cli_writes_counts_ratios_and_provenance(tmp_path, monkeypatch, capsys):
    from dcft_edu.experiments import models

    # the MiniLM path at tiny size: a 2-block random BERT in place of the packaged model
    monkeypatch.setattr(models, "load_model", lambda task, name=None, **kw: (tiny_model("bert", task), None))
    out = tmp_path / "ops.json"
    assert bench.main(["ops", "--methods", "dcft_fast", "dcft_dense", "--batch-size", "2", "--max-length", "8",
                       "--warmup", "1", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kernels per step" in printed and "÷ LoRA r=8" in printed
    rec = json.loads(out.read_text())
    assert set(rec["kernels_per_step"]) == {"lora", "dcft_fast", "dcft_dense"}  # LoRA r=8 always: the reference
    assert rec["kernel_ratio_to_lora8"]["lora"] == 1.0
    for m, n in rec["kernels_per_step"].items():
        assert n == sum(rec["kernels_by_phase"][m].values()) > 0
    for field in ("device", "seed", "scale", "versions", "wall_time_s", "git_commit"):
        assert field in rec
    assert rec["scale"] == "bench" and rec["settings"]["methods"] == ["dcft_fast", "dcft_dense"]


@pytest.mark.parametrize("flag", ["--cpu-defaults", "--autocast"])
def test_bench_ops_modes_are_recorded(tmp_path, monkeypatch, flag):
    from dcft_edu.experiments import models

    monkeypatch.setattr(models, "load_model", lambda task, name=None, **kw: (tiny_model("bert", task), None))
    out = tmp_path / "ops.json"
    assert bench.main(["ops", "--methods", "lora", "--batch-size", "2", "--max-length", "8", "--warmup", "1",
                       flag, "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["settings"][flag[2:].replace("-", "_")] is True
