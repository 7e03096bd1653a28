"""One training loop for every method: full, head-only, LoRA, DCFT, Delta-LoRA.

``train(run)`` takes a ``RunConfig`` (see ``presets``), fine-tunes the model on a
GLUE task and returns a result record (a plain dict, JSON-ready):

- AdamW (no weight decay on biases and LayerNorm), linear warmup then linear
  decay, gradient clipping, gradient accumulation, bf16 autocast on a GPU;
- DCFT adds γ · orthogonal_penalty to the loss (NOTES §1);
- Delta-LoRA moves W after each *real* optimizer step (``DeltaLoRAUpdater``),
  so accumulation boundaries are respected;
- dev evaluation after every epoch; the best epoch (as the papers report) and
  the final one are both recorded.

Taught in: ``07_glue_main_results`` (and every experiment notebook after it).
"""
from __future__ import annotations

import math
import random
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..config import DEFAULT_MODULES_TO_SAVE
from ..inject import adapter_layers, train_heads, count_adapter_parameters, count_trainable_parameters, inject_adapters
from .presets import RESULT_SCHEMA, RunConfig, total_optimizer_steps
from .runinfo import peak_memory_mb, provenance, resolve_device


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def prepare_model(model: nn.Module, run: RunConfig) -> nn.Module:
    """Inject adapters / freeze layers for ``run.method``."""
    cfg = run.adapter_config()
    if cfg is not None:
        return inject_adapters(model, cfg)
    if run.method == "head":
        for p in model.parameters():
            p.requires_grad_(False)
        train_heads(model, DEFAULT_MODULES_TO_SAVE)
    elif run.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    return model


