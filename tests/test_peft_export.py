"""export_peft: every method, written as a plain PEFT LoRA folder, loads into peft with the same outputs.

The base handed to ``PeftModel.from_pretrained`` is a fresh model built from the same seed: the
pretrained weights (for Delta-LoRA the original W_0, not the moved W_T).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

peft = pytest.importorskip("peft")

from dcft_edu import (
    register_delta_lora_hook,  # noqa: E402
    DCFTConfig,
    DeltaLoRAConfig,
    LoRAConfig,
    export_peft,
    inject_adapters,
    merge_adapters,
    merge_and_unload,
)
from dcft_edu.experiments.models import tiny_model  # noqa: E402

ARCHS = ("bert", "gpt2", "llama")
CONFIGS = {
    "lora": LoRAConfig(r=2, lora_alpha=8.0, target_modules="all-linear"),
    "delta_lora": DeltaLoRAConfig(r=2, lora_alpha=8.0, update_ratio=0.5, start_steps=1, target_modules="all-linear"),
    "dcft_k4_s4": DCFTConfig(r=2, lora_alpha=4.0, kernel_size=4),
    "dcft_k4_s2": DCFTConfig(r=2, lora_alpha=4.0, kernel_size=4, stride=2),
    "dcft_k8_s6": DCFTConfig(r=2, lora_alpha=4.0, kernel_size=8, stride=6),  # (96 − 8)/6 is not whole: a crop
}
SEED = 0


def base_model(arch):
    torch.manual_seed(SEED)
    return tiny_model(arch).eval()


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (3, 7), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def adapted_model(arch, name):
    """Inject the adapter and make it non-trivial: random adapter and head weights; Delta-LoRA trains so W moves."""
    model = inject_adapters(base_model(arch), CONFIGS[name])
    torch.manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    if name == "delta_lora":
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
        register_delta_lora_hook(opt, model)
        for _ in range(4):  # K = 1: the W updates start at the third step
            loss = model(**batch(), labels=torch.tensor([0, 1, 1])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return model.eval()


@torch.no_grad()
def logits(model):
    return model(**batch()).logits


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("arch", ARCHS)
def test_peft_loads_the_export_with_the_same_outputs(arch, name, tmp_path):
    model = adapted_model(arch, name)
    expected = logits(model)
    assert (expected - logits(base_model(arch))).abs().max() > 1e-2  # the adapter really changes the outputs
    export_peft(model, tmp_path)
    loaded = peft.PeftModel.from_pretrained(base_model(arch), tmp_path).eval()
    assert (logits(loaded) - expected).abs().max() <= 1e-5


def test_delta_lora_export_is_a_lora_on_the_original_weights(tmp_path):
    """W has moved, so the export is a LoRA on W_0: handed the moved W_T instead, PEFT gets other outputs."""
    model = adapted_model("bert", "delta_lora")
    query = model.bert.encoder.layer[0].attention.self.query
    w0 = base_model("bert").bert.encoder.layer[0].attention.self.query.weight
    assert (query.base_layer.weight - w0).abs().max() > 1e-4  # the W updates ran
    export_peft(model, tmp_path)
    moved = base_model("bert")
    own = moved.state_dict()
    # the trained model's base weights, W_T: "….query.base_layer.weight" -> "….query.weight"
    w_t = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items()}
    moved.load_state_dict({k: v for k, v in w_t.items() if k in own})
    on_moved = peft.PeftModel.from_pretrained(moved, tmp_path).eval()
    assert (logits(on_moved) - logits(model)).abs().max() > 1e-4


def test_config_is_peft_lora(tmp_path):
    model = adapted_model("gpt2", "dcft_k4_s2")
    cfg = json.loads((export_peft(model, tmp_path) / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "SEQ_CLS"
    assert cfg["r"] == 2 * 4 and cfg["lora_alpha"] / cfg["r"] == CONFIGS["dcft_k4_s2"].scaling
    assert cfg["fan_in_fan_out"] is True and cfg["modules_to_save"] == ["score"]
    loaded = peft.PeftConfig.from_pretrained(tmp_path)
    assert loaded.r == 8 and loaded.fan_in_fan_out and set(loaded.target_modules) == set(cfg["target_modules"])


def test_export_does_not_import_peft(tmp_path):
    code = (
        "import sys, torch\n"
        "from transformers import BertConfig, BertForSequenceClassification\n"
        "from dcft_edu import LoRAConfig, export_peft, inject_adapters\n"
        "m = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,\n"
        "    num_attention_heads=2, intermediate_size=32))\n"
        f"export_peft(inject_adapters(m, LoRAConfig(r=2)), {str(tmp_path)!r})\n"
        "print('peft' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]


def test_refuses_models_without_adapters(tmp_path):
    with pytest.raises(ValueError, match="no adapters to export"):
        export_peft(base_model("bert"), tmp_path)
    with pytest.raises(ValueError, match="no adapters to export"):
        export_peft(merge_and_unload(adapted_model("bert", "lora")), tmp_path)
    assert not any(tmp_path.iterdir())


def test_refuses_merged_models(tmp_path):
    with pytest.raises(ValueError, match="unmerge_adapters"):
        export_peft(merge_adapters(adapted_model("bert", "dcft_k4_s4")), tmp_path)
    assert not any(tmp_path.iterdir())
