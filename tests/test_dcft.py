"""DCFT layer checks: the scatter rule, the Kronecker and U·C·Vᵀ forms, fast == conv,
gradients, init, merge/unmerge, parameter counts (docs/method_notes.md §2, §3, §6). All on CPU, tiny sizes."""
from __future__ import annotations


import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from dcft_edu.config import DCFTConfig
from dcft_edu.dcft import (
    DCFTLinear,
    coverage_map,
    dcft_num_params,
    deconv_reference,
    matrix_free_forward,
    subspace_size,
    upsample_factor,
)

# every (k, s) with k ∈ {2, 3, 4} and 1 ≤ s ≤ k; e.g. (3, 2) and (4, 3) leave (d − k)/s not whole
KS = [(k, s) for k in (2, 3, 4) for s in range(1, k + 1)]
# (in, out): square, wider, narrower, and odd sizes where the deconvolution is cropped
SHAPES = [(24, 24), (24, 48), (48, 16), (7, 10)]


def make_layer(d_in, d_out, k, s, r=1, base="linear", dtype=torch.float32, seed=0, **cfg):
    """A DCFT layer whose factors are O(1) (not 0.02), so differences are visible.

    ``check_rank=False``: the numerics hold for any r, also r > min(h_in, h_out), which inject_adapters refuses."""
    torch.manual_seed(seed)
    base_layer = nn.Linear(d_in, d_out) if base == "linear" else Conv1D(d_out, d_in)  # Conv1D(nf=out, nx=in)
    cfg.setdefault("lora_alpha", float(r))  # scaling 1 unless a test says otherwise
    layer = DCFTLinear(base_layer, DCFTConfig(r=r, kernel_size=k, stride=s, **cfg), check_rank=False).to(dtype)
    with torch.no_grad():
        for p in layer.adapter_parameters():
            p.normal_()
    return layer


# --------------------------------------------------------------- the scatter rule by hand
def test_scatter_rule_by_hand_no_overlap():
    # k = s = 2: out[i·2 + p, j·2 + q] = M[i, j] · C[p, q]; every 2×2 block is M[i, j] · C
    M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    C = torch.tensor([[1.0, 10.0], [100.0, 1000.0]])
    expected = torch.tensor(
        [
            [1.0, 10.0, 2.0, 20.0],
            [100.0, 1000.0, 200.0, 2000.0],
            [3.0, 30.0, 4.0, 40.0],
            [300.0, 3000.0, 400.0, 4000.0],
        ]
    )
    assert torch.equal(deconv_reference(M, C, 2, (4, 4)), expected)


def test_scatter_rule_by_hand_overlap():
    # k = 2, s = 1: patches overlap and add up, out[i + p, j + q] += M[i, j] · C[p, q]
    M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    C = torch.ones(2, 2)
    expected = torch.tensor([[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]])
    assert torch.equal(deconv_reference(M, C, 1, (3, 3)), expected)
    # how many taps landed on each cell: the source of checkerboard artifacts
    assert torch.equal(coverage_map(2, 1, (3, 3)), torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]))


def test_layer_delta_weight_by_hand():
    # a 4 → 4 layer, k = s = 2, r = 1: A (1, 2), B (2, 1), M = B A, ΔW = (α/r) · M ⊗ C
    layer = DCFTLinear(nn.Linear(4, 4), DCFTConfig(r=1, lora_alpha=2.0, kernel_size=2))
    with torch.no_grad():
        layer.lora_A.copy_(torch.tensor([[1.0, 2.0]]))
        layer.lora_B.copy_(torch.tensor([[1.0], [3.0]]))
        layer.lora_C.copy_(torch.tensor([[1.0, 10.0], [100.0, 1000.0]]))
    M = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    expected = 2.0 * torch.tensor(
        [
            [1.0, 10.0, 2.0, 20.0],
            [100.0, 1000.0, 200.0, 2000.0],
            [3.0, 30.0, 6.0, 60.0],
            [300.0, 3000.0, 600.0, 6000.0],
        ]
    )
    assert torch.equal(layer.lora_B @ layer.lora_A, M)
    assert torch.equal(layer.get_delta_weight(), expected)
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # picks column 0 of ΔW
    torch.testing.assert_close(layer.adapter_forward(x), expected[:, 0][None])


