"""What every adapter layer shares: wrap a frozen linear map, add ΔW·x, merge/unmerge.

A wrapped layer computes  y = W x + b + ΔW x  where only ΔW's factors train.
Each method (LoRA, DCFT, Delta-LoRA) says how to build ΔW (``get_delta_weight``)
and how to apply it to x without building it (``adapter_forward``).

Weight layout is nn.Linear's ``(out, in)`` everywhere. GPT-2's ``Conv1D`` stores
its weight as ``(in, out)``; ``base_weight()`` returns the ``(out, in)`` view of
it explicitly, so merging is the same code for both.
"""
from __future__ import annotations

import torch
from torch import nn

from transformers.pytorch_utils import Conv1D  # GPT-2's "Conv1D": a linear layer with a transposed weight

SUPPORTED_BASE_LAYERS = (nn.Linear, Conv1D)


def linear_shape(layer: nn.Module) -> tuple[int, int]:
    """(out_features, in_features) of an nn.Linear or a GPT-2 Conv1D."""
    if isinstance(layer, nn.Linear):
        return layer.out_features, layer.in_features
    if isinstance(layer, Conv1D):
        # Conv1D.weight: (in, out)
        d_in, d_out = layer.weight.shape
        return d_out, d_in
    raise TypeError(
        f"cannot adapt a {type(layer).__name__}: only nn.Linear and GPT-2's Conv1D are supported. "
        "Pick target_modules that name linear layers."
    )


class AdapterLayer(nn.Module):
    """Base class. Subclasses define ``get_delta_weight`` and ``adapter_forward``.

    State flags, as in PEFT: ``merged`` (ΔW has been added into the base weight)
    and ``disable_adapters`` (forward returns the base layer's output alone).
    A merged layer refuses to run as if training (``refuse_training_while_merged``).
    """

    #: names of this layer's trainable adapter tensors (used for counting, saving)
    adapter_param_names: tuple[str, ...] = ()

    def __init__(self, base_layer: nn.Module, scaling: float):
        super().__init__()
        self.out_features, self.in_features = linear_shape(base_layer)
        self.base_layer = base_layer
        self.fan_in_fan_out = not isinstance(base_layer, nn.Linear)  # True for Conv1D
        self.scaling = float(scaling)
        self.merged = False
        self.disable_adapters = False
        for p in base_layer.parameters():
            p.requires_grad_(False)

    # ------------------------------------------------------------------ layout
    def base_weight(self) -> torch.Tensor:
        """The frozen weight as an ``(out, in)`` tensor (a view: writing to it writes the layer)."""
        w = self.base_layer.weight
        # Conv1D: (in, out) -> (out, in)
        return w.T if self.fan_in_fan_out else w

    @property
    def weight(self) -> torch.Tensor:
        """The base layer's weight, in its own layout (as in PEFT): model code such as T5's
        feed-forward reads ``self.wo.weight.dtype`` from the layer it calls."""
        return self.base_layer.weight

    # -------------------------------------------------------- to be overridden
    def get_delta_weight(self) -> torch.Tensor:
        """ΔW in ``(out, in)`` layout, scaling included."""
        raise NotImplementedError

    def adapter_forward(self, x: torch.Tensor) -> torch.Tensor:
        """ΔW x for x of shape (..., in), without necessarily building ΔW."""
        raise NotImplementedError

    #: the exported LoRA's rank and α as multiples of this layer's r and α (r′ = m·r, α′ = m·α keep α′/r′ = α/r)
    export_rank_multiple: int = 1

    def exported_lora_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's ΔW as an exact LoRA on the ORIGINAL base weight: ``(lora_A (r′, in), lora_B (out, r′))``
        with ΔW = (α/r) · lora_B lora_A, r′ = ``export_rank_multiple`` · r (the scale is not in the factors).
        What ``export_peft`` writes; every adapter layer class answers it."""
        raise NotImplementedError(f"{type(self).__name__} does not define exported_lora_factors()")

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, n) for n in self.adapter_param_names]

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            self.refuse_training_while_merged()
        if self.disable_adapters or self.merged:
            return self.base_layer(x)
        y = self.base_layer(x)
        dy = self.adapter_forward(x.to(self.adapter_dtype()))
        return y + dy.to(y.dtype)

    def refuse_training_while_merged(self) -> None:
        """Raise if a merged layer runs forward as if training (train mode, grad on, adapters trainable).

        Merged, ΔW sits inside the frozen W, so lora_A/lora_B get no gradient: training would change the
        head alone, in silence. Inference on a merged model (``model.eval()`` or ``torch.no_grad()``) is fine.
        """
        if self.training and torch.is_grad_enabled() and any(p.requires_grad for p in self.adapter_parameters()):
            raise RuntimeError(
                "a merged adapter layer runs forward in training mode with gradients on: merged, ΔW is inside the "
                "frozen W and lora_A/lora_B get no gradient, so the adapters would not train. Call "
                "unmerge_adapters(model) before training; for inference on merged weights use model.eval() or "
                "torch.no_grad()."
            )

    def adapter_dtype(self) -> torch.dtype:
        ps = self.adapter_parameters()
        return ps[0].dtype if ps else self.base_layer.weight.dtype

    def effective_weight(self) -> torch.Tensor:
        """What this layer multiplies x by, (out, in): W + ΔW, or W alone once merged (ΔW is in it)."""
        w = self.base_weight()
        return w if self.merged else w + self.get_delta_weight().to(w.dtype)

    @torch.no_grad()
    def jump_scale(self, ratio: float) -> None:
        """s ← (1+λ)·s with ``ratio`` = λ, the layer's output unchanged at this moment (Delta-LoRA's twin).

        From now on  W_eff = W₀ + s·((1+λ)·P_t − λ·P_K)  with P = the factors' product at the jump (P_K):
        the constant −λ·s·P_K = −λ·ΔW goes into W, so the forward is the same before and after the jump and
        only the factors' later moves count (1+λ)-fold.
        """
        if self.merged:
            raise RuntimeError("jump_scale on a merged adapter layer: unmerge_adapters(model) first "
                               "(merged, W already holds ΔW and the jump would count it twice)")
        w = self.base_weight()
        # W ← W − λ·ΔW  (ΔW = s·P_K, this layer's delta at the jump)
        w -= ratio * self.get_delta_weight().to(w.dtype)
        # s ← (1 + λ)·s
        self.scaling *= 1 + ratio

    # ------------------------------------------------------------ merge/unmerge
    @torch.no_grad()
    def merge(self) -> None:
        """W ← W + ΔW in place. Idempotent: merging twice does nothing the second time."""
        if self.merged:
            return
        w = self.base_weight()
        w += self.get_delta_weight().to(w.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W ← W − ΔW: restores the base weight (up to rounding)."""
        if not self.merged:
            return
        w = self.base_weight()
        w -= self.get_delta_weight().to(w.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, scaling={self.scaling:g}, merged={self.merged}"
