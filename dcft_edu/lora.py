"""LoRA (Hu et al., 2022): a frozen W plus a trainable low-rank product.

    h = W x + (α / r) · B A x,      A ∈ R^{r×in}, B ∈ R^{out×r}

A starts Kaiming-uniform (as in PEFT), B starts at zero, so ΔW = 0 at init and
the adapted model equals the pretrained one. Trainable parameters per matrix:
r · (in + out); with r = 1 this is LoRA's floor, the bottleneck DCFT removes.

Used in: ``05_dropout_gradient``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .adapter_layer import AdapterLayer
from .config import LoRAConfig


class LoRALinear(AdapterLayer):
    """An nn.Linear / Conv1D with a LoRA branch. Names as in PEFT: ``lora_A``, ``lora_B``."""

    adapter_param_names = ("lora_A", "lora_B")

    def __init__(self, base_layer: nn.Module, config: LoRAConfig, *, check_rank: bool = True):
        super().__init__(base_layer, config.scaling)
        self.r = config.r
        # rank(B A) ≤ min(in, out): a larger r adds parameters and no expressiveness. check_rank=False is for an
        # exact export (Delta-LoRA as a rank-2r LoRA), whose rank is a representation, not a choice.
        full = min(self.in_features, self.out_features)
        if check_rank and self.r > full:
            raise ValueError(
                f"r={self.r} is larger than this {self.in_features} → {self.out_features} layer allows: B A has rank at "
                f"most min(in, out) = {full}, so a larger r only adds parameters; choose r ≤ {full}"
            )
        dtype = torch.float32  # adapters train in float32 whatever the base dtype
        device = base_layer.weight.device
        self.lora_A = nn.Parameter(torch.empty(self.r, self.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.r, device=device, dtype=dtype))
        self.lora_dropout = nn.Dropout(config.lora_dropout) if config.lora_dropout > 0 else nn.Identity()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # PEFT's default: A ~ Kaiming-uniform(a=√5), B = 0  ->  ΔW = 0 at init
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def get_delta_weight(self) -> torch.Tensor:
        # ΔW = (α/r) · B A :  (out, r) @ (r, in) -> (out, in)
        return self.scaling * (self.lora_B @ self.lora_A)

    @torch.no_grad()
    def exported_lora_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lora_A (r, in), lora_B (out, r))``: a LoRA layer is its own export (r′ = r, α′ = α)."""
        return self.lora_A.detach(), self.lora_B.detach()

    def adapter_forward(self, x: torch.Tensor) -> torch.Tensor:
        # ΔW x = B (A · dropout(x)) · (α/r);  the scale goes on B, the smallest tensor that can take it
        # (..., in) @ (in, r) -> (..., r);  (..., r) @ (r, out) -> (..., out)
        return (self.lora_dropout(x) @ self.lora_A.T) @ (self.lora_B.T * self.scaling)
