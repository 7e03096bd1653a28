"""The dropout-gradient demo (Delta-LoRA Eq. 4/7): ∂L/∂W = ∂L/∂(BA)/s only without dropout."""
from __future__ import annotations

import pytest
import torch

from dcft_edu.dropout_gradient import dropout_gradient_gap


def test_no_dropout_gives_identical_gradients_float64():
    out = dropout_gradient_gap(p=0.0, dtype=torch.float64)
    assert out["gap"] < 1e-12 and out["gap_no_dropout"] < 1e-12
    assert out["cosine"] == pytest.approx(1.0)
    # a scaling that is not a power of two: equal up to rounding
    assert dropout_gradient_gap(p=0.0, lora_alpha=12.0, dtype=torch.float64)["gap"] < 1e-12
    assert dropout_gradient_gap(p=0.0, lora_alpha=12.0, dtype=torch.float32)["gap"] < 1e-5


def test_dropout_opens_a_gap():
    out = dropout_gradient_gap(p=0.3)
    assert out["gap"] > 0.05
    assert out["gap_no_dropout"] < 1e-12  # same draws, no dropout
    assert out["cosine"] < 0.99


def test_gap_grows_with_p():
    gaps = [dropout_gradient_gap(p=p, seed=0)["gap"] for p in (0.1, 0.3, 0.5)]
    assert gaps[0] < gaps[1] < gaps[2]


def test_bad_rate_is_refused():
    with pytest.raises(ValueError, match="p must be in"):
        dropout_gradient_gap(p=1.0)
