"""Delta-LoRA: the W update rule, its telescoping sum, the rank-2r export, and training-loop plumbing.

docs/method_notes.md §4. Layer-level tests use a bare nn.Linear; model-level tests a tiny random BERT.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, get_linear_schedule_with_warmup

from dcft_edu.config import DeltaLoRAConfig, LoRAConfig
from dcft_edu.inject import apply_exported_lora
from dcft_edu.delta_lora import (
    DeltaLoRALinear,
    delta_lora_layers,
    export_delta_lora,
    original_weights,
    register_delta_lora_hook,
)
from dcft_edu.inject import adapter_layers, disable_adapters, inject_adapters
from dcft_edu.lora import LoRALinear

R, ALPHA = 2, 8.0  # s = α/r = 4


# ------------------------------------------------------------------- helpers
def make_layer(d_in=10, d_out=7, r=R, lam=0.5, K=0, seed=0, dtype=torch.float32) -> DeltaLoRALinear:
    torch.manual_seed(seed)
    base = nn.Linear(d_in, d_out, dtype=dtype)
    return DeltaLoRALinear(base, DeltaLoRAConfig(r=r, lora_alpha=ALPHA, update_ratio=lam, start_steps=K))


def layer_data(n_steps, d_in=10, d_out=7, batch=6, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, d_in, generator=g, dtype=dtype), torch.randn(batch, d_out, generator=g, dtype=dtype))
        for _ in range(n_steps)
    ]


def tiny_bert(seed=0, dtype=torch.float32) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,  # deterministic step-by-step comparisons
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )
    return BertForSequenceClassification(cfg).to(dtype)


def bert_batches(n, seed=1, batch=4, length=6):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(3, 100, (batch, length), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (batch,), generator=g)})
    return out


def delta_bert(lam=0.5, K=3, seed=0, **kw):
    cfg = DeltaLoRAConfig(r=R, lora_alpha=ALPHA, update_ratio=lam, start_steps=K, **kw)
    return inject_adapters(tiny_bert(seed), cfg)


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def logits(model, b):
    with torch.no_grad():
        return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits


def snapshot_P(model):
    """name -> P = B A for every Delta-LoRA layer (float64 for the comparisons)."""
    return {n: (l.lora_B.double() @ l.lora_A.double()) for n, l in delta_lora_layers(model)}


def snapshot_W(model):
    return {n: l.base_weight().detach().clone().double() for n, l in delta_lora_layers(model)}


# --------------------------------------------------------------- the update
def test_W_frozen_until_K_then_moves():
    K = 3
    layer = make_layer(K=K)
    assert layer.update_ratio == 0.5 and layer.start_steps == K
    assert not layer.base_layer.weight.requires_grad  # W moves by the rule, not by gradients
    opt = torch.optim.AdamW(layer.adapter_parameters(), lr=1e-2)
    W0 = layer.base_weight().detach().clone()
    prev = W0.clone()
    for n, (x, y) in enumerate(layer_data(8), start=1):
        F.mse_loss(layer(x), y).backward()
        opt.step()
        opt.zero_grad()
        layer.delta_step()
        W = layer.base_weight().detach()
        assert int(layer.num_steps) == n
        if n <= K:
            assert torch.equal(W, W0), f"W moved at step {n} <= K"
        else:
            assert not torch.equal(W, prev), f"W did not move at step {n} > K"
        prev = W.clone()


def test_single_addmm_matches_naive_formula():
    layer = make_layer(d_in=9, d_out=5, r=3, lam=0.7, K=0, dtype=torch.float64).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for t in (layer.lora_A, layer.lora_B, layer.lora_A_prev, layer.lora_B_prev):
            t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype))
    W, A, B = layer.base_weight().detach().clone(), layer.lora_A.detach().clone(), layer.lora_B.detach().clone()
    A0, B0 = layer.lora_A_prev.clone(), layer.lora_B_prev.clone()
    layer.delta_step()
    s = ALPHA / 3
    naive = W + 0.7 * s * (B @ A - B0 @ A0)
    torch.testing.assert_close(layer.base_weight(), naive, atol=1e-12, rtol=0)
    wrong = W + 0.7 * s * ((B - B0) @ (A - A0))  # the known mistake ΔB·ΔA
    assert not torch.allclose(layer.base_weight(), wrong)
    # the snapshot now holds the current factors
    assert torch.equal(layer.lora_A_prev, A) and torch.equal(layer.lora_B_prev, B)


def test_rank_of_total_change_is_at_most_2r_float64():
    r = 2
    layer = make_layer(d_in=12, d_out=10, r=r, lam=2.0, K=3, dtype=torch.float64).double()
    W0 = layer.base_weight().detach().clone()
    opt = torch.optim.Adam(layer.adapter_parameters(), lr=5e-2)
    for x, y in layer_data(15, d_in=12, d_out=10, dtype=torch.float64):
        F.mse_loss(layer(x), y).backward()
        opt.step()
        opt.zero_grad()
        layer.delta_step()
    dW = layer.base_weight().detach() - W0
    rank = int(torch.linalg.matrix_rank(dW))
    assert r < rank <= 2 * r  # more than LoRA's r, never more than 2r


def test_lambda_zero_is_plain_lora_exactly():
    base = tiny_bert()
    torch.manual_seed(5)
    lora = inject_adapters(copy.deepcopy(base), LoRAConfig(r=R, lora_alpha=ALPHA))
    torch.manual_seed(5)
    delta = inject_adapters(copy.deepcopy(base), DeltaLoRAConfig(r=R, lora_alpha=ALPHA, update_ratio=0.0, start_steps=0))
    opt_l = torch.optim.AdamW(trainable(lora), lr=1e-2, weight_decay=0.1)
    opt_d = torch.optim.AdamW(trainable(delta), lr=1e-2, weight_decay=0.1)
    register_delta_lora_hook(opt_d, delta)
    W0 = snapshot_W(delta)
    for b in bert_batches(6):
        for model, opt in ((lora, opt_l), (delta, opt_d)):
            model(**b).loss.backward()
            opt.step()
            opt.zero_grad()
        assert torch.equal(logits(lora, b), logits(delta, b))
        for (n, p), (_, q) in zip(lora.named_parameters(), delta.named_parameters()):
            assert torch.equal(p, q), n
    for n, w in snapshot_W(delta).items():
        assert torch.equal(w, W0[n])


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_start_step_zero_is_lora_with_a_larger_scale(lam):
    """K = 0 and B₀ = 0: W_n = W₀ + λ·s·B_n A_n, so the forward is LoRA's with α′ = (1 + λ)·α at every step.
    Its A, B gradients are (1 + λ)× smaller than that LoRA's, which Adam does not see (up to ε): both runs
    follow one trajectory (without gradient clipping). docs/e2e_protocol.md tests the same on E2E."""
    base = tiny_bert().double()
    torch.manual_seed(5)
    twin = inject_adapters(copy.deepcopy(base), LoRAConfig(r=R, lora_alpha=ALPHA * (1 + lam)))
    torch.manual_seed(5)
    delta = inject_adapters(copy.deepcopy(base), DeltaLoRAConfig(r=R, lora_alpha=ALPHA, update_ratio=lam, start_steps=0))
    opts = [torch.optim.AdamW(trainable(m), lr=1e-2, weight_decay=0.1, eps=1e-30) for m in (twin, delta)]
    register_delta_lora_hook(opts[1], delta)
    for b in bert_batches(6):
        for model, opt in zip((twin, delta), opts):
            model(**b).loss.backward()
            opt.step()
            opt.zero_grad()
        torch.testing.assert_close(logits(twin, b), logits(delta, b), rtol=1e-5, atol=1e-6)
    for (n, p), (_, q) in zip(twin.named_parameters(), delta.named_parameters()):
        if p.requires_grad:  # the adapters and the head: one trajectory
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=lambda m: f"{n}: {m}")
    W_moved = [l.base_weight() - l.original_weight() for _, l in delta_lora_layers(delta)]
    assert max(float(w.abs().max()) for w in W_moved) > 1e-3  # W really moved: the identity is not vacuous
    # and the scale matters: LoRA with the same α (λ = 0) ends elsewhere
    torch.manual_seed(5)
    same_alpha = inject_adapters(copy.deepcopy(base), LoRAConfig(r=R, lora_alpha=ALPHA))
    opt = torch.optim.AdamW(trainable(same_alpha), lr=1e-2, weight_decay=0.1, eps=1e-30)
    for b in bert_batches(6):
        same_alpha(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    assert (logits(same_alpha, b) - logits(delta, b)).abs().max() > 1e-3


def test_telescoping_identity_with_adamw_schedule_decay_clipping():
    K, lam, T = 5, 0.5, 20
    model = delta_bert(lam=lam, K=K)
    s = ALPHA / R
    opt = torch.optim.AdamW(trainable(model), lr=2e-2, weight_decay=0.1)
    register_delta_lora_hook(opt, model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 4) * max(0.0, 1 - step / T))
    W_0 = snapshot_W(model)
    for n, b in enumerate(bert_batches(T), start=1):
        model(**b).loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable(model), 0.5)
        opt.step()
        sched.step()
        opt.zero_grad()
        if n == K:
            P_K, W_K = snapshot_P(model), snapshot_W(model)
    P_T, W_T = snapshot_P(model), snapshot_W(model)
    for name in W_T:
        torch.testing.assert_close(W_K[name], W_0[name], atol=0, rtol=0)  # nothing moves up to K
        moved = W_T[name] - W_K[name]
        assert moved.abs().max() > 1e-4  # W really moved
        # W_T − W_K = λ·s·(P_T − P_K)
        torch.testing.assert_close(moved, lam * s * (P_T[name] - P_K[name]), atol=1e-6, rtol=0)
    # and original_weights recovers W_0 from the trained model alone
    for name, w0 in original_weights(model).items():
        torch.testing.assert_close(w0.double(), W_0[name], atol=1e-6, rtol=0)


def test_grouped_hook_step_equals_the_one_layer_rule():
    """The hook's grouped update (one bmm per shape) gives what delta_step() gives layer by layer."""
    K, T = 2, 6
    grouped, per_layer = delta_bert(K=K), delta_bert(K=K)  # tiny BERT: 32→32, 32→64 and 64→32 groups
    opt_g = torch.optim.AdamW(trainable(grouped), lr=2e-2, weight_decay=0.1)
    opt_p = torch.optim.AdamW(trainable(per_layer), lr=2e-2, weight_decay=0.1)
    register_delta_lora_hook(opt_g, grouped)
    W_0 = snapshot_W(grouped)
    for b in bert_batches(T):
        for model, opt in ((grouped, opt_g), (per_layer, opt_p)):
            model(**b).loss.backward()
            opt.step()
            opt.zero_grad()
        for _, layer in delta_lora_layers(per_layer):  # the readable one-layer rule
            layer.delta_step()
        for (name, g), (_, p) in zip(delta_lora_layers(grouped), delta_lora_layers(per_layer)):
            torch.testing.assert_close(g.base_weight(), p.base_weight(), atol=1e-7, rtol=0, msg=name)
    assert all((w - W_0[n]).abs().max() > 1e-4 for n, w in snapshot_W(grouped).items())  # every W moved
    for (_, g), (_, p) in zip(delta_lora_layers(grouped), delta_lora_layers(per_layer)):
        sg, sp = g.state_dict(), p.state_dict()
        for key in ("lora_A_prev", "lora_B_prev", "lora_A_start", "lora_B_start", "num_steps"):
            torch.testing.assert_close(sg[key], sp[key], atol=1e-7, rtol=0)


