"""The training core's pieces: the twin's scale jump through the core API, what ``prepare`` wires per method, the
export's base model id and the one-loop export."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dcft_edu import LoRAConfig, inject_adapters
from dcft_edu.adapter_io import base_model_id
from dcft_edu.inject import adapter_layers


def toy(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))


def trained_lora() -> nn.Module:
    model = inject_adapters(toy(), LoRAConfig(r=2, lora_alpha=4.0, target_modules=["0", "2"]))
    for _, layer in adapter_layers(model):
        nn.init.normal_(layer.lora_B, std=0.1)  # ΔW ≠ 0, as after some training
    return model


def test_jump_scale_keeps_the_output_and_multiplies_the_scale():
    model = trained_lora()
    x = torch.randn(5, 8)
    before = model(x).detach()
    s0 = [layer.scaling for _, layer in adapter_layers(model)]
    for _, layer in adapter_layers(model):
        layer.jump_scale(0.5)
    torch.testing.assert_close(model(x), before)  # W absorbed −λ·ΔW: the forward is unchanged at the jump
    assert [layer.scaling for _, layer in adapter_layers(model)] == [1.5 * s for s in s0]
    layer = adapter_layers(model)[0][1]
    layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.jump_scale(0.5)


def test_prepare_wires_each_method():
    from dcft_edu.experiments.fit import ScaleJump, prepare, prepare_model
    from dcft_edu.experiments.presets import make_run
    from dcft_edu.experiments.models import load_model

    for method, kw, gamma, jump in [("lora", {}, 0.0, False), ("dcft", {"orth_gamma": 0.3}, 0.3, False),
                                    ("lora", {"lora_scale_jump": True, "start_steps": 2}, 0.0, True)]:
        run = make_run("rte", method, scale="quick", **kw)
        model = prepare_model(load_model("rte")[0], run)
        w = prepare(model, run, total_steps=10)
        assert w.orth_gamma == gamma and w.scheduler is not None
        assert any(isinstance(h, ScaleJump) for h in w.step_hooks) == jump
        assert (w.penalty().item() > 0) == (gamma > 0)
    run = make_run("rte", "delta_lora", scale="quick")
    model = prepare_model(load_model("rte")[0], run)
    w = prepare(model, run)  # no step count: no schedule (the benchmark's case)
    assert w.scheduler is None and w.optimizer._optimizer_step_post_hooks  # Delta-LoRA's W update is hooked


def test_export_names_the_packaged_minilm_by_its_hub_id(tmp_path):
    import json

    from dcft_edu import export_peft
    from dcft_edu.experiments.models import load_model

    model = inject_adapters(load_model("rte")[0], LoRAConfig(r=2, target_modules=["query", "value"]))
    assert base_model_id(model) == "sentence-transformers/all-MiniLM-L6-v2"
    cfg = json.loads((export_peft(model, tmp_path / "x") / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    plain = toy()
    assert base_model_id(plain) is None


def test_every_adapter_layer_class_answers_exported_lora_factors():
    from dcft_edu import DCFTConfig, DeltaLoRAConfig

    for cfg, m in [(LoRAConfig(r=2, target_modules=["0"]), 1),
                   (DeltaLoRAConfig(r=2, target_modules=["0"]), 2),
                   (DCFTConfig(r=1, kernel_size=4, target_modules=["0"]), 4)]:
        layer = adapter_layers(inject_adapters(toy(), cfg))[0][1]
        a, b = layer.exported_lora_factors()
        assert layer.export_rank_multiple == m and a.shape == (m * layer.r, 8) and b.shape == (8, m * layer.r)
        # ΔW = (α/r) · B′ A′: the scale stays out of the factors
        torch.testing.assert_close(layer.scaling * (b @ a), layer.get_delta_weight().detach(), atol=1e-6, rtol=1e-5)


def test_bench_adapter_table_is_a_frame_not_printed_text(capsys):
    from dcft_edu.experiments import bench

    table = bench.adapter_table(shapes="minilm", tokens=8, repeats=1, warmup=0)
    assert list(table.index) == list(bench.ADAPTER_METHODS) and list(table.columns) == ["384→384", "384→1536", "1536→384"]
    assert (table > 0).all().all() and capsys.readouterr().out == ""


@pytest.mark.parametrize("desc", [None, "with a bar"])
def test_fit_epoch_draws_the_loaders_shuffle_once(desc):
    """One epoch of fit_epoch is one plain pass over the loader: the same batches in the same order, the loader's
    generator advanced exactly as much (a progress bar that called iter() on the loader a second time, as
    tqdm.auto's class does when handed it, shuffled every later epoch differently: another run for one seed)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from torch.utils.data import DataLoader

    from dcft_edu.experiments.fit import Wiring, fit_epoch

    rows = [{"x": torch.tensor([float(i)]), "labels": torch.tensor(0.0)} for i in range(10)]

    def loader():
        return DataLoader(rows, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0))

    seen = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, labels):
            seen.append(x.flatten().tolist())
            return SimpleNamespace(loss=(self.w * x).sum())

    net, ours = Net(), loader()
    for epoch in (1, 2):
        fit_epoch(net, net, ours, Wiring(torch.optim.SGD(net.parameters(), lr=0.0)), epoch=epoch, step=0,
                  device=torch.device("cpu"), autocast=nullcontext, desc=desc)
    plain = loader()
    assert seen == [b["x"].flatten().tolist() for _ in (1, 2) for b in plain]
    assert torch.equal(ours.generator.get_state(), plain.generator.get_state())
