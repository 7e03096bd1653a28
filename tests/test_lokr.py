"""PEFT's LoKr as DCFT's control arm (method ``lokr``, ``dcft_edu.experiments.lokr``).

LoKr with r = 1 and decompose_factor = k must have exactly DCFT k's adapter parameters on every layer shape the
study trains (MiniLM) and the paper counts (DeBERTa-v3-base), ΔW = 0 at init, the same rank bound, and its
Kronecker factors in the other order (C ⊗ M is M ⊗ C with rows and columns permuted).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dcft_edu.config import DCFTConfig
from dcft_edu.dcft import DCFTLinear, dcft_num_params
from dcft_edu.experiments.lokr import (count_lokr_parameters, inject_lokr, lokr_effective_weight, lokr_layers,
                                       lokr_num_params, peft_available)

pytestmark = pytest.mark.skipif(not peft_available(), reason="needs peft (the test extra installs it)")

#: (in, out) of every adapted matrix: MiniLM-L6 (384 / 1536) and DeBERTa-v3-base (768 / 3072)
MINILM_SHAPES = [(384, 384), (384, 1536), (1536, 384)]
DEBERTA_SHAPES = [(768, 768), (768, 3072), (3072, 768)]


class _OneLayer(nn.Module):
    """One linear layer inside a block-numbered module tree, as ``all-linear`` expects."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.layer = nn.ModuleList([nn.ModuleDict({"dense": nn.Linear(d_in, d_out)})])


@pytest.mark.parametrize("d_in,d_out", MINILM_SHAPES + DEBERTA_SHAPES)
@pytest.mark.parametrize("k", [2, 4, 8])
def test_parameter_count_equals_dcft_per_shape(d_in, d_out, k):
    lokr = inject_lokr(_OneLayer(d_in, d_out), r=1, lora_alpha=16.0, kernel_size=k)
    dcft = DCFTLinear(nn.Linear(d_in, d_out), DCFTConfig(kernel_size=k))
    n_dcft = sum(p.numel() for p in dcft.adapter_parameters())
    # PEFT's own layers, counted: W₁ (k, k) + w₂ₐ (out/k, 1) + w₂ᵦ (1, in/k)
    assert count_lokr_parameters(lokr) == n_dcft == dcft_num_params(d_in, d_out, k, k) == lokr_num_params(d_in, d_out, k)
    (_, layer), = lokr_layers(lokr)
    assert tuple(layer.lokr_w1["default"].shape) == (k, k)
    assert tuple(layer.lokr_w2_a["default"].shape) == (d_out // k, 1)
    assert tuple(layer.lokr_w2_b["default"].shape) == (1, d_in // k)


def test_parameter_count_on_deberta_v3_base_equals_the_papers():
    """DeBERTa-v3-base's 72 adapted matrices (built on the meta device: no weights): DCFT k = 8's 25,344."""
    from dcft_edu.experiments.models import deberta_v3_base_config
    from dcft_edu.inject import count_for_config, meta_model

    model = inject_lokr(meta_model(deberta_v3_base_config()), r=1, lora_alpha=16.0, kernel_size=8)
    assert len(lokr_layers(model)) == 72
    assert count_lokr_parameters(model) == count_for_config(deberta_v3_base_config(), DCFTConfig(kernel_size=8)) == 25_344


def test_minilm_counts_and_init(tmp_path):
    """The packaged MiniLM: 36 layers, 7,488 parameters (DCFT k = 8's), ΔW = 0 exactly, heads trainable."""
    from dcft_edu.experiments.models import load_model
    from dcft_edu.inject import count_adapter_parameters, inject_adapters

    torch.manual_seed(0)
    model, _ = load_model("rte")
    torch.manual_seed(0)
    ref, _ = load_model("rte")
    x = torch.randint(0, 1000, (2, 12))
    inject_lokr(model, r=1, lora_alpha=16.0, kernel_size=8)
    assert len(lokr_layers(model)) == 36 and count_lokr_parameters(model) == 7_488
    dcft, _ = load_model("rte")
    assert count_adapter_parameters(inject_adapters(dcft, DCFTConfig(kernel_size=8))) == 7_488
    model.eval(), ref.eval()
    with torch.no_grad():  # W₁ = 0: the adapted model is the base model at init
        assert torch.equal(model(input_ids=x).logits, ref(input_ids=x).logits)
    trainable = {n.split(".")[0] if "classifier" in n else n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lokr_w1" in n for n in trainable) and "classifier" in trainable
    assert any("pooler" in n for n in trainable) and not any("query.base_layer" in n for n in trainable)


def test_rank_bound_and_effective_weight():
    torch.manual_seed(0)
    model = inject_lokr(_OneLayer(64, 96), r=1, lora_alpha=4.0, kernel_size=8)
    (_, layer), = lokr_layers(model)
    with torch.no_grad():
        for p in (layer.lokr_w1["default"], layer.lokr_w2_a["default"], layer.lokr_w2_b["default"]):
            p.normal_()
    delta = layer.get_delta_weight("default").detach()
    assert delta.shape == (96, 64)
    assert torch.equal(lokr_effective_weight(layer), layer.get_base_layer().weight + delta)
    # rank(W₁ ⊗ W₂) = rank W₁ · rank W₂ ≤ k · r = 8
    assert torch.linalg.matrix_rank(delta.double(), rtol=1e-5).item() == 8  # float32 factors: rounding-level tolerance
    x = torch.randn(3, 64)
    assert torch.allclose(layer(x), x @ (layer.get_base_layer().weight + delta).T + layer.get_base_layer().bias,
                          atol=1e-4)


def test_kronecker_factors_in_the_other_order_are_a_permutation():
    """C ⊗ M = P (M ⊗ C) Qᵀ with P, Q perfect shuffles: the same matrices, rows and columns relabelled."""
    torch.manual_seed(0)
    m, n, k = 5, 3, 4
    M, C = torch.randn(m, n, dtype=torch.float64), torch.randn(k, k, dtype=torch.float64)
    a, b = torch.kron(M, C), torch.kron(C, M)  # (m·k, n·k) both
    # row i·k + p of M ⊗ C holds M[i, :] ⊗ C[p, :]; in C ⊗ M that row is p·m + i (the same for columns)
    rows = torch.arange(m * k).reshape(m, k).T.reshape(-1)  # new row p·m + i  <-  old row i·k + p
    cols = torch.arange(n * k).reshape(n, k).T.reshape(-1)
    assert torch.equal(b, a[rows][:, cols])
    assert not torch.equal(a, b)  # …and not the same matrix: the order matters for a given W


def test_layer_whose_width_k_does_not_divide_is_refused():
    with pytest.raises(ValueError, match="must divide"):
        inject_lokr(_OneLayer(60, 96), r=1, lora_alpha=16.0, kernel_size=8)


def test_engine_trains_lokr_as_a_method(data_root):
    """``make_run(..., "lokr")`` trains through the engine: PEFT's layers, DCFT's count, no penalty, finite loss."""
    from dcft_edu.experiments.presets import make_run
    from dcft_edu.experiments.trainer import train

    run = make_run("rte", "lokr", "quick", seed=0, limit_train=32, limit_dev=16)
    dcft = make_run("rte", "dcft", "quick", seed=0)
    assert run.orth_gamma == 0.0 and (run.r, run.lora_alpha, run.kernel_size) == (1, 16.0, 8)
    assert run.key() != dcft.key()
    res = train(run, progress=False, log=lambda m: None)
    assert res["status"] == "ok" and res["adapter_params"] == 7_488
    assert res["epochs"][0]["train_penalty"] == 0.0
    assert res["versions"].get("peft")
