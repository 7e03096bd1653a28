"""Loading and injecting are checked and all-or-nothing; configs refuse bad values (issue 15).

Each test looks at the message or at the model's state afterwards, not only at
the fact that something raised. Tiny random models only.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from dcft_edu.delta_lora import delta_lora_layers
from dcft_edu import (
    DCFTConfig,
    DeltaLoRAConfig,
    DeltaLoRALinear,
    LoRAConfig,
    adapter_layers,
    export_delta_lora,
    inject_adapters,
    load_adapters,
    merge_adapters,
    merge_and_unload,
    original_weights,
    save_adapters,
    set_dcft_impl,
)
from dcft_edu.adapter_io import CONFIG_NAME, WEIGHTS_NAME
from dcft_edu.experiments.models import tiny_model


def build(seed: int = 0, dtype: torch.dtype = torch.float32, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return tiny_model("bert", **overrides).to(dtype).eval()


def batch(seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (3, 7), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def logits(model, b):
    with torch.no_grad():
        return model(**b).logits


def perturb(model, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in adapter_layers(model):
            for p in layer.adapter_parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))


def snapshot(model) -> dict:
    """Everything a failed call must leave as it was: module classes, requires_grad, dtypes and values."""
    return {
        "modules": [(n, type(m).__name__) for n, m in model.named_modules()],
        "grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "config": getattr(model, "adapter_config", None),
    }


def assert_unchanged(model, before: dict) -> None:
    after = snapshot(model)
    assert after["modules"] == before["modules"]
    assert after["grad"] == before["grad"]
    assert after["config"] == before["config"]
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert after["state"][k].dtype == v.dtype, k
        assert torch.equal(after["state"][k], v), k


def trained_delta_lora(steps: int = 4, K: int = 2) -> nn.Module:
    """A Delta-LoRA model past K: A, B moved by hand, then the W update applied after each 'step'."""
    model = inject_adapters(build(), DeltaLoRAConfig(r=2, lora_alpha=8, update_ratio=0.5, start_steps=K))
    for t in range(steps):
        perturb(model, seed=10 + t)
        delta_steps(model)
    return model


def delta_steps(model: nn.Module) -> None:
    """What the optimizer hook does after a real step: every Delta-LoRA layer's W update."""
    for _, layer in delta_lora_layers(model):
        layer.delta_step()


# ----------------------------------------------------------- 1. Delta-LoRA's counters
def test_load_restores_delta_lora_step_counter_and_W0(tmp_path):
    trained = trained_delta_lora(steps=4, K=2)
    save_adapters(trained, tmp_path / "ad")
    loaded = load_adapters(build(), tmp_path / "ad")  # the same base (another one is refused: test_validation_core)
    for _, layer in adapter_layers(loaded):
        assert layer._n == 4 and layer.updates_started  # step 4 of K = 2: updates began
    W0, W0_loaded = original_weights(trained), original_weights(loaded)
    for name in W0:
        torch.testing.assert_close(W0_loaded[name], W0[name], atol=1e-6, rtol=0)
    factors, _ = export_delta_lora(trained)
    factors_loaded, _ = export_delta_lora(loaded)
    for name in factors:
        torch.testing.assert_close(factors_loaded[name]["lora_B"], factors[name]["lora_B"], atol=0, rtol=0)
    # resuming: one more step moves W the same way in both (K is not counted again)
    for m in (trained, loaded):
        perturb(m, seed=99)
        delta_steps(m)
    for (_, a), (_, b) in zip(adapter_layers(trained), adapter_layers(loaded)):
        torch.testing.assert_close(b.base_weight(), a.base_weight(), atol=1e-6, rtol=0)


# ------------------------------------------ 2. config, merged models, format, rollback
def test_load_refuses_another_method_naming_both(tmp_path):
    lora = inject_adapters(build(), LoRAConfig(r=2, lora_alpha=8))
    save_adapters(lora, tmp_path / "ad")
    model = inject_adapters(build(), DeltaLoRAConfig(r=2, lora_alpha=8))
    before = snapshot(model)
    with pytest.raises(ValueError, match="method: saved 'lora', this model 'delta_lora'"):
        load_adapters(model, tmp_path / "ad")
    assert_unchanged(model, before)


def test_load_refuses_another_alpha_naming_both(tmp_path):
    save_adapters(inject_adapters(build(), LoRAConfig(r=2, lora_alpha=16)), tmp_path / "ad")
    model = inject_adapters(build(), LoRAConfig(r=2, lora_alpha=64))
    before = snapshot(model)
    with pytest.raises(ValueError, match="lora_alpha: saved 16, this model 64"):
        load_adapters(model, tmp_path / "ad")
    assert_unchanged(model, before)