def test_conv1d_base_layer_updates_in_out_in_layout():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    conv = Conv1D(7, 10)  # GPT-2 style: weight (in=10, out=7)
    layer = DeltaLoRALinear(conv, DeltaLoRAConfig(r=R, lora_alpha=ALPHA, update_ratio=1.0, start_steps=0))
    W0 = layer.base_weight().detach().clone()  # (out, in)
    opt = torch.optim.SGD(layer.adapter_parameters(), lr=0.1)
    for x, y in layer_data(4):
        F.mse_loss(layer(x), y).backward()
        opt.step()
        opt.zero_grad()
        layer.delta_step()
    P_T = layer.lora_B.detach() @ layer.lora_A.detach()
    P_0 = layer.lora_B_start @ layer.lora_A_start  # zeros: B starts at 0
    torch.testing.assert_close(layer.base_weight() - W0, 1.0 * layer.scaling * (P_T - P_0), atol=1e-6, rtol=0)
    assert layer.base_layer.weight.shape == (10, 7)


# ------------------------------------------------------------------- export
def _apply_exported(factors, lora_config, trained, seed=0):
    """A fresh pretrained model (W_0), the trained heads, and the exported LoRA."""
    fresh = tiny_bert(seed)
    heads = {k: v for k, v in trained.state_dict().items() if k.startswith(("classifier.", "bert.pooler."))}
    fresh.load_state_dict(heads, strict=False)
    inject_adapters(fresh, lora_config)
    with torch.no_grad():
        for name, layer in adapter_layers(fresh):
            layer.lora_A.copy_(factors[name]["lora_A"])
            layer.lora_B.copy_(factors[name]["lora_B"])
    return fresh


