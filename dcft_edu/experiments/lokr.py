"""PEFT's LoKr as DCFT's control arm: the same Kronecker structure, from a well-kept library.

DCFT with stride s = k (``dcft_edu.dcft``) and LoKr (LyCORIS, ``peft.LoKrConfig``) with ``r = 1`` and
``decompose_factor = k`` build, for a frozen nn.Linear W (out, in), updates of the same form:

    DCFT:  ΔW = (α/r) · (b a) ⊗ C          b (out/k, 1), a (1, in/k), C (k, k)
    LoKr:  ΔW = (α/r) · W₁ ⊗ (w₂ₐ w₂ᵦ)     W₁ (k, k), w₂ₐ (out/k, 1), w₂ᵦ (1, in/k)

- the same parameters per layer, k² + in/k + out/k (``lokr_num_params`` = ``dcft.dcft_num_params`` at s = k);
- the same rank bound, rank(ΔW) ≤ k (rank(X ⊗ Y) = rank X · rank Y);
- the Kronecker factors in the other order: C ⊗ M equals M ⊗ C with its rows and columns permuted
  (a "perfect shuffle"), so the two sets of updates are the same matrices up to a fixed relabelling of W's
  rows and columns — but that relabelling is not the identity, so the functions they can add to a *given*
  W differ, and so do their inits;
- a different init: LoKr starts with W₁ = 0 (ΔW = 0 exactly) and Kaiming-uniform w₂ₐ, w₂ᵦ; DCFT (the paper's
  init) starts all three factors at N(0, 0.02²), with ΔW tiny but not 0;
- no orthogonal penalty (γ·R is DCFT's, ``regularizers``).

So a run of method ``lokr`` beside ``dcft`` separates "the Kronecker structure" from "DCFT's init and recipe".
The layers are PEFT's own (``peft.inject_adapter_in_model``), not a re-implementation; this module only picks
the same target modules as DCFT, checks that PEFT factorised every layer as DCFT would, and trains the same
heads.

Used by: ``dcft_edu.experiments.trainer`` (method ``lokr``); taught in ``15_does_dcft_match_lora``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..config import DEFAULT_MODULES_TO_SAVE, AdapterConfig
from ..inject import adapter_layers, find_target_modules, train_heads

if TYPE_CHECKING:
    from .presets import RunConfig

#: PEFT's name for the one adapter it injects
ADAPTER_NAME = "default"


def lokr_num_params(d_in: int, d_out: int, kernel_size: int, r: int = 1) -> int:
    """Trainable parameters of one LoKr-adapted (d_in → d_out) matrix with ``decompose_factor = k``.

    W₁ (k, k) in full, W₂ = w₂ₐ w₂ᵦ of rank r: k² + r·(out/k + in/k) — DCFT's count at s = k, for r = 1.
    """
    if d_in % kernel_size or d_out % kernel_size:
        raise ValueError(f"decompose_factor k={kernel_size} must divide both layer dimensions ({d_in} → {d_out})")
    # W₁: (k, k);  w₂ₐ: (out/k, r);  w₂ᵦ: (r, in/k)
    return kernel_size**2 + r * (d_out // kernel_size + d_in // kernel_size)


def peft_available() -> bool:
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


def lokr_peft_config(target_names: list[str], r: int, lora_alpha: float, kernel_size: int):
    """The ``peft.LoKrConfig`` of a run: rank ``r``, scale α/r, W₁ of size k × k, no dropout, ΔW = 0 at init."""
    from peft import LoKrConfig

    return LoKrConfig(r=r, alpha=lora_alpha, decompose_factor=kernel_size, target_modules=list(target_names),
                      rank_dropout=0.0, module_dropout=0.0, init_weights=True)


def _require_peft() -> None:
    if not peft_available():
        raise ImportError("method 'lokr' runs PEFT's LoKr: pip install peft (or pip install 'dcft_edu[peer]')")


def inject_lokr(model: nn.Module, r: int = 1, lora_alpha: float = 16.0, kernel_size: int = 8,
                target_modules="all-linear", layers=None) -> nn.Module:
    """Put PEFT's LoKr layers into ``model`` on the modules DCFT would adapt; freeze the rest but the heads.

    The model is changed in place and returned (its class is unchanged: ``peft.inject_adapter_in_model``
    adds the layers without a ``PeftModel`` wrapper). Every layer's factorisation is checked to be DCFT's
    (W₁ k × k, W₂ out/k × in/k of rank r) before the model is touched, so a layer whose width k does not
    divide is an error naming it, not a silently different adapter.
    """
    _require_peft()
    from peft import inject_adapter_in_model

    if adapter_layers(model) or lokr_layers(model):
        raise ValueError("this model already has adapters: build a fresh model for method 'lokr'")
    spec = AdapterConfig(r=r, lora_alpha=lora_alpha, target_modules=target_modules, layers=layers)
    names = find_target_modules(model, spec)
    for name in names:  # all or nothing: every check before the first layer changes
        layer = model.get_submodule(name)
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"{name}: PEFT's LoKr adapts nn.Linear here, not {type(layer).__name__}; leave it out "
                             "of target_modules")
        lokr_num_params(layer.in_features, layer.out_features, kernel_size)  # k must divide both sides
        # PEFT stores W₂ as the product w₂ₐ w₂ᵦ only when r < max(out/k, in/k) / 2 (else in full)
        if r >= max(layer.in_features, layer.out_features) // kernel_size / 2:
            raise ValueError(f"{name}: r={r} is not below half of W₂'s longer side (W₂ is "
                             f"{layer.out_features // kernel_size} × {layer.in_features // kernel_size}), so PEFT "
                             "would store W₂ in full, not as a rank-r product; use a smaller r")
    for p in model.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(lokr_peft_config(names, r, lora_alpha, kernel_size), model, adapter_name=ADAPTER_NAME)
    train_heads(model, DEFAULT_MODULES_TO_SAVE)
    for _, layer in lokr_layers(model):
        for p in lokr_parameters(layer):
            p.requires_grad_(True)
    return model


def inject_lokr_for_run(model: nn.Module, run: "RunConfig") -> nn.Module:
    """``inject_lokr`` with a run's ``r``, ``lora_alpha``, ``kernel_size`` (PEFT's decompose_factor), targets."""
    return inject_lokr(model, r=run.r, lora_alpha=run.lora_alpha, kernel_size=run.kernel_size,
                       target_modules=run.target_modules, layers=run.layers)


def lokr_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """All (name, PEFT LoKr layer) pairs of a model, in model order ([] without peft)."""
    if not peft_available():
        return []
    from peft.tuners.lokr.layer import LoKrLayer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoKrLayer)]


def lokr_parameters(layer: nn.Module) -> list[nn.Parameter]:
    """A LoKr layer's adapter tensors (W₁, w₂ₐ, w₂ᵦ …), not its frozen base layer."""
    return [p for n, p in layer.named_parameters() if not n.startswith("base_layer")]


def count_lokr_parameters(model: nn.Module) -> int:
    """Adapter parameters of the model's LoKr layers (heads not counted, as for every other method)."""
    return sum(p.numel() for _, layer in lokr_layers(model) for p in lokr_parameters(layer))


def lokr_effective_weight(layer: nn.Module) -> torch.Tensor:
    """W + ΔW of one LoKr layer, (out, in); W alone once PEFT has merged ΔW into it."""
    w = layer.get_base_layer().weight
    return w if layer.merged else w + layer.get_delta_weight(ADAPTER_NAME).to(w.dtype)
