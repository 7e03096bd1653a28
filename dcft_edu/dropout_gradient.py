"""Why Delta-LoRA removes dropout: the gradient of W and of B A agree only without it.

Take one linear layer with a LoRA branch (s = α / r, P = B A):

    h = W x + s · P · drop(x)

and let δ = ∂L/∂h. The frozen weight and the product receive

    ∂L/∂W = δ xᵀ,            ∂L/∂P = s · δ drop(x)ᵀ.

Without dropout (drop(x) = x) these are the same matrix up to the factor s:
∂L/∂W = ∂L/∂P / s. That is the paper's Eq. 4, the reason why the change of
B A is a fair stand-in for the update W itself would get. With dropout
(drop(x) = m ⊙ x / (1 − p), m a random 0/1 mask) the two differ (Eq. 7), and
the difference grows with p.

``dropout_gradient_gap`` measures that difference with autograd: W is made a
leaf that requires grad (in a real LoRA layer it is frozen; here we only want
to read its gradient), and P is a leaf put in place of the product B A.

Taught in: ``05_dropout_gradient``
"""
from __future__ import annotations

import math

import torch


def _gradients(W, P, x, y, keep, p, s):
    """(∂L/∂W, ∂L/∂P) for h = W x + s·P·drop(x), L = ½·mean over the batch of ‖h − y‖²."""
    W = W.clone().requires_grad_(True)  # frozen in LoRA; needs grad here only to read ∂L/∂W
    P = P.clone().requires_grad_(True)  # a leaf standing in for the product B A
    # inverted dropout, written out: drop(x) = m ⊙ x / (1 − p) :  (batch, in)
    x_drop = x * keep / (1.0 - p)
    # h = W x + s · P drop(x) :  (batch, in) @ (in, out) -> (batch, out), twice
    h = x @ W.T + s * (x_drop @ P.T)
    loss = 0.5 * ((h - y) ** 2).sum() / x.shape[0]
    g_W, g_P = torch.autograd.grad(loss, (W, P))  # both (out, in)
    return g_W, g_P


def dropout_gradient_gap(
    d_in: int = 64,
    d_out: int = 64,
    r: int = 8,
    p: float = 0.1,
    batch: int = 32,
    seed: int = 0,
    n_trials: int = 4,
    lora_alpha: float = 16.0,
    dtype: torch.dtype = torch.float64,
) -> dict:
    """Relative gap between ∂L/∂W and ∂L/∂(BA)/s, with dropout rate p and without.

    Each trial draws W (d_out, d_in), A (r, d_in), B (d_out, r), a batch x
    (batch, d_in), a regression target y (batch, d_out) and uniform numbers u
    (batch, d_in); the dropout mask is m = (u ≥ p). Because u does not depend on
    p, one seed gives nested masks across p, so curves over p are smooth.

    Returns a dict:

    - ``gap``: mean over trials of ‖g_W − g_P/s‖ / ‖g_W‖ with dropout p;
    - ``gap_no_dropout``: the same with p = 0 on the same draws: zero up to
      rounding (exactly 0 when s is a power of two, as the default s = 2;
      otherwise ~1e-16 in float64, ~1e-7 in float32);
    - ``cosine``: mean cosine similarity between g_W and g_P with dropout;
    - ``gap_per_trial``: the individual gaps;
    - ``reference``: √(p / (1 − p)), the relative size of inverted-dropout noise
      on one input, a rough scale for the gap;
    - ``p``, ``scaling`` (s = α/r).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout rate p must be in [0, 1), got {p!r}")
    s = float(lora_alpha) / r
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    gaps, gaps0, cosines = [], [], []
    for _ in range(n_trials):
        W = randn(d_out, d_in) / math.sqrt(d_in)
        A = randn(r, d_in) / math.sqrt(d_in)
        B = randn(d_out, r) / math.sqrt(r)
        # P = B A :  (out, r) @ (r, in) -> (out, in)
        P = B @ A
        x = randn(batch, d_in)
        y = randn(batch, d_out)
        u = torch.rand(batch, d_in, generator=g, dtype=dtype)

        # Eq. 4 (no dropout):  ∂L/∂W = δ xᵀ = ∂L/∂(BA) / s
        # Eq. 7 (dropout):     ∂L/∂W = δ xᵀ ≠ δ drop(x)ᵀ = ∂L/∂(BA) / s
        for i, rate in enumerate((p, 0.0)):
            keep = (u >= rate).to(dtype)  # m: 1 keeps the input, 0 drops it
            g_W, g_P = _gradients(W, P, x, y, keep, rate, s)
            gap = float(torch.linalg.norm(g_W - g_P / s) / torch.linalg.norm(g_W))
            if i == 0:  # with dropout p
                gaps.append(gap)
                cosines.append(float((g_W * g_P).sum() / (torch.linalg.norm(g_W) * torch.linalg.norm(g_P))))
            else:  # the same draws without dropout
                gaps0.append(gap)

    return {
        "p": p,
        "scaling": s,
        "gap": sum(gaps) / n_trials,
        "gap_no_dropout": sum(gaps0) / n_trials,
        "cosine": sum(cosines) / n_trials,
        "gap_per_trial": gaps,
        "reference": math.sqrt(p / (1.0 - p)),
    }