def _train(model, n, seed=1):
    opt = torch.optim.AdamW(trainable(model), lr=2e-2, weight_decay=0.01)
    register_delta_lora_hook(opt, model)
    for b in bert_batches(n, seed=seed):
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    return opt


def test_export_reproduces_trained_model_as_rank_2r_lora_on_W0():
    lam = 2.0
    model = delta_bert(lam=lam, K=4)
    _train(model, 12)
    factors, lcfg = export_delta_lora(model)
    assert isinstance(lcfg, LoRAConfig) and lcfg.r == 2 * R and lcfg.lora_alpha == 2 * ALPHA
    assert lcfg.scaling == pytest.approx(ALPHA / R)
    for name, f in factors.items():
        layer = model.get_submodule(name)
        assert f["lora_A"].shape == (2 * R, layer.in_features) and f["lora_B"].shape == (layer.out_features, 2 * R)
        torch.testing.assert_close(f["lora_B"][:, :R], (1 + lam) * layer.lora_B.detach())
        torch.testing.assert_close(f["lora_B"][:, R:], -lam * layer.lora_B_start)
    fresh = _apply_exported(factors, lcfg, model)
    # the fresh model's base weights are W_0, and original_weights recovers them
    for name, w0 in original_weights(model).items():
        torch.testing.assert_close(w0, fresh.get_submodule(name).base_weight(), atol=1e-6, rtol=0)
    for b in bert_batches(3, seed=9):
        torch.testing.assert_close(logits(fresh, b), logits(model, b), atol=1e-5, rtol=0)


