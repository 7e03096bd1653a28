"""The orthogonal penalty computed for all layers at once equals its one-tensor-at-a-time definition."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dcft_edu import DCFTConfig, LoRAConfig, inject_adapters
from dcft_edu.dcft import DCFTLinear
from dcft_edu.experiments.models import tiny_model
from dcft_edu.lora import LoRALinear
from dcft_edu.regularizers import gram_deviation, orthogonal_penalty, orthogonal_penalty_reference


def _models():
    torch.manual_seed(0)
    # DCFT k = 4 on every linear of a 2-block BERT: A and Bᵀ of widths 32/4 = 8 and 64/4 = 16 (two shapes, r = 1)
    dcft = inject_adapters(tiny_model("bert"), DCFTConfig(kernel_size=4))
    # LoRA r = 2, all-linear: widths 32 and 64
    lora = inject_adapters(tiny_model("bert"), LoRAConfig(r=2))
    # layers of different ranks side by side (2 and 3): one batch per rank
    mixed = nn.Sequential(LoRALinear(nn.Linear(12, 20), LoRAConfig(r=2)), LoRALinear(nn.Linear(20, 12), LoRAConfig(r=3)),
                          DCFTLinear(nn.Linear(20, 12), DCFTConfig(kernel_size=4, r=2)))
    for m in (dcft, lora, mixed):
        m.double()  # float64: the two computations then agree to ~1e-15
        with torch.no_grad():
            for p in m.parameters():
                if p.requires_grad:
                    p.normal_()  # LoRA's B starts at 0: give every factor a value
    return {"dcft": dcft, "lora": lora, "mixed": mixed}


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("name", ["dcft", "lora", "mixed"])
def test_penalty_equals_the_per_layer_definition(name, squared):
    model = _models()[name]
    params = [p for p in model.parameters() if p.requires_grad]
    fused, ref = orthogonal_penalty(model, squared), orthogonal_penalty_reference(model, squared)
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=0)
    for g_fused, g_ref in zip(torch.autograd.grad(fused, params, allow_unused=True),
                              torch.autograd.grad(ref, params, allow_unused=True)):
        if g_ref is None:
            assert g_fused is None  # a parameter the penalty does not touch (LoRA's heads, DCFT's C)
        else:
            torch.testing.assert_close(g_fused, g_ref, rtol=1e-10, atol=1e-12)


def test_reference_is_the_formula_by_hand():
    model = _models()["mixed"]
    terms = []
    for layer in model:
        A, B = layer.lora_A, layer.lora_B
        terms.append(torch.linalg.norm(A @ A.T - torch.eye(A.shape[0], dtype=A.dtype)))
        terms.append(torch.linalg.norm(B.T @ B - torch.eye(B.shape[1], dtype=B.dtype)))
    torch.testing.assert_close(orthogonal_penalty_reference(model), torch.stack(terms).mean())
    torch.testing.assert_close(orthogonal_penalty(model), torch.stack(terms).mean())


def test_zero_padding_leaves_the_gram_unchanged():
    # what the fused penalty relies on: zero columns appended to P do not change P Pᵀ
    P = torch.randn(3, 5, dtype=torch.float64)
    padded = torch.cat([P, torch.zeros(3, 4, dtype=torch.float64)], dim=1)
    assert torch.equal(gram_deviation(P, rows=True), gram_deviation(padded, rows=True))


def test_penalty_without_adapters_is_zero():
    model = nn.Linear(4, 4)
    assert orthogonal_penalty(model).item() == 0.0 and orthogonal_penalty_reference(model).item() == 0.0
