"""How an adapter starts: its factors' gradients at init and how far one optimizer step moves ΔW.

DCFT's ΔW = (α/r)·(BA)⊗C starts from three small random factors (A, B, C ~ N(0, 0.02²)), so each factor's
gradient is scaled by the other two; LoRA's ΔW = (α/r)·BA starts from B = 0, so ∂L/∂B = s·(∂L/∂ΔW)·Aᵀ is not
small. DCFT also adds γ·R (the orthogonal penalty), whose gradient on A and B does not depend on the task.
``first_step_probe`` measures all three on one batch with the library's model, injection and optimizer.

Taught in: ``15_does_dcft_match_lora``.
"""
from __future__ import annotations

from typing import Any

import torch

from ..inject import adapter_layers
from .data import make_dataloaders
from .models import load_model
from .presets import make_run
from .fit import prepare, prepare_model

#: the adapter factors probed, where a layer has them (LoRA: A, B; DCFT: A, B and the kernel C)
FACTORS = ("lora_A", "lora_B", "lora_C")


def _rms(grads: list[torch.Tensor]) -> float:
    """Root mean square per entry over a list of gradients (0.0 for none)."""
    return float(torch.cat([g.flatten() for g in grads]).pow(2).mean().sqrt()) if grads else 0.0


def first_step_probe(task: str, method: str, scale: str = "cpu", batch_size: int = 16, seed: int = 0,
                     **overrides: Any) -> dict[str, float]:
    """One batch of ``task``'s first training rows, ``method`` at ``scale`` (``make_run``'s ``overrides``):

    - ``task grad RMS <factor>``: RMS per entry of ∂(task loss)/∂factor over every adapted layer;
    - ``γ·R grad RMS <factor>``: the same for the orthogonal penalty γ·R (0 where γ = 0, e.g. LoRA);
    - ``ΔW step``: ‖ΔW₁ − ΔW₀‖_F over all adapted layers after one AdamW step on task loss + γ·R at the
      run's lr (warmup aside), and ``ΔW₀``: ‖ΔW₀‖_F at init;
    - ``lr`` and ``γ``: the run's.

    ``seed`` seeds the new classifier head and the adapters (the same head for every method).
    """
    run = make_run(task, method, scale=scale, seed=seed, **overrides)
    torch.manual_seed(seed)
    model, tok = load_model(task)
    model = prepare_model(model, run)
    train_loader = make_dataloaders(task, tok, batch_size=batch_size, limit_train=batch_size, limit_dev=1,
                                    max_length=run.max_length)[0]
    batch = next(iter(train_loader))
    layers = [layer for _, layer in adapter_layers(model)]
    if not layers:
        raise ValueError(f"first_step_probe: method {method!r} has no adapter layers to probe; use lora, dcft or "
                         "delta_lora")
    factors = {n: [getattr(layer, n) for layer in layers] for n in FACTORS if hasattr(layers[0], n)}
    flat = [p for ps in factors.values() for p in ps]

    task_loss = model(**batch).loss
    wiring = prepare(model, run)  # the training optimizer and γ·R (0 for methods without it)
    penalty = wiring.penalty()
    g_task = torch.autograd.grad(task_loss, flat, retain_graph=True)
    g_pen = (torch.autograd.grad(penalty, flat, retain_graph=True, allow_unused=True) if penalty.requires_grad
             else [None] * len(flat))
    row: dict[str, float] = {}
    i = 0
    for name, ps in factors.items():
        row[f"task grad RMS {name}"] = _rms(list(g_task[i:i + len(ps)]))
        row[f"γ·R grad RMS {name}"] = _rms([g for g in g_pen[i:i + len(ps)] if g is not None])
        i += len(ps)

    # one AdamW step on task loss + γ·R: how far does ΔW move?
    dw0 = [layer.get_delta_weight().detach().clone() for layer in layers]  # each (d_out, d_in)
    (task_loss + penalty).backward()
    wiring.optimizer.step()
    row["ΔW₀"] = float(sum(d.norm() ** 2 for d in dw0) ** 0.5)
    row["ΔW step"] = float(sum((layer.get_delta_weight().detach() - d).norm() ** 2
                               for layer, d in zip(layers, dw0)) ** 0.5)
    row["lr"], row["γ"] = run.lr, run.orth_gamma
    return row
