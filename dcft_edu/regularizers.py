"""DCFT's orthogonal regulariser (paper Eq. 4, AdaLoRA's code as DCFT ships it).

The official code adds to the task loss

    R = γ · mean over every A and B tensor of ‖P Pᵀ − I‖_F

with P Pᵀ = A Aᵀ (r×r) for A of shape (r, in) and P Pᵀ = Bᵀ B (r×r) for B of
shape (out, r). The Frobenius norm is **not** squared, and the kernel C is left
out (NOTES §1). With the paper's rank 1 the Gram matrix is 1×1, so R only pulls
‖a‖² and ‖b‖² toward 1: it cannot make anything "more orthogonal". For r > 1 it
pushes the r rows of A (columns of B) toward an orthonormal set.

``orthogonal_penalty`` returns the mean (without γ): the trainer multiplies by
γ (0.1, or 0.3 for RTE and STS-B, in the official scripts).

Taught in: ``04_orthogonal_regularizer``.
"""
from __future__ import annotations

import torch
from torch import nn

from .inject import adapter_layers


def gram_deviation(P: torch.Tensor, rows: bool, squared: bool = False) -> torch.Tensor:
    """‖P Pᵀ − I‖_F for ``rows=True`` (A: (r, in)), ‖Pᵀ P − I‖_F for ``rows=False`` (B: (out, r)).

    Also takes a stack of same-shaped tensors, (n, r, in) or (n, out, r), and returns the n deviations.
    """
    # A Aᵀ: (…, r, in) @ (…, in, r) -> (…, r, r)   |   Bᵀ B: (…, r, out) @ (…, out, r) -> (…, r, r)
    gram = P @ P.mT if rows else P.mT @ P
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    # ‖G − I‖_F  (official),  or ‖G − I‖_F²  (the squared variant)
    dev = torch.linalg.matrix_norm(gram - eye, ord="fro")
    return dev.square() if squared else dev


def orthogonal_penalty(model: nn.Module, squared: bool = False) -> torch.Tensor:
    """Mean of ‖AAᵀ − I‖_F and ‖BᵀB − I‖_F over every adapter layer's A and B.

    ``squared=False`` is the official formula; ``squared=True`` uses ‖·‖_F²,
    which is smooth at the minimum. Returns a 0-dim tensor (0 if the model has
    no lora_A / lora_B tensors).

    Taught in: ``04_orthogonal_regularizer``.
    """
    # Group the tensors by shape and handle each group as one batch: the same numbers as a
    # loop over layers, with a handful of GPU kernels instead of several per tensor.
    groups: dict[tuple, list[torch.Tensor]] = {}
    for _, layer in adapter_layers(model):
        if hasattr(layer, "lora_A") and hasattr(layer, "lora_B"):
            # A Aᵀ for A (r, in);  Bᵀ B = (Bᵀ)(Bᵀ)ᵀ for B (out, r): both "rows" of an (r, ·) matrix
            groups.setdefault(tuple(layer.lora_A.shape), []).append(layer.lora_A)
            groups.setdefault(tuple(layer.lora_B.T.shape), []).append(layer.lora_B.T)
    if not groups:
        p = next(model.parameters())
        return torch.zeros((), device=p.device, dtype=torch.float32)
    # R_A = ‖A Aᵀ − I‖_F,  R_B = ‖Bᵀ B − I‖_F, one stack per shape: (n, r, d) -> (n,)
    devs = [gram_deviation(torch.stack(tensors), rows=True, squared=squared) for tensors in groups.values()]
    # R = mean over all A and B tensors
    return torch.cat(devs).mean()