def test_load_refuses_a_merged_model(tmp_path):
    model = inject_adapters(build(), LoRAConfig(r=2, lora_alpha=8))
    perturb(model)
    save_adapters(model, tmp_path / "ad")
    merge_adapters(model)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"merged.*unmerge_adapters\(model\)"):
        load_adapters(model, tmp_path / "ad")
    assert_unchanged(model, before)


def test_load_checks_the_format_version(tmp_path):
    save_adapters(inject_adapters(build(), LoRAConfig(r=2)), tmp_path / "ad")
    meta_path = tmp_path / "ad" / CONFIG_NAME
    meta = json.loads(meta_path.read_text())
    meta["format"] = "dcft_edu-99"
    meta_path.write_text(json.dumps(meta))
    model = build()
    before = snapshot(model)
    with pytest.raises(ValueError, match="'dcft_edu-99'.*'dcft_edu-2'"):
        load_adapters(model, tmp_path / "ad")
    assert_unchanged(model, before)


def test_failed_load_leaves_no_adapters_behind(tmp_path):
    save_adapters(inject_adapters(build(), DeltaLoRAConfig(r=2)), tmp_path / "ad")
    model = build(hidden_size=48, intermediate_size=96, dtype=torch.bfloat16)  # another shape
    before = snapshot(model)
    with pytest.raises(ValueError, match="hidden_size: saved 32, this model 48"):
        load_adapters(model, tmp_path / "ad")
    assert_unchanged(model, before)  # no adapter layers, nothing frozen, W back in bf16


# ------------------------------------------------------------- 3. damaged files
def _damage(path: Path) -> None:
    """Overwrite 1 KB of tensor data with 0xFF bytes (a float32 NaN pattern)."""
    raw = bytearray(path.read_bytes())
    data_start = 8 + int.from_bytes(raw[:8], "little")  # safetensors: u64 header length, header, data
    assert len(raw) - data_start > 4096
    raw[data_start + 2048 : data_start + 3072] = b"\xff" * 1024
    path.write_bytes(bytes(raw))


def test_damaged_weights_are_refused_by_checksum(tmp_path):
    save_adapters(inject_adapters(build(), LoRAConfig(r=4, target_modules="all-linear")), tmp_path / "ad")
    _damage(tmp_path / "ad" / WEIGHTS_NAME)
    model = build()
    before = snapshot(model)
    with pytest.raises(ValueError, match="sha256"):
        load_adapters(model, tmp_path / "ad")
    assert_unchanged(model, before)


def test_damaged_weights_without_checksum_are_refused_as_non_finite(tmp_path):
    save_adapters(inject_adapters(build(), LoRAConfig(r=4, target_modules="all-linear")), tmp_path / "ad")
    _damage(tmp_path / "ad" / WEIGHTS_NAME)
    meta_path = tmp_path / "ad" / CONFIG_NAME
    meta = json.loads(meta_path.read_text())
    meta.pop("sha256", None)  # a file written before checksums existed
    meta_path.write_text(json.dumps(meta))
    model = build()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"tensor 'bert\.encoder\.\S+' in \S+/adapter_model\.safetensors holds non-finite"):
        load_adapters(model, tmp_path / "ad", verify=False)  # even the unchecked load refuses NaN
    assert_unchanged(model, before)


def test_files_without_checksum_load_only_when_asked(tmp_path):
    model = inject_adapters(build(), LoRAConfig(r=2))
    perturb(model)
    save_adapters(model, tmp_path / "ad")
    meta_path = tmp_path / "ad" / CONFIG_NAME
    meta = json.loads(meta_path.read_text())
    assert len(meta.pop("sha256")) == 64
    meta_path.write_text(json.dumps(meta))
    fresh = build()
    before = snapshot(fresh)
    with pytest.raises(ValueError, match=r"adapter_config\.json has no sha256 .*verify=False"):
        load_adapters(fresh, tmp_path / "ad")
    assert_unchanged(fresh, before)
    b = batch()
    loaded = load_adapters(fresh, tmp_path / "ad", verify=False)
    torch.testing.assert_close(logits(loaded, b), logits(model, b), atol=1e-6, rtol=0)


# ------------------------------------------------------- 4. all-or-nothing inject
def test_failed_inject_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8))  # k = 16 fits the first, not the second
    before = snapshot(model)
    with pytest.raises(ValueError, match="cannot adapt a 64 → 8 layer"):
        inject_adapters(model, DCFTConfig(kernel_size=16, target_modules=("0", "1")))
    assert_unchanged(model, before)
    assert all(p.requires_grad for p in model.parameters())


