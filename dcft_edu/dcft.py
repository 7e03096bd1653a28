"""DCFT (Zhang et al., COLING 2025): learn a tiny matrix, deconvolve it up to ΔW.

A frozen layer W (out × in) gets the update

    ΔW = (α/r) · crop( Deconv(M; C, stride s) ),     M = B A,

where A (r, h_in) and B (h_out, r) span a small "subspace" matrix M (h_out, h_in)
and C (k, k) is a trainable transposed-convolution kernel. ``conv_transpose2d``
scatters each entry of M into a k × k patch of ΔW (NOTES §3):

    out[i·s + p, j·s + q] += M[i, j] · C[p, q]

Sizes. Along a layer dimension d, the subspace has h(d) = ceil((d − k)/s) + 1
cells (= (d − k)/s + 1 when that is whole, = d/k when s = k), and the
deconvolution output is (h − 1)·s + k ≥ d cells long. When (d − k)/s is not
whole the output overshoots d by less than s, and we **crop it at the end**
(bottom rows, right columns) to (out, in). This is our choice of "padding"
(the paper's Eq. 9 has a padding P but does not say where it goes; the
official code only runs s = k with k dividing d, where nothing is cropped).
Cropping at the end keeps M[0, 0] at the corner of ΔW.

Three facts make DCFT cheap (NOTES §3, checked in float64 by tests/test_dcft.py):

1. s = k: the patches do not overlap and ΔW = (α/r) · (B A) ⊗ C (Kronecker), so
   rank(ΔW) ≤ r·k, and ΔW x can be applied *matrix-free*: O(in·r + r·k² + out·r)
   per token instead of O(in·out).
2. s < k: ΔW = (α/r) · Σ_r U_r C V_rᵀ where U_r is column r of B upsampled by s
   and shifted by p = 0..k−1 (one column per shift), V_r the same for A. Still
   rank ≤ r·k and still no in × out matrix.
3. With s < k the patches overlap unevenly (``coverage_map``): the checkerboard
   artifacts of the paper's Appendix D.

Three ways to compute the layer (``impl``), the same function up to float rounding:

- ``"fast"`` (default): ΔW x matrix-free (fact 1 or 2), added to W x. The fewest
  operations per token, and the only form that scales to large layers.
- ``"conv"``: the official way, ΔW built by ``conv_transpose2d`` on every call, then x ΔWᵀ.
- ``"dense"``: (W + ΔW) x, ONE product with the summed weight, ΔW built as the Kronecker
  product M ⊗ C (s = k) in the same operation that adds it to W. More arithmetic (the
  gradient of the summed weight is a full in × out product, as in full fine-tuning) but
  fewer, larger operations: on a GPU, where a small model's training step is bound by
  kernel launches, not arithmetic, that is what counts (``python -m
  dcft_edu.experiments.bench ops`` counts them: the matrix-free form's three contractions
  and their gradients cost more launches per layer than LoRA's two products).

Relation to the official code (github.com/Godz-z/DCFT, NOTES §1). It stores
lora_A (1, in/k), lora_B (out/k, 1) and builds D = deconv(Aᵀ Bᵀ; C_off) of shape
(in, out), then y = x @ D · α/r. Since deconv(Mᵀ; C_off)ᵀ = deconv(M; C_offᵀ),
that is the same function as ours with ``lora_C = C_offᵀ``: a relabelling, not
a different method. Its merge adds D (in, out) instead of Dᵀ to W (out, in):
wrong for square layers and a shape error otherwise. Ours merges ΔW in
(out, in) layout, right for 768→3072 and 3072→768 too.

Taught in: ``02_dcft_deconvolution_in_subspace`` (the layer, the Kronecker and
U·C·Vᵀ forms, parameter counts) and ``03_checkerboard_artifacts``
(``coverage_map``, ``upsample_factor``).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from .adapter_layer import AdapterLayer
from .config import DCFTConfig, check_impl


# --------------------------------------------------------------------------- sizes
def subspace_size(d: int, kernel_size: int, stride: int) -> int:
    """h(d): how many subspace cells a layer dimension d needs (NOTES §2).

    h(d) = ceil((d − k)/s) + 1, which is (d − k)/s + 1 when that is whole and
    d/k when s = k. E.g. ``subspace_size(768, 8, 8) == 96``.

    Taught in: ``02_dcft_deconvolution_in_subspace``.
    """
    if kernel_size > d:
        raise ValueError(
            f"kernel_size k={kernel_size} is larger than the layer dimension d={d}; choose k ≤ min(in, out)"
        )
    # h(d) = ceil((d − k) / s) + 1
    return -(-(d - kernel_size) // stride) + 1


def dcft_num_params(d_in: int, d_out: int, kernel_size: int, stride: int, r: int = 1) -> int:
    """Trainable parameters of one DCFT-adapted (d_in → d_out) matrix.

    r·(h(in) + h(out)) + k², e.g. 96 + 384 + 64 = 544 for 768 → 3072 with k = s = 8.
    Summed over DeBERTa-v3-base's 72 matrices this gives NOTES §2's table.

    Taught in: ``02_dcft_deconvolution_in_subspace``.
    """
    # A: (r, h_in), B: (h_out, r), C: (k, k)
    h_in = subspace_size(d_in, kernel_size, stride)
    h_out = subspace_size(d_out, kernel_size, stride)
    return r * (h_in + h_out) + kernel_size**2


# ------------------------------------------------------------- reference (ground truth)
def deconv_reference(M: torch.Tensor, C: torch.Tensor, stride: int, out_shape: tuple[int, int]) -> torch.Tensor:
    """Deconv(M; C, stride) cropped to ``out_shape``: literally ``conv_transpose2d`` then crop.

    M: (h_out, h_in), C: (k, k) → (out, in). Scatter rule:
    ``out[i·s + p, j·s + q] += M[i, j] · C[p, q]``; the ((h−1)·s + k)-long output
    of each dimension is cropped at the end (bottom/right) to ``out_shape``.

    Taught in: ``02_dcft_deconvolution_in_subspace``.
    """
    k = C.shape[-1]
    full = ((M.shape[0] - 1) * stride + k, (M.shape[1] - 1) * stride + k)
    if out_shape[0] > full[0] or out_shape[1] > full[1]:
        raise ValueError(f"deconvolution output {full} is smaller than out_shape={tuple(out_shape)}: M is too small")
    # conv_transpose2d wants (batch, channels, H, W) and a (c_in, c_out, k, k) kernel:
    # (1, 1, h_out, h_in) ⊛ᵀ (1, 1, k, k) -> (1, 1, (h_out−1)s+k, (h_in−1)s+k)
    D = F.conv_transpose2d(M[None, None], C[None, None], stride=stride)[0, 0]
    # crop the end (bottom rows, right columns): -> (out, in)
    return D[: out_shape[0], : out_shape[1]]


def coverage_map(kernel_size: int, stride: int, shape: tuple[int, int]) -> torch.Tensor:
    """How many kernel taps land on each cell of a (out, in) ΔW: the checkerboard (Appendix D).

    ``conv_transpose2d`` of an all-ones M with an all-ones k × k kernel, cropped
    like ΔW. s = k gives all ones (no overlap); s < k with k not a multiple of s
    gives an uneven, periodic pattern. It is separable: the outer product of the
    1-D coverage of the rows and of the columns. Returns an int64 tensor (out, in).

    Taught in: ``03_checkerboard_artifacts``.
    """
    h_out = subspace_size(shape[0], kernel_size, stride)
    h_in = subspace_size(shape[1], kernel_size, stride)
    ones_M = torch.ones(h_out, h_in, dtype=torch.float64)
    ones_C = torch.ones(kernel_size, kernel_size, dtype=torch.float64)
    # (h_out, h_in) ⊛ᵀ (k, k) -> (out, in) after the crop; counts are exact in float64
    return deconv_reference(ones_M, ones_C, stride, shape).round().long()


# --------------------------------------------------------------- matrix-free pieces
def upsample_factor(v: torch.Tensor, kernel_size: int, stride: int, size: int) -> torch.Tensor:
    """The U (from B) or V (from Aᵀ) factor of ΔW = Σ_r U_r C V_rᵀ (NOTES §3).

    v: (h, r), a subspace factor (``lora_B``, or ``lora_A.T``). Returns U of
    shape (size, k, r) with ``U[a, p, r] = v[i, r]`` iff ``a = i·s + p``, else 0:
    slice ``U[:, p, r]`` is column r of v upsampled by s (s − 1 zeros between
    entries) and shifted down by p. In matrix terms U[:, p, :] = S_p v with the
    0/1 selection matrix S_p[a, i] = 1 iff a = i·s + p. Rows past ``size`` are
    cropped, as in ``deconv_reference``. Built by one differentiable scatter.
    """
    h, r = v.shape
    k, s = kernel_size, stride
    full = (h - 1) * s + k
    if size > full:
        raise ValueError(f"{h} subspace cells with k={k}, s={s} cover only {full} < size={size} rows")
    i = torch.arange(h, device=v.device)[:, None]  # (h, 1)
    p = torch.arange(k, device=v.device)[None, :]  # (1, k)
    rows = (i * s + p).expand(h, k)  # (h, k): where v[i] lands for shift p
    # U[i·s + p, p, :] = v[i, :]   (each (row, p) pair is hit at most once)
    # values: (h, 1, r) -> (h, k, r);  U: (full, k, r)
    U = v.new_zeros(full, k, r).index_put((rows, p.expand(h, k)), v[:, None, :].expand(h, k, r))
    return U[:size]  # crop the end: (full, k, r) -> (size, k, r)


def _kronecker_forward(x: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, out_features: int) -> torch.Tensor:
    """ΔW x for s = k, with ΔW = (B A) ⊗ C, never building ΔW. x: (N, in) -> (N, out)."""
    N, d_in = x.shape
    r, h_in = A.shape
    h_out, k = B.shape[0], C.shape[0]
    if h_in * k != d_in:  # k does not divide in: zero-pad x to the uncropped width
        x = F.pad(x, (0, h_in * k - d_in))  # (N, in) -> (N, h_in·k)
    # x[n, j·k + q] -> Z[n, j, q]:  (N, h_in·k) -> (N, h_in, k)   (a view, no copy)
    Z = rearrange(x, "n (h k) -> n h k", k=k)
    # ΔW[i·k + p, j·k + q] = M[i, j] C[p, q]  ⇒  y[n, i·k + p] = Σ_{r,j,q} B[i, r] A[r, j] Z[n, j, q] C[p, q]
    # cheapest order: A first (in·r), then C (r·k²), then B (out·r) per token.
    # Each step is a small einsum; bmm with the factor expanded over tokens (a view) runs it
    # faster than torch.einsum, which copies Z into a transposed layout first (measured).
    # t[n, r, q] = Σ_j A[r, j] Z[n, j, q]      (einsum "r h, n h k -> n r k")
    t = torch.bmm(A.expand(N, r, h_in), Z)  # (N, r, h_in) @ (N, h_in, k) -> (N, r, k)
    # u[n, r, p] = Σ_q t[n, r, q] C[p, q]      (einsum "n r q, p q -> n r p")
    u = t @ C.T  # (N, r, k) @ (k, k) -> (N, r, k)
    # Y[n, i, p] = Σ_r B[i, r] u[n, r, p]      (einsum "o r, n r p -> n o p")
    Y = torch.bmm(B.expand(N, h_out, r), u)  # (N, h_out, r) @ (N, r, k) -> (N, h_out, k)
    # y[n, i·k + p] = Y[n, i, p]:  (N, h_out, k) -> (N, h_out·k) (a view), crop the end -> (N, out)
    return rearrange(Y, "n h k -> n (h k)")[:, :out_features]


def _upsampled_forward(
    x: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, stride: int, out_features: int
) -> torch.Tensor:
    """ΔW x for any s ≤ k, with ΔW = Σ_r U_r C V_rᵀ, never building ΔW. x: (N, in) -> (N, out)."""
    k = C.shape[0]
    # V from Aᵀ, U from B, cropped to the layer: (in, k, r) and (out, k, r)
    V = upsample_factor(A.T, k, stride, x.shape[1])
    U = upsample_factor(B, k, stride, out_features)
    # ΔW[a, b] = Σ_{p,q,r} U[a, p, r] C[p, q] V[b, q, r],   y[n, a] = Σ_b ΔW[a, b] x[n, b]
    # torch.einsum contracts left to right: x V (N·in·k·r), then C (N·k²·r), then U (N·out·k·r);
    # the (out, in) matrix ΔW is never formed.  (N, in), (in, k, r), (k, k), (out, k, r) -> (N, out)
    return einsum(x, V, C, U, "n b, b q r, p q, a p r -> n a")


def matrix_free_forward(
    x: torch.Tensor,
    lora_A: torch.Tensor,
    lora_B: torch.Tensor,
    lora_C: torch.Tensor,
    stride: int,
    out_features: int,
    scaling: float = 1.0,
) -> torch.Tensor:
    """ΔW x = scaling · crop(Deconv(B A; C, s)) x without building ΔW. x: (..., in) -> (..., out).

    s = k uses the Kronecker form (contract with A, then C, then B: O(in·r +
    r·k² + out·r) per token); s < k uses the U·C·Vᵀ form (O((in + out)·r·k)).
    Equals ``x @ (scaling · deconv_reference(B @ A, C, s, (out, in))).T``.
    """
    d_in = x.shape[-1]
    x2 = x.reshape(-1, d_in)  # (..., in) -> (N, in)
    # scale the k × k kernel, the smallest tensor in sight: (α/r) · C
    C = lora_C * scaling
    if stride == lora_C.shape[0]:
        y = _kronecker_forward(x2, lora_A, lora_B, C, out_features)
    else:
        y = _upsampled_forward(x2, lora_A, lora_B, C, stride, out_features)
    return y.reshape(*x.shape[:-1], out_features)  # (N, out) -> (..., out)


# ------------------------------------------------------------------------ the layer
class DCFTLinear(AdapterLayer):
    """An nn.Linear / GPT-2 Conv1D with a DCFT branch (names as in the official code).

    ``lora_A`` (r, h_in), ``lora_B`` (h_out, r), ``lora_C`` (k, k), all float32
    on the base weight's device. ``impl`` picks how ΔW x is computed and can be
    switched per layer at any time: ``"fast"`` (matrix-free), ``"conv"`` (the
    official way: build ΔW with ``conv_transpose2d`` on every call, then x ΔWᵀ) or
    ``"dense"`` (one product with W + ΔW, ``dense_weight``: fewer, larger operations for
    launch-bound GPUs). All give the same numbers up to rounding; ``get_delta_weight``
    always uses the reference.

    Taught in: ``02_dcft_deconvolution_in_subspace``.
    """

    adapter_param_names = ("lora_A", "lora_B", "lora_C")

    def __init__(self, base_layer: nn.Module, config: DCFTConfig, *, check_rank: bool = True):
        super().__init__(base_layer, config.scaling)
        self.r = config.r
        self.kernel_size = k = config.kernel_size
        self.stride = s = config.stride if config.stride is not None else k
        try:
            self.h_in = subspace_size(self.in_features, k, s)
            self.h_out = subspace_size(self.out_features, k, s)
        except ValueError as e:
            raise ValueError(f"cannot adapt a {self.in_features} → {self.out_features} layer: {e}") from None
        # M = B A is h_out × h_in, so its rank is at most min(h_in, h_out): a larger r only adds parameters
        # (check_rank=False: the numerics tests run the maths on such degenerate shapes too)
        full = min(self.h_in, self.h_out)
        if check_rank and self.r > full:
            raise ValueError(
                f"r={self.r} is larger than this {self.in_features} → {self.out_features} layer allows: with "
                f"kernel_size={k}, stride={s} its subspace matrix M = B A is {self.h_out} × {self.h_in}, of rank at most "
                f"{full}; choose r ≤ {full} (or a smaller kernel_size)"
            )
        self.impl = config.impl
        self.init = config.init
        self.init_std = config.init_std
        dtype = torch.float32  # adapters train in float32 whatever the base dtype
        device = base_layer.weight.device
        self.lora_A = nn.Parameter(torch.empty(self.r, self.h_in, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.empty(self.h_out, self.r, device=device, dtype=dtype))
        self.lora_C = nn.Parameter(torch.empty(k, k, device=device, dtype=dtype))
        self.reset_parameters()

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        check_impl(value)
        self._impl = value

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # "paper": A, B, C ~ N(0, std²) as in the official code, so ΔW is tiny but ≠ 0
        # "zero":  B = 0, so M = B A = 0 and ΔW = 0 exactly (the model starts as pretrained)
        nn.init.normal_(self.lora_A, std=self.init_std)
        nn.init.normal_(self.lora_C, std=self.init_std)
        if self.init == "zero":
            nn.init.zeros_(self.lora_B)
        else:
            nn.init.normal_(self.lora_B, std=self.init_std)

    def get_delta_weight(self) -> torch.Tensor:
        # M = B A :  (h_out, r) @ (r, h_in) -> (h_out, h_in)
        M = self.lora_B @ self.lora_A
        # ΔW = (α/r) · crop(Deconv(M; C, s)) :  (h_out, h_in) -> (out, in)
        # (the official code computes Deconv(Mᵀ; C_off)ᵀ, the same thing with lora_C = C_offᵀ)
        return self.scaling * deconv_reference(M, self.lora_C, self.stride, (self.out_features, self.in_features))

    def dense_weight(self) -> torch.Tensor:
        """W + ΔW in ``(out, in)`` layout, W's dtype: what ``impl="dense"`` multiplies x by.

        With s = k and k dividing both sides, ΔW = (α/r) · M ⊗ C is added to W in ONE
        ``addcmul`` on a 4-d view of W; otherwise ΔW is ``get_delta_weight()`` (the reference).
        """
        w = self.base_weight()  # (out, in)
        k = self.kernel_size
        if self.stride != k or self.h_out * k != self.out_features or self.h_in * k != self.in_features:
            return (w + self.get_delta_weight()).to(w.dtype)  # any stride, cropped: the reference ΔW
        # M = B A :  (h_out, r) @ (r, h_in) -> (h_out, h_in)
        M = self.lora_B @ self.lora_A
        # W[i·k + p, j·k + q] + (α/r) · M[i, j] · C[p, q]:  W (out, in) -> (h_out, k, h_in, k) (a view);
        # M -> (h_out, 1, h_in, 1) and C -> (1, k, 1, k) broadcast against it: W + (α/r) · M ⊗ C in one op
        w4 = rearrange(w, "(i p) (j q) -> i p j q", p=k, q=k)
        w4 = torch.addcmul(w4, M[:, None, :, None], self.lora_C[None, :, None, :], value=self.scaling)
        # (h_out, k, h_in, k) -> (out, in)
        return rearrange(w4, "i p j q -> (i p) (j q)").to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl != "dense" or self.disable_adapters or self.merged:
            return super().forward(x)
        # "dense": W x + ΔW x = (W + ΔW) x, one product:  (..., in) @ (in, out) -> (..., out)
        return F.linear(x, self.dense_weight(), self.base_layer.bias)

    def adapter_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl in ("conv", "dense"):  # "dense" applies its ΔW inside forward(); alone, ΔW x is this
            # the official way: build ΔW (out, in) on every call, then
            # (..., in) @ (in, out) -> (..., out)
            return F.linear(x, self.get_delta_weight())
        return matrix_free_forward(
            x, self.lora_A, self.lora_B, self.lora_C, self.stride, self.out_features, self.scaling
        )

    @property
    def export_rank_multiple(self) -> int:
        """k: the exported LoRA has rank r′ = r·k and α′ = α·k (``exported_lora_factors``)."""
        return self.kernel_size

    @torch.no_grad()
    def exported_lora_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's ΔW as an exact rank-(r·k) LoRA: ``(lora_A (r·k, in), lora_B (out, r·k))``.

        From the U·C·Vᵀ form (NOTES §3), for any stride and with the crop:
        ΔW = (α/r) · B′ A′ with B′ = U and A′ = C Vᵀ, the rank index running over
        the pairs (p, r) in the same order in both. The scale α/r is NOT in the
        factors: as LoRA, use r′ = r·k and α′ = α·k, so α′/r′ = α/r. Built in
        float64, returned in float32.
        """
        k, s = self.kernel_size, self.stride
        A, B, C = self.lora_A.double(), self.lora_B.double(), self.lora_C.double()
        V = upsample_factor(A.T, k, s, self.in_features)  # (in, k, r)
        U = upsample_factor(B, k, s, self.out_features)  # (out, k, r)
        # B′[a, (p, r)] = U[a, p, r] :  (out, k, r) -> (out, k·r)
        lora_B = U.reshape(self.out_features, k * self.r)
        # A′[(p, r), b] = Σ_q C[p, q] V[b, q, r] :  (k, k), (in, k, r) -> (k, r, in) -> (k·r, in)
        lora_A = torch.einsum("pq,bqr->prb", C, V).reshape(k * self.r, self.in_features)
        return lora_A.float(), lora_B.float()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, r={self.r}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"subspace=({self.h_out}, {self.h_in}), impl={self.impl!r}"
        )