# ------------------------------------------------------------------------ algebra (float64)
@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_kronecker_identity_when_stride_equals_kernel(k):
    g = torch.Generator().manual_seed(k)
    M = torch.randn(5, 3, generator=g, dtype=torch.float64)
    C = torch.randn(k, k, generator=g, dtype=torch.float64)
    torch.testing.assert_close(deconv_reference(M, C, k, (5 * k, 3 * k)), torch.kron(M, C), rtol=0, atol=1e-12)


def test_crop_at_the_end_when_not_whole():
    # d = 7, k = s = 2: h = ceil(5/2) + 1 = 4 cells, output 8 long, cropped to 7 (last row / column)
    assert subspace_size(7, 2, 2) == 4 and subspace_size(8, 3, 2) == 4 and subspace_size(768, 8, 4) == 191
    g = torch.Generator().manual_seed(0)
    M = torch.randn(4, 3, generator=g, dtype=torch.float64)
    C = torch.randn(2, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(deconv_reference(M, C, 2, (7, 5)), torch.kron(M, C)[:7, :5], rtol=0, atol=1e-12)


def test_kernel_size_one_is_lora():
    # k = s = 1: ΔW = (α/r) · c · B A, a LoRA with an extra scalar
    layer = make_layer(6, 9, k=1, s=1, r=2, dtype=torch.float64)
    expected = layer.scaling * layer.lora_C[0, 0] * (layer.lora_B @ layer.lora_A)
    torch.testing.assert_close(layer.get_delta_weight(), expected)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 1), (3, 2), (4, 4), (4, 3)])
@pytest.mark.parametrize("r", [1, 2])
def test_rank_at_most_r_times_k(k, s, r):
    layer = make_layer(24, 48, k, s, r=r, dtype=torch.float64)
    rank = torch.linalg.matrix_rank(layer.get_delta_weight()).item()
    assert rank <= r * k
    if s == k:  # Kronecker: rank(M ⊗ C) = rank(M) · rank(C) = r · k for random factors
        assert rank == r * k


@pytest.mark.parametrize("k,s", KS)
@pytest.mark.parametrize("r", [1, 2])
def test_upsampled_factors_rebuild_the_deconvolution(k, s, r):
    # ΔW = Σ_r U_r C V_rᵀ with U from B and V from Aᵀ (docs/method_notes.md §3)
    layer = make_layer(11, 7, k, s, r=r, dtype=torch.float64)
    A, B, C = layer.lora_A, layer.lora_B, layer.lora_C
    U = upsample_factor(B, k, s, 7)  # (out, k, r)
    V = upsample_factor(A.T, k, s, 11)  # (in, k, r)
    assert U.shape == (7, k, r) and V.shape == (11, k, r)
    rebuilt = torch.einsum("apr,pq,bqr->ab", U, C, V)
    torch.testing.assert_close(rebuilt, deconv_reference(B @ A, C, s, (7, 11)), rtol=0, atol=1e-12)
    # slice p of U is B upsampled by s and shifted by p
    for p in range(k):
        rows = [i * s + p for i in range(B.shape[0]) if i * s + p < 7]
        torch.testing.assert_close(U[rows, p], B[: len(rows)])
        others = [a for a in range(7) if a not in rows]
        assert torch.all(U[others, p] == 0)  # zeros everywhere else


