"""first_step_probe (notebook 15): what it measures holds for the two parameterisations it contrasts."""
import pytest

from dcft_edu.experiments.probe import first_step_probe


@pytest.fixture(scope="module")
def rows():
    return {"dcft": first_step_probe("mrpc", "dcft", scale="quick"),
            "lora": first_step_probe("mrpc", "lora", scale="quick", r=1),
            "zero": first_step_probe("mrpc", "dcft", scale="quick", dcft_init="zero", dcft_init_std=0.125)}


def test_lora_starts_at_zero_and_dcft_does_not(rows):
    assert rows["lora"]["ΔW₀"] == 0.0 and rows["zero"]["ΔW₀"] == 0.0  # B = 0
    assert rows["dcft"]["ΔW₀"] > 0.0  # three small random factors
    assert all(r["ΔW step"] > 0 for r in rows.values())  # one AdamW step moves every ΔW


def test_the_penalty_is_dcft_only(rows):
    assert rows["dcft"]["γ"] > 0 and rows["lora"]["γ"] == 0
    assert rows["dcft"]["γ·R grad RMS lora_A"] > 0 and rows["dcft"]["γ·R grad RMS lora_B"] > 0
    assert rows["lora"]["γ·R grad RMS lora_A"] == 0 and rows["lora"]["γ·R grad RMS lora_B"] == 0
    assert "task grad RMS lora_C" in rows["dcft"] and "task grad RMS lora_C" not in rows["lora"]


def test_b_gradient_scales_with_the_other_factors(rows):
    # ∂L/∂B is scaled by A (and C for DCFT): LoRA's A ~ kaiming, DCFT's A, C ~ N(0, 0.02²): orders apart
    assert rows["lora"]["task grad RMS lora_B"] > 10 * rows["dcft"]["task grad RMS lora_B"]
    # A, C ~ N(0, 0.125²): ~6× each, so B's gradient grows by well over 10×
    assert rows["zero"]["task grad RMS lora_B"] > 10 * rows["dcft"]["task grad RMS lora_B"]


def test_no_adapter_is_refused():
    with pytest.raises(ValueError, match="no adapter layers"):
        first_step_probe("mrpc", "head", scale="quick")