def make_optimizer(model: nn.Module, run: RunConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on biases and norms (HF convention)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": run.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=run.lr)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int):
    """lr × t/warmup during warmup, then linear decay to 0 at ``total`` (as HF's linear schedule)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


#: the attention projections whose similarity to the pretrained weights is recorded (Delta-LoRA Fig. 3)
SIMILARITY_MODULES = ("query", "value")


def effective_weights(model: nn.Module, suffixes=SIMILARITY_MODULES) -> dict[str, torch.Tensor]:
    """``{module name: effective (out, in) weight}`` of every linear module whose name ends in ``suffixes``.

    The effective weight is what the layer multiplies x by: W for a plain
    ``nn.Linear`` (full fine-tuning moves it), W + ΔW for an unmerged adapter
    layer (for Delta-LoRA W itself has moved too), W for a merged one. Float32
    copies on the CPU.

    Taught in: ``08_cosine_similarity``.
    """
    from ..adapter_layer import AdapterLayer

    out = {}
    for name, m in model.named_modules():
        if not name.endswith(tuple(f".{s}" for s in suffixes)):
            continue
        if isinstance(m, AdapterLayer):
            w = m.effective_weight().detach().float()
        elif isinstance(m, nn.Linear):
            w = m.weight.detach().float()
        else:
            continue
        out[name] = w.cpu().clone()
    return out


def weight_similarity(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per module: cosine(W₀, W) of the flattened weights and the relative change ‖W − W₀‖ / ‖W₀‖.

    cos(W₀, W) = ⟨W₀, W⟩_F / (‖W₀‖_F ‖W‖_F)   (Delta-LoRA, Figure 3)

    Taught in: ``08_cosine_similarity``.
    """
    out = {}
    for name, w0 in before.items():
        w = after[name]
        cos = torch.nn.functional.cosine_similarity(w0.flatten().double(), w.flatten().double(), dim=0)
        out[name] = {"cosine": float(cos), "rel_change": float((w - w0).double().norm() / w0.double().norm())}
    return out


class _ScaleJump:
    """LoRA whose scale jumps from s to (1+λ)·s at step K: Delta-LoRA's twin (NOTES §4)."""

    def __init__(self, model: nn.Module, start: int, ratio: float):
        self.layers, self.start, self.ratio, self.n = [l for _, l in adapter_layers(model)], start, ratio, 0
        if start == 0:
            self.jump()

    @torch.no_grad()
    def jump(self) -> None:
        # from step K on:  W_eff = W₀ + s·((1+λ)·P_t − λ·P_K);  the constant −λ·s·P_K goes into W
        for layer in self.layers:
            w = layer.base_weight()
            w -= self.ratio * layer.get_delta_weight().to(w.dtype)
            layer.scaling *= 1 + self.ratio

    def step(self) -> None:
        self.n += 1
        if self.n == self.start:
            self.jump()


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: str, device: torch.device, autocast) -> dict[str, float]:
    """Dev-set metrics (see ``dcft_edu.experiments.metrics``) plus the mean dev loss."""
    from .metrics import compute_metrics

    model.eval()
    preds, labels, losses = [], [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            out = model(**batch)
        losses.append(out.loss.float().item())
        preds.append(out.logits.float().cpu())
        labels.append(batch["labels"].cpu())
    m = compute_metrics(task, torch.cat(preds).numpy(), torch.cat(labels).numpy())
    m["loss"] = float(np.mean(losses))
    return m


def train(run: RunConfig, progress: bool = True, log: Callable[[str], Any] = print,
          model_and_tokenizer=None, eval_at_start: bool = False) -> dict[str, Any]:
    """Fine-tune one model as ``run`` says; return the result record (JSON-ready).

    ``model_and_tokenizer`` lets a notebook pass an already-loaded (model,
    tokenizer) pair; by default the model is loaded with ``load_model``.
    ``eval_at_start`` also evaluates the untrained model (recorded as ``initial``).

    Taught in: ``07_glue_main_results``.
    """
    from tqdm import tqdm

    from .data import GLUE_TASKS, make_dataloaders
    from .models import load_model

    t_start = time.perf_counter()
    set_seed(run.seed)
    device = resolve_device(run.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, tokenizer = model_and_tokenizer or load_model(run.task, run.model)
    model = prepare_model(model, run).to(device)
    # query/value (and the module whose ΔW is kept) before training: W₀; for DCFT W₀ + its tiny init ΔW
    watched = SIMILARITY_MODULES + ((run.save_delta,) if run.save_delta else ())
    pretrained = effective_weights(model, suffixes=watched)
    train_loader, dev_loader = make_dataloaders(
        run.task, tokenizer, run.batch_size, limit_train=run.limit_train, limit_dev=run.limit_dev,
        seed=run.seed, max_length=run.max_length,
    )
    total = total_optimizer_steps(run)
    optimizer = make_optimizer(model, run)
    scheduler = linear_schedule(optimizer, run.warmup_steps, total)
    hooks = []
    if run.method == "delta_lora":
        from ..delta_lora import DeltaLoRAUpdater

        hooks.append(DeltaLoRAUpdater(model))
    if run.lora_scale_jump:
        hooks.append(_ScaleJump(model, run.start_steps or 0, run.update_ratio))
    orth = None
    if run.method == "dcft" and run.orth_gamma > 0:
        from ..regularizers import orthogonal_penalty as orth

    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16) if device.type == "cuda" \
            else torch.autocast("cpu", enabled=False)

    epochs, step, seen, train_time = [], 0, 0, 0.0
    main = GLUE_TASKS[run.task].main_metric
    initial = evaluate(model, dev_loader, run.task, device, autocast) if eval_at_start else None
    for epoch in range(1, run.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        running, nb = 0.0, 0
        bar = tqdm(train_loader, desc=f"{run.task}/{run.method} ep{epoch}", disable=not progress,
                   file=sys.stderr, mininterval=10, leave=False)
        for i, batch in enumerate(bar):
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                loss = model(**batch).loss
            if orth is not None:
                # L = L_task + γ · R(A, B)   (paper Eq. 4, NOTES §1)
                loss = loss + run.orth_gamma * orth(model)
            (loss / run.grad_accum).backward()
            running += loss.item()
            nb += 1
            seen += batch["input_ids"].shape[0]
            if (i + 1) % run.grad_accum == 0 or i + 1 == len(train_loader):
                if run.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], run.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                for h in hooks:  # Delta-LoRA's W update: after each real optimizer step only
                    h.step()
        train_time += time.perf_counter() - t0
        metrics = evaluate(model, dev_loader, run.task, device, autocast)
        rec = {"epoch": epoch, "train_loss": running / max(1, nb), "step": step, **metrics}
        epochs.append(rec)
        log(f"[{run.task} {run.method} seed={run.seed}] epoch {epoch}/{run.epochs}  "
            f"train_loss={rec['train_loss']:.4f}  dev_loss={metrics['loss']:.4f}  {main}={metrics[main]:.4f}")

    best = max(epochs, key=lambda r: r[main])
    final_weights = effective_weights(model, suffixes=watched)
    qv = tuple(f".{s}" for s in SIMILARITY_MODULES)
    similarity = weight_similarity({n: w for n, w in pretrained.items() if n.endswith(qv)}, final_weights)
    peak, peak_kind = peak_memory_mb(device)
    result = {
        "schema": RESULT_SCHEMA,
        "key": run.key(),
        "config": run.to_dict(),  # with the resolved model and its fingerprint
        "task": run.task,
        "method": run.method,
        "main_metric": main,
        "epochs": epochs,
        "best": {"epoch": best["epoch"], main: best[main], **{k: v for k, v in best.items() if k not in ("epoch",)}},
        "final": epochs[-1],
        "initial": initial,
        "best_metric": best[main],
        "final_metric": epochs[-1][main],
        "adapter_params": count_adapter_parameters(model),
        "trainable_params": count_trainable_parameters(model),
        "optimizer_steps": step,
        "train_examples_seen": seen,
        "train_time_s": train_time,
        "samples_per_s": seen / train_time if train_time > 0 else math.nan,
        "peak_memory_mb": peak,
        "peak_memory_kind": peak_kind,
        "wall_time_s": time.perf_counter() - t_start,
        "weight_similarity": similarity,
        **provenance(device, run.scale, run.seed),
    }
    result["_model"] = model  # removed by callers that serialise; handy in notebooks
    if run.save_delta:  # the learned change of one module, W_eff − W₀ (out, in), saved beside the result by sweeps
        name = next(n for n in final_weights if n.endswith(run.save_delta))
        result["_delta"] = {name: final_weights[name] - pretrained[name]}
    return result


def strip_model(result: dict) -> dict:
    """The JSON-ready part of a result (drops the in-memory model)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}
