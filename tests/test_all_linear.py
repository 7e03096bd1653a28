"""``target_modules="all-linear"`` (PEFT's meaning), the default targets and the saved heads, on every arch."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from dcft_edu import DCFTConfig, DeltaLoRAConfig, LoRAConfig, adapter_layers, inject_adapters
from dcft_edu.experiments.models import ARCHS, tiny_config, tiny_model
from dcft_edu.inject import find_target_modules

BERT_SIX = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense")
T5_ATTN = ("q", "k", "v", "o")
BART_ATTN = ("q_proj", "k_proj", "v_proj", "out_proj")
#: arch -> {block-stack prefix: the linear layers of one block}; the tiny models have 2 blocks per stack
BLOCKS = {
    "bert": {"bert.encoder.layer": BERT_SIX},
    "roberta": {"roberta.encoder.layer": BERT_SIX},
    "deberta-v2": {"deberta.encoder.layer": ("attention.self.query_proj", "attention.self.key_proj",
                                             "attention.self.value_proj") + BERT_SIX[3:]},
    "gpt2": {"transformer.h": ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")},
    "llama": {"model.layers": tuple(f"self_attn.{p}_proj" for p in "qkvo") + ("mlp.gate_proj", "mlp.up_proj",
                                                                             "mlp.down_proj")},
    "t5": {"transformer.encoder.block": tuple(f"layer.0.SelfAttention.{p}" for p in T5_ATTN)
           + ("layer.1.DenseReluDense.wi", "layer.1.DenseReluDense.wo"),
           "transformer.decoder.block": tuple(f"layer.0.SelfAttention.{p}" for p in T5_ATTN)
           + tuple(f"layer.1.EncDecAttention.{p}" for p in T5_ATTN)
           + ("layer.2.DenseReluDense.wi", "layer.2.DenseReluDense.wo")},
    "bart": {"model.encoder.layers": tuple(f"self_attn.{p}" for p in BART_ATTN) + ("fc1", "fc2"),
             "model.decoder.layers": tuple(f"self_attn.{p}" for p in BART_ATTN)
             + tuple(f"encoder_attn.{p}" for p in BART_ATTN) + ("fc1", "fc2")},
}
#: the sequence-classification heads, trained in full and never adapted
HEADS = {"bert": ("bert.pooler", "classifier"), "roberta": ("classifier",), "deberta-v2": ("pooler", "classifier"),
         "gpt2": ("score",), "llama": ("score",), "t5": ("classification_head",), "bart": ("classification_head",)}
PER_BLOCK = {"bert": 6, "roberta": 6, "deberta-v2": 6, "gpt2": 4, "llama": 7, "t5": 6 + 10, "bart": 6 + 10}


def build(arch: str):
    torch.manual_seed(0)
    return tiny_model(arch).eval()


def batch(model, seed: int = 1):
    """Random ids ending in the eos token (T5 and BART classify from it; the others ignore it)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (3, 7), generator=g)
    if model.config.eos_token_id is not None:
        ids[:, -1] = model.config.eos_token_id
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_block_tables_cover_every_arch():
    assert set(BLOCKS) == set(HEADS) == set(PER_BLOCK) == set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_all_linear_is_every_block_linear_and_no_head(arch):
    names = find_target_modules(build(arch), LoRAConfig(target_modules="all-linear"))
    expected = {f"{stack}.{i}.{m}" for stack, mods in BLOCKS[arch].items() for i in range(2) for m in mods}
    assert set(names) == expected and len(names) == len(expected)
    assert len(names) == 2 * PER_BLOCK[arch]
    assert not [n for n in names if n.split(".")[0] in ("classifier", "classification_head", "score", "pooler")
                or ".pooler." in n or "lm_head" in n]


@pytest.mark.parametrize("arch,auto", [("gpt2", AutoModelForCausalLM), ("llama", AutoModelForCausalLM),
                                       ("t5", AutoModelForSeq2SeqLM), ("bart", AutoModelForSeq2SeqLM)])
def test_all_linear_never_adapts_the_output_embedding(arch, auto):
    model = auto.from_config(tiny_config(arch))
    names = find_target_modules(model, LoRAConfig(target_modules="all-linear"))
    assert model.get_output_embeddings() is not None
    assert len(names) == 2 * PER_BLOCK[arch] and not any("lm_head" in n for n in names)


def test_default_targets():
    # GPT-2 keeps q, k and v in one Conv1D: the default ("query", "value") adapts c_attn
    assert find_target_modules(build("gpt2"), LoRAConfig()) == ["transformer.h.0.attn.c_attn",
                                                                  "transformer.h.1.attn.c_attn"]
    # T5 spells them q / v (self- and cross-attention)
    t5 = find_target_modules(build("t5"), LoRAConfig())
    assert len(t5) == 2 * (2 + 4) and all(n.endswith(("Attention.q", "Attention.v")) for n in t5)


@pytest.mark.parametrize("arch", ARCHS)
def test_heads_are_saved_trainable_and_never_adapted(arch):
    # even a pattern that matches every linear layer leaves the heads to modules_to_save
    model = inject_adapters(build(arch), LoRAConfig(r=2, target_modules="re:.*"))
    heads = {f"{h}.{n}" for h in HEADS[arch] for n, _ in model.get_submodule(h).named_parameters()}
    adapted = [n for n, _ in adapter_layers(model)]
    assert adapted and not [n for n in adapted if n.startswith(HEADS[arch])]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert heads and heads <= trainable
    assert all(".lora_" in n for n in trainable - heads)


def _config(method: str):
    if method == "lora":
        return LoRAConfig(r=2, lora_alpha=4, target_modules="all-linear")
    if method == "dcft":  # k = 4 divides every tiny size (32, 64, GPT-2's 96)
        return DCFTConfig(kernel_size=4, init="zero", target_modules="all-linear")
    return DeltaLoRAConfig(r=2, lora_alpha=4, target_modules="all-linear")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["lora", "dcft", "delta_lora"])
def test_forward_after_injection(arch, method):
    base = build(arch)
    b = batch(base)
    with torch.no_grad():
        ref = base(**b).logits
    model = inject_adapters(copy.deepcopy(base), _config(method))
    assert len(adapter_layers(model)) == 2 * PER_BLOCK[arch]
    with torch.no_grad():
        torch.testing.assert_close(model(**b).logits, ref, atol=1e-6, rtol=0)  # ΔW = 0 at init
        for _, layer in adapter_layers(model):
            for p in layer.adapter_parameters():
                p.add_(0.2 * torch.randn_like(p))
        assert (model(**b).logits - ref).abs().max() > 1e-4
    model(**b, labels=torch.tensor([0, 1, 1])).loss.backward()
    assert all(layer.lora_B.grad is not None for _, layer in adapter_layers(model))
