"""Model-level checks for every method on tiny random models of each architecture (docs/method_notes.md §6)."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from dcft_edu import (
    DCFTConfig,
    DeltaLoRAConfig,
    LoRAConfig,
    adapter_layers,
    config_from_dict,
    count_adapter_parameters,
    count_for_config,
    disable_adapters,
    inject_adapters,
    load_adapters,
    merge_adapters,
    merge_and_unload,
    orthogonal_penalty,
    save_adapters,
    set_dcft_impl,
    unmerge_adapters,
)
from dcft_edu.experiments.models import deberta_v3_base_config, tiny_model

ARCHS = ["bert", "roberta", "deberta-v2", "gpt2", "llama"]


def make_config(method: str, zero_init: bool = True):
    if method == "lora":
        return LoRAConfig(r=4, lora_alpha=8, target_modules="all-linear")
    if method == "dcft":
        return DCFTConfig(kernel_size=4, init="zero" if zero_init else "paper", target_modules="all-linear")
    if method == "delta_lora":
        return DeltaLoRAConfig(r=4, lora_alpha=8, target_modules="all-linear")
    raise AssertionError(method)


METHODS = ["lora", "dcft", "delta_lora"]


def build(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    model = tiny_model(arch)
    model.eval()
    return model


def batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (3, 7), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def logits(model, b):
    with torch.no_grad():
        return model(**b).logits


def perturb(model, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in adapter_layers(model):
            for p in layer.adapter_parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHODS)
def test_identity_at_init_then_nontrivial(arch, method):
    base = build(arch)
    b = batch()
    ref = logits(base, b)
    model = inject_adapters(copy.deepcopy(base), make_config(method))
    assert len(adapter_layers(model)) > 0
    torch.testing.assert_close(logits(model, b), ref, atol=1e-6, rtol=0)
    perturb(model)
    assert (logits(model, b) - ref).abs().max() > 1e-4


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHODS)
def test_merge_unmerge_disable(arch, method):
    base = build(arch)
    b = batch()
    ref = logits(base, b)
    model = inject_adapters(copy.deepcopy(base), make_config(method))
    perturb(model)
    out = logits(model, b)
    merge_adapters(model)
    torch.testing.assert_close(logits(model, b), out, atol=1e-5, rtol=1e-5)
    merge_adapters(model)  # idempotent
    torch.testing.assert_close(logits(model, b), out, atol=1e-5, rtol=1e-5)
    with disable_adapters(model):  # unmerges inside, re-merges after
        torch.testing.assert_close(logits(model, b), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits(model, b), out, atol=1e-5, rtol=1e-5)
    unmerge_adapters(model)
    for (name, layer) in adapter_layers(model):
        w0 = base.get_submodule(name).weight
        torch.testing.assert_close(layer.base_layer.weight, w0, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits(model, b), out, atol=1e-5, rtol=1e-5)
    plain = merge_and_unload(model)
    assert not adapter_layers(plain)
    torch.testing.assert_close(logits(plain, b), out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "dcft"])
def test_only_adapters_and_head_change(arch, method):
    base = build(arch)
    model = inject_adapters(copy.deepcopy(base), make_config(method, zero_init=False))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    b = batch()
    labels = torch.tensor([0, 1, 1])
    for _ in range(3):
        loss = model(**b, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    adapter_keys = {f"{n}.{p}" for n, layer in adapter_layers(model) for p in layer.adapter_param_names}
    head = ("classifier", "score", "pooler")
    assert changed & adapter_keys, "adapters did not train"
    unexpected = {k for k in changed - adapter_keys if not any(h in k for h in head)}
    assert not unexpected, f"frozen weights moved: {sorted(unexpected)[:5]}"


@pytest.mark.parametrize("method", METHODS)
def test_save_load_roundtrip(tmp_path, method):
    base = build("bert")
    model = inject_adapters(copy.deepcopy(base), make_config(method))
    perturb(model)
    with torch.no_grad():  # heads train too: make sure they are saved
        model.classifier.weight.add_(1.0)
    b = batch()
    out = logits(model, b)
    save_adapters(model, tmp_path / "ad")
    files = sorted(p.name for p in (tmp_path / "ad").iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    fresh = load_adapters(build("bert"), tmp_path / "ad")
    torch.testing.assert_close(logits(fresh, b), out, atol=1e-6, rtol=0)
    cfg = config_from_dict(json.loads((tmp_path / "ad" / "adapter_config.json").read_text())["config"])
    assert cfg == model.adapter_config


def test_load_onto_wrong_model_fails_clearly(tmp_path):
    model = inject_adapters(build("bert"), make_config("lora"))
    save_adapters(model, tmp_path / "ad")
    with pytest.raises(ValueError, match="trained on another model|does not fit"):
        load_adapters(tiny_model("bert", hidden_size=48, intermediate_size=96), tmp_path / "ad")
    with pytest.raises(ValueError, match="model_class: saved 'BertForSequenceClassification'"):
        load_adapters(build("gpt2"), tmp_path / "ad")


def test_config_roundtrip_and_scaling():
    for cfg in (LoRAConfig(r=4, lora_alpha=16), DCFTConfig(kernel_size=4, stride=2), DeltaLoRAConfig(update_ratio=2)):
        assert config_from_dict(json.loads(cfg.to_json())) == cfg
    assert LoRAConfig(r=4, lora_alpha=16).scaling == 4.0
    model = inject_adapters(build("bert"), LoRAConfig(r=4, lora_alpha=16))
    assert all(layer.scaling == 4.0 for _, layer in adapter_layers(model))


def test_no_match_lists_candidates():
    with pytest.raises(ValueError) as e:
        inject_adapters(build("bert"), LoRAConfig(target_modules=("qkv",)))
    msg = str(e.value)
    assert "matched no linear layer" in msg and "encoder.layer.*.attention.self.query" in msg


def test_unknown_method_and_double_injection():
    from dcft_edu.inject import layer_class

    with pytest.raises(ValueError, match="unknown adapter method 'adalora'"):
        layer_class("adalora")
    with pytest.raises(ValueError, match="unknown adapter method"):
        config_from_dict({"method": "adalora"})
    model = inject_adapters(build("bert"), LoRAConfig())
    with pytest.raises(ValueError, match="already has adapters"):
        inject_adapters(model, LoRAConfig())


def test_target_aliases_and_layers():
    # "query"/"value" fall back to DeBERTa's query_proj/value_proj
    m = inject_adapters(build("deberta-v2"), LoRAConfig(target_modules=("query", "value")))
    names = [n for n, _ in adapter_layers(m)]
    assert names and all(n.endswith(("query_proj", "value_proj")) for n in names)
    m = inject_adapters(build("bert"), LoRAConfig(target_modules=("query", "value"), layers=[1]))
    names = [n for n, _ in adapter_layers(m)]
    assert names == ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"]
    # the pooler and classifier are trained in full, never adapted
    m = inject_adapters(build("bert"), LoRAConfig(target_modules="re:.*dense"))
    assert not any("pooler" in n for n, _ in adapter_layers(m))


def test_dcft_impl_switch_model_level():
    model = inject_adapters(build("bert"), make_config("dcft", zero_init=False))
    b = batch()
    fast = logits(model, b)
    set_dcft_impl(model, "conv")
    torch.testing.assert_close(logits(model, b), fast, atol=1e-5, rtol=1e-5)


def test_orthogonal_penalty_official_formula():
    model = inject_adapters(build("bert"), LoRAConfig(r=3, target_modules=("value",)))
    terms = []
    for _, layer in adapter_layers(model):
        A, B = layer.lora_A, layer.lora_B
        terms.append(torch.linalg.norm(A @ A.T - torch.eye(3)))
        terms.append(torch.linalg.norm(B.T @ B - torch.eye(3)))
    torch.testing.assert_close(orthogonal_penalty(model), torch.stack(terms).mean())
    torch.testing.assert_close(orthogonal_penalty(model, squared=True), torch.stack(terms).square().mean())
    # layers of several shapes (batched by shape inside): still the plain mean over every A and B
    mixed = inject_adapters(build("bert"), LoRAConfig(r=2, target_modules="all-linear"))
    ref = [torch.linalg.norm(P @ P.T - torch.eye(2)) for _, l in adapter_layers(mixed) for P in (l.lora_A, l.lora_B.T)]
    assert len({tuple(l.lora_A.shape) for _, l in adapter_layers(mixed)}) > 1
    torch.testing.assert_close(orthogonal_penalty(mixed), torch.stack(ref).mean())
    # rank 1: the penalty is |‖a‖² − 1| and |‖b‖² − 1|, zero for unit vectors
    m1 = inject_adapters(build("bert"), DCFTConfig(kernel_size=4, target_modules=("value",)))
    with torch.no_grad():
        for _, layer in adapter_layers(m1):
            layer.lora_A.div_(layer.lora_A.norm())
            layer.lora_B.div_(layer.lora_B.norm())
    assert orthogonal_penalty(m1).item() < 1e-6
    # gradients flow to A and B
    orthogonal_penalty(model).backward()
    assert all(layer.lora_A.grad is not None for _, layer in adapter_layers(model))


# ---- parameter counts (docs/method_notes.md §2): DeBERTa-v3-base on the meta device, no weights
@pytest.mark.parametrize(
    "k,s,expected",
    [(2, 2, 83_232), (4, 4, 42_624), (6, 6, 30_240), (8, 8, 25_344), (12, 12, 24_192),
     (8, 1, 169_488), (8, 2, 87_120), (8, 4, 45_936)],
)
def test_dcft_parameter_table(k, s, expected):
    cfg = DCFTConfig(kernel_size=k, stride=s, target_modules="all-linear")
    assert count_for_config(deberta_v3_base_config(), cfg) == expected


def test_lora_rank1_count_and_ratio():
    lora = count_for_config(deberta_v3_base_config(), LoRAConfig(r=1, target_modules="all-linear"))
    dcft = count_for_config(deberta_v3_base_config(), DCFTConfig(kernel_size=8))
    assert lora == 165_888
    assert round(lora / dcft, 1) == 6.5  # "8× fewer" is A and B alone: 165,888 / (25,344 − 72·64)
    assert lora / (dcft - 72 * 64) == 8.0
