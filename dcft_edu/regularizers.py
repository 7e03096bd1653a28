"""DCFT's orthogonal regulariser (paper Eq. 4, AdaLoRA's code as DCFT ships it).

The official code adds to the task loss

    R = γ · mean over every A and B tensor of ‖P Pᵀ − I‖_F

with P Pᵀ = A Aᵀ (r×r) for A of shape (r, in) and P Pᵀ = Bᵀ B (r×r) for B of
shape (out, r). The Frobenius norm is **not** squared, and the kernel C is left
out (docs/method_notes.md §1). With the paper's rank 1 the Gram matrix is 1×1, so R only pulls
‖a‖² and ‖b‖² toward 1: it cannot make anything "more orthogonal". For r > 1 it
pushes the r rows of A (columns of B) toward an orthonormal set.

``orthogonal_penalty`` returns the mean (without γ): the trainer multiplies by
γ (0.1, or 0.3 for RTE and STS-B, in the official scripts).

Taught in: ``04_orthogonal_regularizer``.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .inject import adapter_layers


def gram_deviation(P: torch.Tensor, rows: bool, squared: bool = False) -> torch.Tensor:
    """‖P Pᵀ − I‖_F for ``rows=True`` (A: (r, in)), ‖Pᵀ P − I‖_F for ``rows=False`` (B: (out, r)).

    Also takes a stack of same-shaped tensors, (n, r, in) or (n, out, r), and returns the n deviations.
    """
    # A Aᵀ: (…, r, in) @ (…, in, r) -> (…, r, r)   |   Bᵀ B: (…, r, out) @ (…, out, r) -> (…, r, r)
    gram = P @ P.mT if rows else P.mT @ P
    # ‖G − I‖_F  (official),  or ‖G − I‖_F²  (the squared variant)
    dev = torch.linalg.matrix_norm(gram - _eye(gram.shape[-1], gram.dtype, gram.device), ord="fro")
    return dev.square() if squared else dev


@functools.lru_cache(maxsize=None)
def _eye(r: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The r × r identity, made once per (r, dtype, device): a constant, not rebuilt at every step."""
    return torch.eye(r, dtype=dtype, device=device)


def _factors(model: nn.Module) -> list[torch.Tensor]:
    """Every adapter layer's A (r, in) and Bᵀ (r, out), in model order: A Aᵀ and Bᵀ B are both P Pᵀ of these."""
    return [P for _, layer in adapter_layers(model) if hasattr(layer, "lora_A") and hasattr(layer, "lora_B")
            for P in (layer.lora_A, layer.lora_B.T)]


def orthogonal_penalty_reference(model: nn.Module, squared: bool = False) -> torch.Tensor:
    """The definition, one tensor at a time: the mean of ‖AAᵀ − I‖_F and ‖BᵀB − I‖_F over every layer.

    Readable and slow (several operations per tensor); ``orthogonal_penalty`` computes the same
    number with a handful of operations in all, and the tests hold it to this one.
    """
    devs = [gram_deviation(P, rows=True, squared=squared) for P in _factors(model)]
    if not devs:
        return torch.zeros((), device=next(model.parameters()).device, dtype=torch.float32)
    # R = mean over all A and B tensors
    return torch.stack(devs).mean()


def orthogonal_penalty(model: nn.Module, squared: bool = False) -> torch.Tensor:
    """Mean of ‖AAᵀ − I‖_F and ‖BᵀB − I‖_F over every adapter layer's A and B.

    ``squared=False`` is the official formula; ``squared=True`` uses ‖·‖_F²,
    which is smooth at the minimum. Returns a 0-dim tensor (0 if the model has
    no lora_A / lora_B tensors). The same number as ``orthogonal_penalty_reference``
    (the one-tensor-at-a-time definition), computed for all tensors at once: one
    stack, one batched product, one norm, whatever the number of layers.

    Taught in: ``04_orthogonal_regularizer``.
    """
    # the tensors grouped by shape, (r, d) -> [P, …]: A Aᵀ for A (r, in), Bᵀ B = (Bᵀ)(Bᵀ)ᵀ for B (out, r)
    groups: dict[tuple, list[torch.Tensor]] = {}
    for P in _factors(model):
        groups.setdefault(tuple(P.shape), []).append(P)
    if not groups:
        return torch.zeros((), device=next(model.parameters()).device, dtype=torch.float32)
    devs = []
    for r in dict.fromkeys(r for r, _ in groups):  # one batch per rank r (one in every model of ours)
        shapes = [shape for shape in groups if shape[0] == r]
        width = max(d for _, d in shapes)
        stacks = []
        for _, d in shapes:
            stack = torch.stack(groups[(r, d)])  # n_d × (r, d) -> (n_d, r, d)
            # zero columns up to the widest d, which P Pᵀ does not see: (n_d, r, d) -> (n_d, r, width)
            stacks.append(F.pad(stack, (0, width - d)) if d < width else stack)
        P = torch.cat(stacks)  # every A and Bᵀ of rank r: (n, r, width)
        # R_P = ‖P Pᵀ − I‖_F for the n tensors at once: (n, r, width) -> (n,)
        devs.append(gram_deviation(P, rows=True, squared=squared))
    # R = mean over all A and B tensors
    return (devs[0] if len(devs) == 1 else torch.cat(devs)).mean()