def test_failed_inject_restores_dtypes_and_flags(monkeypatch):
    # Delta-LoRA upcasts W to float32 while building its layers; a later failure must put bf16 back
    model = build(dtype=torch.bfloat16)
    model.classifier.weight.requires_grad_(False)
    before = snapshot(model)
    calls = []
    build_layer = DeltaLoRALinear.__init__

    def fail_on_third(self, base_layer, config):
        calls.append(base_layer)
        if len(calls) == 3:
            raise RuntimeError("out of memory (simulated)")
        build_layer(self, base_layer, config)

    monkeypatch.setattr(DeltaLoRALinear, "__init__", fail_on_third)
    with pytest.raises(RuntimeError, match="simulated"):
        inject_adapters(model, DeltaLoRAConfig(r=2, target_modules="all-linear"))
    assert calls[0].weight.dtype == torch.bfloat16  # it had been float32 inside the failed build
    assert_unchanged(model, before)


# ---------------------------------------------------------------- 5. config values
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LoRAConfig(r=True), "r must be a positive integer"),
        (lambda: LoRAConfig(lora_alpha=math.inf), "lora_alpha must be a finite number > 0"),
        (lambda: LoRAConfig(lora_alpha=None), "lora_alpha must be a finite number > 0, got None"),
        (lambda: LoRAConfig(lora_alpha=True), "lora_alpha must be a finite number > 0"),
        (lambda: LoRAConfig(lora_dropout=None), "lora_dropout must be a finite number"),
        (lambda: DCFTConfig(init_std=math.inf), "init_std must be a finite number > 0"),
        (lambda: DCFTConfig(init_std=math.nan), "init_std must be a finite number > 0"),
        (lambda: DCFTConfig(kernel_size=True), "kernel_size must be a positive integer"),
        (lambda: DCFTConfig(kernel_size=4, stride=True), "stride must be a positive integer"),
        (lambda: DeltaLoRAConfig(update_ratio=math.inf), "update_ratio .* must be a finite number >= 0"),
        (lambda: DeltaLoRAConfig(start_steps=True), "start_steps .* must be a non-negative integer"),
        (lambda: LoRAConfig(target_modules=123), r"target_modules must be a string or a sequence of strings .*, got 123"),
        (lambda: LoRAConfig(target_modules=("query", 3)), r"target_modules must be .* got \('query', 3\)"),
        (lambda: LoRAConfig(target_modules="re:(query"), r"'re:\(query' is not a valid regular expression"),
        (lambda: LoRAConfig(target_modules=["value", "re:[a-"]), r"'re:\[a-' is not a valid regular expression"),
        (lambda: LoRAConfig(layers=[0, -1]), r"layers must be non-negative block indices, got \[0, -1\]"),
        (lambda: LoRAConfig(layers=[True]), r"layers must be non-negative block indices"),
        (lambda: LoRAConfig(layers=["1"]), r"layers must be non-negative block indices"),
        (lambda: LoRAConfig(layers=3), r"layers must be non-negative block indices, got 3"),
    ],
)
def test_config_refuses_bad_values_with_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_impl_has_one_source_of_truth():
    from dcft_edu.config import DCFT_IMPLS, check_impl

    assert DCFT_IMPLS == ("fast", "conv", "dense")
    with pytest.raises(ValueError) as from_check:
        check_impl("slow")
    with pytest.raises(ValueError) as from_config:
        DCFTConfig(impl="slow")
    model = inject_adapters(build(), DCFTConfig(kernel_size=4))
    with pytest.raises(ValueError) as from_model:
        set_dcft_impl(model, "slow")
    layer = adapter_layers(model)[0][1]
    with pytest.raises(ValueError) as from_layer:
        layer.impl = "slow"
    messages = {str(e.value) for e in (from_check, from_config, from_model, from_layer)}
    assert messages == {str(from_check.value)} and "'fast'" in str(from_check.value)
    assert layer.impl == "fast"


def test_layers_beyond_the_model_are_refused_naming_the_block_count():
    model = build()  # 2 blocks
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"layers=\[0, 7\].*BertForSequenceClassification has 2 blocks \(0\.\.1\)"):
        inject_adapters(model, LoRAConfig(target_modules=("query", "value"), layers=[0, 7]))
    assert_unchanged(model, before)


# ------------------------------------------------------- 6. Delta-LoRA in bf16
def test_merge_and_unload_gives_W_back_in_the_model_dtype():
    model = inject_adapters(build(dtype=torch.bfloat16), DeltaLoRAConfig(r=2, lora_alpha=8))
    perturb(model)
    b = batch()
    out = logits(model, b)
    plain = merge_and_unload(model)
    assert {p.dtype for p in plain.parameters()} == {torch.bfloat16}
    torch.testing.assert_close(logits(plain, b), out, atol=3e-2, rtol=0)
