"""One training loop for every method: full, head-only, LoRA, DCFT, Delta-LoRA.

``train(run)`` takes a ``RunConfig`` (see ``presets``), fine-tunes the model on a
GLUE task and returns a result record (a plain dict, JSON-ready):

- AdamW (no weight decay on biases and LayerNorm), linear warmup then linear
  decay (``transformers.get_linear_schedule_with_warmup``), gradient clipping,
  gradient accumulation, bf16 autocast on a GPU;
- DCFT adds γ · orthogonal_penalty to the loss (NOTES §1);
- Delta-LoRA moves W after each *real* optimizer step (``register_delta_lora_hook``,
  a step post-hook on the optimizer), so accumulation boundaries are respected;
- dev evaluation after every epoch; the best epoch (as the papers report) and
  the final one are both recorded;
- a non-finite training loss or gradient norm (checked before the step) or
  dev loss stops the run: the record says ``status: "diverged"`` (and where), with no best
  or final metric, instead of passing a NaN model's dev score off as a result.

Used in: notebooks 04, 07, 08, 13.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup, set_seed

from ..config import DEFAULT_MODULES_TO_SAVE
from ..inject import adapter_layers, train_heads, count_adapter_parameters, count_trainable_parameters, inject_adapters
from .presets import RunConfig, total_optimizer_steps
from .runinfo import peak_memory_mb, provenance, resolve_device


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

    Used in: notebooks 04, 08, 13.
    """
    from tqdm import tqdm

    from .data import GLUE_TASKS, make_dataloaders
    from .models import load_model

    t_start = time.perf_counter()
    set_seed(run.seed)  # Python, NumPy, torch (CPU and every CUDA device)
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
    # lr × t/warmup for t < warmup, then linear decay to 0 at the last step (t counts optimizer steps from 0)
    scheduler = get_linear_schedule_with_warmup(optimizer, run.warmup_steps, total)
    if run.method == "delta_lora":  # W ← W + λ·s·Δ(BA) inside every optimizer.step()
        from ..delta_lora import register_delta_lora_hook

        register_delta_lora_hook(optimizer, model)
    hooks = []
    if run.lora_scale_jump:
        hooks.append(_ScaleJump(model, run.start_steps or 0, run.update_ratio))
    orth = None
    if run.method == "dcft" and run.orth_gamma > 0:
        from ..regularizers import orthogonal_penalty as orth

    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16) if device.type == "cuda" \
            else torch.autocast("cpu", enabled=False)

    epochs, step, seen, train_time, diverged = [], 0, 0, 0.0, None
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
            loss_value = loss.item()
            if not math.isfinite(loss_value):  # stop before a NaN/inf reaches the weights
                diverged = {"epoch": epoch, "step": step + 1, "what": f"training loss {loss_value}"}
                break
            (loss / run.grad_accum).backward()
            running += loss_value
            nb += 1
            seen += batch["input_ids"].shape[0]
            if (i + 1) % run.grad_accum == 0 or i + 1 == len(train_loader):
                if run.max_grad_norm:
                    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                          run.max_grad_norm)
                    if not torch.isfinite(norm):  # the norm clipping computes anyway: inf/NaN gradients
                        diverged = {"epoch": epoch, "step": step + 1, "what": f"gradient norm {norm.item()}"}
                        break
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                for h in hooks:  # the LoRA twin's scale jump: after each real optimizer step only
                    h.step()
        train_time += time.perf_counter() - t0
        if not diverged:
            metrics = evaluate(model, dev_loader, run.task, device, autocast)
            if not math.isfinite(metrics["loss"]):  # the weights already give NaN/inf: no dev score to keep
                diverged = {"epoch": epoch, "step": step, "what": f"dev loss {metrics['loss']}"}
        if diverged:
            log(f"[{run.task} {run.method} seed={run.seed}] diverged at epoch {epoch}, optimizer step {diverged['step']}: "
                f"{diverged['what']}; stopped (lower the learning rate, now {run.lr:g})")
            break
        rec = {"epoch": epoch, "train_loss": running / max(1, nb), "step": step, **metrics}
        epochs.append(rec)
        log(f"[{run.task} {run.method} seed={run.seed}] epoch {epoch}/{run.epochs}  "
            f"train_loss={rec['train_loss']:.4f}  dev_loss={metrics['loss']:.4f}  {main}={metrics[main]:.4f}")

    # a diverged run keeps the epochs it finished but has no best/final metric: it must not pass for a result
    best = max(epochs, key=lambda r: r[main]) if epochs and not diverged else None
    final = None if best is None else epochs[-1]
    final_weights = effective_weights(model, suffixes=watched)
    qv = tuple(f".{s}" for s in SIMILARITY_MODULES)
    similarity = weight_similarity({n: w for n, w in pretrained.items() if n.endswith(qv)}, final_weights)
    peak, peak_kind = peak_memory_mb(device)
    result = {
        "key": run.key(),
        "config": run.to_dict(),
        "task": run.task,
        "method": run.method,
        "main_metric": main,
        "status": "diverged" if diverged else "ok",
        "diverged_at": diverged,  # {"epoch", "step" (from 1) that gave the first non-finite value, "what" it was}
        "epochs": epochs,
        "best": None if best is None else {"epoch": best["epoch"], main: best[main],
                                           **{k: v for k, v in best.items() if k != "epoch"}},
        "final": final,
        "initial": initial,
        "best_metric": None if best is None else best[main],
        "final_metric": None if final is None else final[main],
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