def test_export_before_K_is_plain_lora():
    model = delta_bert(lam=0.5, K=100)
    _train(model, 3)
    factors, lcfg = export_delta_lora(model)
    for name, f in factors.items():
        layer = model.get_submodule(name)
        assert torch.equal(f["lora_A"][:R], layer.lora_A.detach())
        assert torch.equal(f["lora_B"][:, :R], layer.lora_B.detach())  # no (1+λ): no update happened
        assert not f["lora_B"][:, R:].any() and not f["lora_A"][R:].any()
    fresh = _apply_exported(factors, lcfg, model)
    for b in bert_batches(2, seed=9):
        torch.testing.assert_close(logits(fresh, b), logits(model, b), atol=1e-5, rtol=0)



def test_apply_exported_lora_on_a_fresh_model_reproduces_the_trained_one():
    model = delta_bert(lam=0.5, K=2)
    _train(model, 6)
    factors, lcfg = export_delta_lora(model)
    fresh = apply_exported_lora(tiny_bert(0), factors, lcfg, heads_from=model)  # tiny_bert(0) holds W_0
    assert all(isinstance(layer, LoRALinear) and layer.r == 2 * R for _, layer in adapter_layers(fresh))
    for b in bert_batches(3, seed=9):
        torch.testing.assert_close(logits(fresh, b), logits(model, b), atol=1e-5, rtol=0)
    # without the trained heads the outputs differ (the factors do not hold them)
    no_heads = apply_exported_lora(tiny_bert(0), factors, lcfg)
    b = bert_batches(1, seed=9)[0]
    assert not torch.allclose(logits(no_heads, b), logits(model, b), atol=1e-4)


def test_apply_exported_lora_refuses_factors_of_another_model():
    model = delta_bert(lam=0.5, K=0)
    _train(model, 2)
    factors, lcfg = export_delta_lora(model)
    with pytest.raises(ValueError, match="differ"):
        apply_exported_lora(tiny_bert(0), dict(list(factors.items())[:1]), lcfg)
    bad = {n: {"lora_A": f["lora_A"][:1], "lora_B": f["lora_B"][:, :1]} for n, f in factors.items()}
    with pytest.raises(ValueError, match="do not fit"):
        apply_exported_lora(tiny_bert(0), bad, lcfg)