# ------------------------------------------------------------- fast == conv, and gradients
@pytest.mark.parametrize("k,s", KS)
@pytest.mark.parametrize("r", [1, 3])
@pytest.mark.parametrize("d_in,d_out", SHAPES)
def test_fast_matches_conv_forward_and_grads(d_in, d_out, r, k, s):
    layer = make_layer(d_in, d_out, k, s, r=r)
    x = torch.randn(2, 3, d_in, requires_grad=True)
    g = torch.randn(2, 3, d_out)
    results = {}
    for impl in ("fast", "conv"):
        layer.impl = impl
        y = layer.adapter_forward(x)
        grads = torch.autograd.grad((y * g).sum(), [x, *layer.adapter_parameters()])
        results[impl] = (y, *grads)
    torch.testing.assert_close(results["fast"][0], results["conv"][0], rtol=1e-5, atol=1e-5)
    # gradients are sums over every token and cell (|grad C| ~ 1e3 here): float32 agrees to ~1e-5 relative
    for name, fast, conv in zip(("x", "A", "B", "C"), results["fast"][1:], results["conv"][1:]):
        torch.testing.assert_close(fast, conv, rtol=1e-4, atol=1e-4, msg=lambda m: f"grad {name}: {m}")
    # and the layer's ΔW x is x ΔWᵀ with the reference ΔW
    torch.testing.assert_close(results["fast"][0], x @ layer.get_delta_weight().T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("base", ["linear", "conv1d"])
@pytest.mark.parametrize("k,s", [(2, 2), (4, 4), (3, 2), (4, 1)])
@pytest.mark.parametrize("d_in,d_out", [(24, 48), (48, 16), (7, 10)])
def test_dense_matches_conv_in_float64(d_in, d_out, k, s, base):
    # impl="dense": (W + ΔW) x in one product, with ΔW = (α/r)·M ⊗ C added to W in one addcmul when s = k
    # (and the reference ΔW otherwise): the whole layer's output and every gradient equal the reference's
    layer = make_layer(d_in, d_out, k, s, r=2, base=base, dtype=torch.float64)
    x = torch.randn(2, 3, d_in, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, d_out, dtype=torch.float64)
    results = {}
    for impl in ("conv", "dense"):
        layer.impl = impl
        y = layer(x)
        results[impl] = (y, *torch.autograd.grad((y * g).sum(), [x, *layer.adapter_parameters()]))
    for name, dense, conv in zip(("y", "x", "A", "B", "C"), results["dense"], results["conv"]):
        torch.testing.assert_close(dense, conv, rtol=1e-10, atol=1e-10, msg=lambda m: f"{name}: {m}")
    # the summed weight is W + the reference ΔW, in nn.Linear's (out, in) layout for either base
    torch.testing.assert_close(layer.dense_weight(), layer.base_weight() + layer.get_delta_weight(), rtol=0,
                               atol=1e-12)
    assert layer.adapter_forward(x).shape == (2, 3, d_out)  # ΔW x alone, as for the other impls


def _gradcheck_layer(d_in, d_out, r, k, s, impl, fast_mode):
    layer = make_layer(d_in, d_out, k, s, r=r, dtype=torch.float64, impl=impl)
    x = torch.randn(2, d_in, dtype=torch.float64, requires_grad=True)
    A, B, C = (p.detach().clone().requires_grad_(True) for p in layer.adapter_parameters())

    def adapter_forward(x, A, B, C):  # the layer's ΔW x with the factors passed in, so they are checked too
        return torch.func.functional_call(layer, {"lora_A": A, "lora_B": B, "lora_C": C}, (x,)) - layer.base_layer(x)

    assert torch.autograd.gradcheck(adapter_forward, (x, A, B, C), fast_mode=fast_mode)


@pytest.mark.parametrize("impl", ["fast", "conv", "dense"])
@pytest.mark.parametrize("k,s", KS)
@pytest.mark.parametrize("r", [1, 2])
@pytest.mark.parametrize("d_in,d_out", [(8, 8), (6, 11), (11, 5)])
def test_gradcheck(d_in, d_out, r, k, s, impl):
    # fast_mode: compares the analytic and numerical Jacobians along random directions
    _gradcheck_layer(d_in, d_out, r, k, s, impl, fast_mode=True)


@pytest.mark.parametrize("impl", ["fast", "conv", "dense"])
@pytest.mark.parametrize("d_in,d_out,r,k,s", [(8, 8, 1, 4, 4), (6, 11, 2, 3, 2), (11, 5, 2, 2, 1)])
def test_gradcheck_full_jacobian(d_in, d_out, r, k, s, impl):
    _gradcheck_layer(d_in, d_out, r, k, s, impl, fast_mode=False)


def test_matrix_free_forward_is_the_public_fast_path():
    layer = make_layer(24, 48, 4, 4, r=2)
    x = torch.randn(5, 24)
    y = matrix_free_forward(x, layer.lora_A, layer.lora_B, layer.lora_C, 4, 48, layer.scaling)
    torch.testing.assert_close(y, layer.adapter_forward(x))


# -------------------------------------------------------------------------- init, modes
@pytest.mark.parametrize("impl", ["fast", "conv", "dense"])
@pytest.mark.parametrize("stride", [2, 4])
def test_zero_init_is_exactly_the_base_layer(impl, stride):
    torch.manual_seed(0)
    base = nn.Linear(24, 48)
    layer = DCFTLinear(base, DCFTConfig(kernel_size=4, stride=stride, init="zero", impl=impl))
    assert torch.equal(layer.get_delta_weight(), torch.zeros(48, 24))
    assert layer.lora_A.abs().sum() > 0 and layer.lora_C.abs().sum() > 0  # only B is zero
    x = torch.randn(3, 24)
    assert torch.equal(layer(x), base(x))


def test_paper_init_is_tiny_but_not_zero():
    torch.manual_seed(0)
    layer = DCFTLinear(nn.Linear(768, 768), DCFTConfig(kernel_size=8))  # the paper's setting, α/r = 16
    for p in layer.adapter_parameters():
        assert p.dtype == torch.float32 and p.requires_grad
        assert 0.01 < p.std().item() < 0.03  # N(0, 0.02²)
    dw = layer.get_delta_weight()
    assert 0 < dw.abs().max().item() < 1e-2
    assert not layer.base_layer.weight.requires_grad


@pytest.mark.parametrize("d_in,d_out,k,s,tol", [(24, 48, 4, 2, 1e-5), (384, 1536, 8, 8, 1e-4)])
def test_impl_switch(d_in, d_out, k, s, tol):
    # float32, as the trainer runs: every impl gives the layer's output to rounding; (384, 1536, 8, 8) is
    # MiniLM's FFN at the paper's k = s, where dense adds M ⊗ C into W in one addcmul
    layer = make_layer(d_in, d_out, k, s)
    x = torch.randn(3, d_in)
    y_fast = layer(x)
    for impl in ("conv", "dense"):
        layer.impl = impl
        torch.testing.assert_close(layer(x), y_fast, rtol=tol, atol=tol, msg=lambda m: f"{impl}: {m}")
    layer.eval().merge()  # a merged layer multiplies by W alone, whatever the impl (merged, it refuses train mode)
    torch.testing.assert_close(layer(x), y_fast, rtol=tol, atol=tol)


def test_impl_errors():
    layer = make_layer(24, 48, 4, 2)
    with pytest.raises(ValueError, match="impl must be 'fast' or 'conv' or 'dense'"):
        layer.impl = "fft"
    with pytest.raises(ValueError, match="impl"):
        DCFTConfig(impl="fft")
    with pytest.raises(ValueError, match=r"stride \(3\) > kernel_size \(2\)"):
        DCFTConfig(kernel_size=2, stride=3)
    with pytest.raises(ValueError, match="kernel_size k=8 is larger than the layer dimension d=4"):
        DCFTLinear(nn.Linear(16, 4), DCFTConfig(kernel_size=8))
    with pytest.raises(ValueError, match="choose k ≤ min"):
        subspace_size(4, 8, 8)


@pytest.mark.parametrize("impl", ["fast", "dense"])
def test_low_precision_base_keeps_float32_adapters(impl):
    layer = DCFTLinear(nn.Linear(16, 8).to(torch.bfloat16), DCFTConfig(kernel_size=4, impl=impl))
    assert all(p.dtype == torch.float32 for p in layer.adapter_parameters())
    assert layer(torch.randn(2, 16, dtype=torch.bfloat16)).dtype == torch.bfloat16


# ------------------------------------------------------------------------ merge/unmerge
@pytest.mark.parametrize("impl", ["fast", "dense"])
@pytest.mark.parametrize("base", ["linear", "conv1d"])
@pytest.mark.parametrize("d_in,d_out,k,s", [(24, 48, 4, 4), (48, 16, 3, 2), (7, 10, 3, 3)])
def test_merge_unmerge_disable(base, d_in, d_out, k, s, impl):
    layer = make_layer(d_in, d_out, k, s, base=base, dtype=torch.float64, impl=impl).eval()  # merged, it refuses train mode
    x = torch.randn(4, d_in, dtype=torch.float64)
    w0 = layer.base_weight().clone()
    y_base = layer.base_layer(x)
    y = layer(x)
    assert (y - y_base).abs().max() > 1e-3  # the adapter does something

    layer.merge()
    # the (out, in) ΔW went into W the right way round (Conv1D stores Wᵀ)
    torch.testing.assert_close(layer.base_weight(), w0 + layer.get_delta_weight())
    torch.testing.assert_close(layer(x), y)
    w_merged = layer.base_weight().clone()
    layer.merge()  # idempotent
    assert torch.equal(layer.base_weight(), w_merged)

    layer.unmerge()
    torch.testing.assert_close(layer.base_weight(), w0, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(x), y)

    layer.disable_adapters = True
    torch.testing.assert_close(layer(x), y_base)


def test_only_adapter_parameters_get_gradients():
    layer = make_layer(24, 48, 4, 4)
    layer(torch.randn(3, 24)).sum().backward()
    assert all(p.grad is not None for p in layer.adapter_parameters())
    assert all(p.grad is None for p in layer.base_layer.parameters())


# ---------------------------------------------------------------------------- counting
DEBERTA_BASE_MATRICES = [(768, 768)] * 4 + [(768, 3072), (3072, 768)]  # q, k, v, attn-out, FFN in, FFN out


@pytest.mark.parametrize(
    "k,s,expected",
    [(2, 2, 83_232), (4, 4, 42_624), (6, 6, 30_240), (8, 8, 25_344), (12, 12, 24_192),
     (8, 1, 169_488), (8, 2, 87_120), (8, 4, 45_936)],
)
def test_parameter_table_deberta_v3_base(k, s, expected):
    # docs/method_notes.md §2: 12 layers × 6 matrices, rank-1 subspace
    assert 12 * sum(dcft_num_params(d_in, d_out, k, s) for d_in, d_out in DEBERTA_BASE_MATRICES) == expected


@pytest.mark.parametrize("d_in,d_out,k,s,r", [(768, 3072, 8, 8, 1), (3072, 768, 8, 4, 1), (7, 10, 3, 2, 3)])
def test_layer_parameter_count(d_in, d_out, k, s, r):
    base = nn.Linear(d_in, d_out)
    layer = DCFTLinear(base, DCFTConfig(r=r, kernel_size=k, stride=s))
    assert sum(p.numel() for p in layer.adapter_parameters()) == dcft_num_params(d_in, d_out, k, s, r)


# -------------------------------------------------------------------------- coverage
def test_coverage_map_checkerboard():
    # s = k: every cell is hit exactly once
    assert torch.equal(coverage_map(4, 4, (16, 12)), torch.ones(16, 12, dtype=torch.long))
    # k = 3, s = 2: the 1-D coverage alternates 1, 2 (cropped edges aside): a checkerboard
    cov = coverage_map(3, 2, (7, 9))
    row = torch.tensor([1, 1, 2, 1, 2, 1, 2, 1, 1])
    assert torch.equal(cov[0], row)
    assert torch.equal(cov, torch.outer(cov[:, 0], cov[0]))  # separable: rows ⊗ columns
    # no crop: the taps add up to h_out · h_in · k²
    assert coverage_map(8, 4, (16, 20)).sum().item() == 3 * 4 * 64