# ------------------------------------------------------ saving and resuming
def test_snapshots_in_state_dict_and_resume_is_identical():
    model = delta_bert(lam=0.5, K=3)
    opt = _train(model, 5)
    sd = model.state_dict()
    for name, _ in delta_lora_layers(model):
        for buf in ("lora_A_prev", "lora_B_prev", "lora_A_start", "lora_B_start", "num_steps"):
            assert f"{name}.{buf}" in sd
    # a fresh model with other random adapters, then the saved state
    resumed = delta_bert(lam=0.5, K=3, seed=0)
    torch.manual_seed(123)
    for _, layer in delta_lora_layers(resumed):
        layer.reset_parameters()
    resumed.load_state_dict(copy.deepcopy(sd))
    opt2 = torch.optim.AdamW(trainable(resumed), lr=2e-2, weight_decay=0.01)
    register_delta_lora_hook(opt2, resumed)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for b in bert_batches(4, seed=7):
        for m, o in ((model, opt), (resumed, opt2)):
            m(**b).loss.backward()
            o.step()
            o.zero_grad()
    for (n, t), (_, u) in zip(model.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(t, u), n


def test_disabling_adapters_gives_moved_W_not_W0():
    layer = make_layer(lam=1.0, K=1)
    W0 = layer.base_weight().detach().clone()
    opt = torch.optim.AdamW(layer.adapter_parameters(), lr=5e-2)
    for x, y in layer_data(6):
        F.mse_loss(layer(x), y).backward()
        opt.step()
        opt.zero_grad()
        layer.delta_step()
    x = torch.randn(3, 10)
    layer.disable_adapters = True
    out = layer(x)
    b = layer.base_layer.bias
    torch.testing.assert_close(out, F.linear(x, layer.base_weight(), b))  # W_T x
    assert not torch.allclose(out, F.linear(x, W0, b), atol=1e-4)  # not W_0 x
    # model level: disable_adapters(model) runs the moved base weights
    model = delta_bert(lam=1.0, K=0)
    _train(model, 4)
    W0s = original_weights(model)
    b = bert_batches(1, seed=9)[0]
    with disable_adapters(model):
        off = logits(model, b)
    base = tiny_bert()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith(("classifier.", "bert.pooler."))}, strict=False)
    assert not torch.allclose(off, logits(base, b), atol=1e-4)  # the W_0 model differs
    with torch.no_grad():
        for name, w0 in W0s.items():
            torch.testing.assert_close(base.get_submodule(name).weight, w0, atol=1e-6, rtol=0)


# --------------------------------------------------------- dtype and config
def test_W_is_float32_in_a_bf16_model():
    model = inject_adapters(tiny_bert(dtype=torch.bfloat16), DeltaLoRAConfig(r=R, lora_alpha=ALPHA, start_steps=0))
    for _, layer in delta_lora_layers(model):
        assert layer.base_layer.weight.dtype == torch.float32
        assert layer.lora_A.dtype == torch.float32
    assert model.bert.embeddings.word_embeddings.weight.dtype == torch.bfloat16  # the rest stays bf16
    b = bert_batches(1)[0]
    out = model(**b)
    assert out.logits.dtype == torch.bfloat16
    # a W update far below bf16's resolution is kept in float32
    layer = delta_lora_layers(model)[0][1]
    W = layer.base_weight().detach().clone()
    with torch.no_grad():
        layer.lora_B.fill_(1e-6)
    layer.delta_step()
    assert not torch.equal(layer.base_weight(), W)
    # casting W back to bf16 after wrapping is refused by the update
    layer.base_layer.to(torch.bfloat16)
    with pytest.raises(RuntimeError, match="float32"):
        layer.delta_step()


def test_dropout_is_refused_with_the_fix_named():
    with pytest.raises(ValueError, match="lora_dropout=0") as e:
        DeltaLoRAConfig(lora_dropout=0.1)
    assert "Eq. 4/7" in str(e.value)


def test_delta_step_on_merged_layer_is_refused():
    layer = make_layer()
    layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.delta_step()


# ------------------------------------------------- what moves, what doesn't
def test_only_adapters_targeted_W_and_heads_change():
    model = delta_bert(lam=0.5, K=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _train(model, 6)
    targeted = {n for n, _ in delta_lora_layers(model)}
    assert targeted  # query and value of both blocks
    for n, p in model.named_parameters():
        changed = not torch.equal(p, before[n])
        expected = (
            n.endswith(("lora_A", "lora_B"))
            or n in {f"{t}.base_layer.weight" for t in targeted}
            or n.startswith(("classifier.", "bert.pooler."))
        )
        assert changed == expected, f"{n}: changed={changed}, expected {expected}"
        if n.endswith("base_layer.weight"):
            assert not p.requires_grad


# ----------------------------------------------------- training-loop plumbing
def test_gradient_accumulation_updates_only_on_optimizer_steps():
    accum, micro = 3, 12
    model = delta_bert(lam=0.5, K=1)
    opt = torch.optim.AdamW(trainable(model), lr=2e-2)
    register_delta_lora_hook(opt, model)
    W_0 = snapshot_W(model)
    for i, b in enumerate(bert_batches(micro), start=1):
        (model(**b).loss / accum).backward()
        if i % accum == 0:  # a real optimizer step
            opt.step()
            opt.zero_grad()
            if i // accum == 1:
                P_K = snapshot_P(model)
    n_steps = micro // accum
    for _, layer in delta_lora_layers(model):
        assert int(layer.num_steps) == n_steps
    P_T, W_T = snapshot_P(model), snapshot_W(model)
    for name in W_T:
        torch.testing.assert_close(W_T[name] - W_0[name], 0.5 * (ALPHA / R) * (P_T[name] - P_K[name]), atol=1e-6, rtol=0)


def test_hook_fires_once_per_step_and_can_be_removed_beside_other_hooks():
    model = delta_bert(lam=0.5, K=0)
    opt = torch.optim.AdamW(trainable(model), lr=1e-2)
    handle = register_delta_lora_hook(opt, model)
    calls = []
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(len(calls)))  # a user's own hook still works
    for b in bert_batches(3):
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    assert len(calls) == 3
    assert all(int(layer.num_steps) == 3 for _, layer in delta_lora_layers(model))
    handle.remove()  # detached: the optimizer is a plain AdamW again, W stops moving
    W = snapshot_W(model)
    for b in bert_batches(2, seed=2):
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    assert len(calls) == 5
    assert all(int(layer.num_steps) == 3 for _, layer in delta_lora_layers(model))
    for name, w in snapshot_W(model).items():
        assert torch.equal(w, W[name])


def test_lr_scheduler_on_the_plain_optimizer():
    model = delta_bert()
    opt = torch.optim.AdamW(trainable(model), lr=1e-2)
    register_delta_lora_hook(opt, model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        # linear warmup (2 steps) then linear decay to 0 at step 10
        sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=10)
        lrs = []
        for b in bert_batches(4):
            model(**b).loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([5e-3, 1e-2, 1e-2 * 7 / 8, 1e-2 * 6 / 8])
    assert int(delta_lora_layers(model)[0][1].num_steps) == 4


def test_grad_scaler_skipped_step_leaves_W_and_the_count_unchanged():
    model = delta_bert(lam=0.5, K=0)
    opt = torch.optim.AdamW(trainable(model), lr=1e-2)
    register_delta_lora_hook(opt, model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    batches = bert_batches(3)
    for i, b in enumerate(batches):
        scaler.scale(model(**b).loss).backward()
        if i == 1:  # an overflow: the scaler skips optimizer.step(), so the hook does not fire
            next(p for p in trainable(model) if p.grad is not None).grad.view(-1)[0] = float("inf")
            W, P = snapshot_W(model), snapshot_P(model)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        if i == 1:
            for name, w in snapshot_W(model).items():
                assert torch.equal(w, W[name])  # the W update of a skipped step is exactly zero
            for name, p in snapshot_P(model).items():
                assert torch.equal(p, P[name])
    assert all(int(layer.num_steps) == 2 for _, layer in delta_lora_layers(model))  # K counts real steps only


def test_hook_needs_delta_lora_layers():
    model = tiny_bert()
    with pytest.raises(ValueError, match="inject_adapters"):
        register_delta_lora_hook(torch.optim.AdamW(model.parameters()), model)


def test_autocast_activation_memory_matches_lora():
    """Under bf16 autocast a Delta-LoRA layer hands on bf16, like LoRA, so the layers after it keep
    bf16 activations: the tensors saved for backward weigh the same (a device-free memory check)."""
    from dcft_edu import LoRAConfig
    from dcft_edu.experiments.models import tiny_model

    def saved_bytes(model, batch):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(**batch).loss
        return total

    batch = {"input_ids": torch.randint(0, 100, (4, 16)), "labels": torch.tensor([0, 1, 0, 1])}
    sizes = {}
    for name, cfg in (("lora", LoRAConfig(r=4, target_modules="all-linear")),
                      ("delta", DeltaLoRAConfig(r=4, target_modules="all-linear"))):
        torch.manual_seed(0)
        sizes[name] = saved_bytes(inject_adapters(tiny_model("bert"), cfg), batch)
    assert sizes["delta"] <= 1.01 * sizes["lora"], sizes
